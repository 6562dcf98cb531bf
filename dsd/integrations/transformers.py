"""DSD inside a Hugging Face ``Trainer``: one callback runs a schedule's phases.

Two lines added to an existing Trainer script::

    from dsd.integrations.transformers import DSDCallback
    trainer = Trainer(..., callbacks=[DSDCallback("D:1@2e-5 S50%:1@2e-5 D:1@2e-6")])

What the callback does, and where in the Trainer it does it:

- ``on_train_begin`` (the Trainer has built, wrapped and, on resume, reloaded its optimizer and LR
  scheduler by then): builds a ``dsd.DSD`` engine on the torch optimizer inside Accelerate's
  wrapper; on resume, loads the engine state saved with the checkpoint.
- ``on_step_begin``: when the optimizer step about to run (``state.global_step``) opens a new
  phase, prunes (S) or re-denses (D). Phases in epochs are converted to optimizer steps with the
  Trainer's own count of update steps per epoch, so fractional epochs (``S30%:1.25@1e-4``) work.
- Learning rate: the schedule's rate replaces ``TrainingArguments.learning_rate``. It is applied
  through the Trainer's own ``LambdaLR`` (every ``lr_scheduler_type`` except
  ``reduce_lr_on_plateau`` and ``greedy``): each lambda becomes ``trainer_lambda(step) *
  schedule_lr(step) / base_lr``. So the scheduler's shape still multiplies: with
  ``lr_scheduler_type="constant"`` the rates are exactly the schedule's; ``"constant_with_warmup"``
  adds a warm-up to the first phase; with ``"linear"`` (the Trainer's default) or ``"cosine"`` every
  phase's rate is also scaled by the run-wide ramp, which DSD's restart-per-phase rates do not
  intend (a warning says so). The logged ``learning_rate`` is the rate actually used. Parameter
  groups with their own base rate keep their ratio to the first group's.
- Gradients of pruned weights are zeroed once per optimizer step, at the end of the last
  micro-batch's backward pass (the engine's ``mask_in_backward``, told by Accelerate's sync flag
  before each forward which micro-batch is the last; the other micro-batches run no hook), so
  the Trainer's gradient clipping and its logged ``grad_norm`` see the sparse model, and the
  optimizer step needs no second pass.
- ``on_log``: adds ``dsd/phase`` (index of the current phase) and ``dsd/sparsity`` (fraction of
  the selected weights that are exactly zero, counted from the weights) to the Trainer's logs
  and its ``state.log_history``. Reporting integrations (TensorBoard, W&B) run before the
  callbacks given to the Trainer; ``DSDCallback(...).attach(trainer)`` puts this one first so
  they see the keys too.
- ``on_save``: writes ``dsd_engine.pt`` (masks, phase, schedule) atomically into the checkpoint
  folder, so ``trainer.train(resume_from_checkpoint=...)`` continues mid-phase with the same mask,
  from whichever folder the Trainer resumes (``dsd.integrations.trainer_checkpoint``).
  Under FSDP2 every rank saves its rows of the masks with DCP into ``dsd_engine/`` beside it
  (``dsd.integrations.sharded_checkpoint``), loadable at another world size.

Which tensors: the weights of ``nn.Linear`` layers and of transformers' ``Conv1D`` (GPT-2's
linear layers): attention projections, feed-forward layers, the pooler. Embeddings, norms and
biases stay dense, and so does the task head (the parameters outside ``model.base_model``)
unless ``prune_head=True``. ``include=`` / ``exclude=`` take the engine's selectors
(names, globs, predicates) to change that.

Distributed: DDP, and FSDP2 (Accelerate's FSDP plugin with ``fsdp_config={"version": 2}``, the
default). Refused at ``on_train_begin``: DeepSpeed and FSDP1, whose partitioned or flattened
parameters hide the weights from the torch optimizer the engine holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError as error:  # transformers is an optional dependency of the engine
    raise ImportError(
        "dsd.integrations.transformers needs Hugging Face transformers; install it with "
        "`pip install dsd-suite[transformers]`"
    ) from error

from dsd import masks as masklib
from dsd.engine import DSD
from dsd.errors import ConfigError
from dsd.files import atomic_torch_save
from dsd.integrations import sharded_checkpoint
from dsd.integrations.hf_selection import ById, default_ids, default_selection
from dsd.integrations.trainer_checkpoint import ENGINE_FILE, FILE_FORMAT, FILE_VERSION, load_payload
from dsd.integrations.trainer_lr import CONSTANT_SCHEDULERS, take_over_lr
from dsd.optim_state import unwrap_optimizer
from dsd.schedule import Schedule
from dsd.selection import Selector

__all__ = ["ENGINE_FILE", "DSDCallback", "default_selection"]

logger = logging.getLogger(__name__)


class DSDCallback(TrainerCallback):
    """Runs a DSD schedule inside ``transformers.Trainer``.

    Args:
        schedule: the phases, in the engine's text form (``"D:3@2e-5 S50%:3@2e-5 D:3@2e-6"``,
            lengths in epochs; ``"D:500steps@3e-5 ..."`` in optimizer steps) or a ``Schedule``.
        include, exclude: the engine's selectors (names, globs, ``f(name, param) -> bool``).
            ``include`` replaces the default selection (see ``default_selection``); ``exclude``
            removes tensors from whichever selection applies.
        scope: ``"layer"`` (each tensor pruned to the sparsity, the paper's rule) or ``"global"``.
        prune_head: prune the task head too (default: the head stays dense).
        set_lr: apply the schedule's learning rates (default). ``False`` leaves the rate entirely
            to the Trainer and ignores the schedule's rates.

    After training starts, ``callback.engine`` is the ``dsd.DSD`` engine (masks, report).
    """

    def __init__(
        self,
        schedule: str | Schedule,
        include: Selector | Iterable[Selector] | None = None,
        exclude: Selector | Iterable[Selector] | None = None,
        scope: str = "layer",
        prune_head: bool = False,
        set_lr: bool = True,
    ) -> None:
        self.schedule = Schedule.parse(schedule) if isinstance(schedule, str) else schedule
        if not isinstance(self.schedule, Schedule):
            raise TypeError(
                f"schedule must be a text schedule or a dsd.Schedule, got {type(schedule).__name__}"
            )
        if scope not in masklib.SCOPES:
            raise ValueError(f"scope must be one of {masklib.SCOPES}, got {scope!r}")
        self.include = include
        self.exclude = exclude
        self.scope = scope
        self.prune_head = prune_head
        self.set_lr = set_lr
        self.engine: DSD | None = None
        #: Optimizer steps per epoch, as the Trainer counts them (None for step schedules).
        self.steps_per_epoch: int | None = None
        #: First optimizer step of each phase, and the step after the last phase.
        self.phase_starts: list[int] = []
        self._applied: int | None = None  # index of the phase the engine is in

    def attach(self, trainer: Any) -> DSDCallback:
        """Add this callback to ``trainer`` ahead of all others and return it.

        The Trainer registers its reporting integrations (TensorBoard, W&B, MLflow, ...) before
        the callbacks passed to it, so they receive each log before ``on_log`` here adds
        ``dsd/phase`` and ``dsd/sparsity``. Attached first, this callback adds them in time.
        """
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        return self

    # ----------------------------------------------------------------- the plan in steps
    def phase_at(self, step: int) -> int:
        """Index of the phase that optimizer step ``step`` (0-based) belongs to; the last phase
        continues past the schedule's end."""
        index = 0
        for i, start in enumerate(self.phase_starts[:-1]):
            if step >= start:
                index = i
        # Zero-length phases share their start with the next phase; the later one wins.
        return index

    def schedule_lr(self, step: int) -> float:
        """The schedule's learning rate for optimizer step ``step``."""
        index = self.phase_at(step)
        progress = step - self.phase_starts[index]
        if self.schedule.unit == "epochs":
            progress /= self.steps_per_epoch
        return self.schedule.lr(index, progress)

    def _plan(self, args: TrainingArguments, state: TrainerState, train_dataloader: Any) -> None:
        if self.schedule.unit == "epochs":
            try:
                batches = len(train_dataloader)
            except TypeError:
                raise ValueError(
                    f"schedule {self.schedule} is in epochs, but the training dataloader has no length; "
                    "give the phase lengths in optimizer steps ('D:500steps@3e-5 ...')"
                ) from None
            accumulation = args.gradient_accumulation_steps
            self.steps_per_epoch = max(1, batches // accumulation + int(batches % accumulation > 0))
            scale = self.steps_per_epoch
        else:
            scale = 1
        edges, total = [0], 0.0
        for phase in self.schedule.phases:
            total += phase.length
            edges.append(round(total * scale))
        self.phase_starts = edges
        for i, phase in enumerate(self.schedule.phases):
            if edges[i + 1] == edges[i]:
                logger.warning(
                    "DSD phase %d (%s) lasts %g %s = 0 optimizer steps and is skipped",
                    i,
                    phase.text(self.schedule.unit),
                    phase.length,
                    self.schedule.unit,
                )
        planned, total_steps = state.max_steps, edges[-1]
        if planned and planned > 0 and planned != total_steps:
            where = (
                f"stops inside phase {self.phase_at(planned - 1)}, so later phases never run"
                if planned < total_steps
                else "continues the last phase past the schedule's end"
            )
            logger.warning(
                "the Trainer plans %d optimizer steps but the DSD schedule %s lasts %d; training %s. "
                "Match num_train_epochs / max_steps to the schedule.",
                planned,
                self.schedule,
                total_steps,
                where,
            )

    # ----------------------------------------------------------------- Trainer events
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if model is None or optimizer is None:
            raise RuntimeError("DSDCallback needs the Trainer's model and optimizer at on_train_begin")
        _refuse_unsupported(args, model)
        inner = unwrap_optimizer(optimizer)
        if self.engine is None or self.engine.optimizer is not inner or self.engine.model is not model:
            if self.engine is not None:
                self.engine.remove()
            include = self.include
            if include is None:
                include = ById(set(default_ids(model, self.prune_head)))
            self.engine = DSD(
                model,
                optimizer,  # the wrapper itself: the engine finds the state wherever it is kept
                include=include,
                exclude=self.exclude,
                skip_first_conv=False,
                mask_in_backward=_last_micro_batch(),
            )
            self._applied = None
        self._plan(args, state, kwargs.get("train_dataloader"))
        if state.global_step > 0:
            self._resume(args, state)
        elif self.engine.is_sparse:  # a second train() on the same Trainer starts over, dense
            self.engine.redense()
            self._applied = None
        if self.set_lr:
            self._take_over_lr(args, kwargs.get("lr_scheduler"))
        logger.info(
            "DSD schedule %s: phases start at optimizer steps %s\n%s",
            self.schedule,
            self.phase_starts[:-1],
            self.engine.summary(),
        )

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.engine is None:
            return
        index = self.phase_at(state.global_step)
        if index != self._applied:
            self._enter(index, state.global_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.engine is None or logs is None or self._applied is None:
            return
        values = {"dsd/phase": self._applied, "dsd/sparsity": self.engine.sparsity_report().weight_sparsity}
        logs.update(values)
        # The Trainer appended a copy of these logs to its history before calling us.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.engine is None:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        sharded = sharded_checkpoint.is_sharded(self.engine)
        if sharded:  # every rank saves its rows of the masks; rank 0's file below names them
            engine_checkpoint = sharded_checkpoint.save(self.engine, folder)
        if not args.should_save:
            return
        if not os.path.isdir(folder):
            logger.warning("DSD: checkpoint folder %s not found; masks not saved with it", folder)
            return
        payload = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "schedule": str(self.schedule),
            "global_step": int(state.global_step),
            "phase_index": -1 if self._applied is None else int(self._applied),
            "engine": None if sharded else self.engine.state_dict(),
        }
        if sharded:
            payload["engine_checkpoint"] = engine_checkpoint
        atomic_torch_save(payload, Path(folder, ENGINE_FILE))

    # ----------------------------------------------------------------- phases
    def _enter(self, index: int, step: int) -> None:
        engine = self.engine
        phase = self.schedule.phases[index]
        if engine.is_sparse:
            engine.redense()
        if phase.is_sparse:
            engine.prune(phase.sparsity, self.scope)
        self._applied = index
        logger.info("DSD: step %d enters phase %d (%s)", step, index, phase.text(self.schedule.unit))

    def _resume(self, args: TrainingArguments, state: TrainerState) -> None:
        """Load the engine state saved with the checkpoint the Trainer resumed from, wherever it is
        (``dsd.integrations.trainer_checkpoint``)."""
        payload, path = load_payload(args, state, str(self.schedule))
        try:
            if payload.get("engine_checkpoint"):  # saved sharded (FSDP2), by every rank
                sharded_checkpoint.load(self.engine, os.path.dirname(path), payload["engine_checkpoint"])
            else:
                self.engine.load_state_dict(payload["engine"])
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        index = int(payload["phase_index"])
        self._applied = None if index < 0 else index

    # ----------------------------------------------------------------- learning rate
    def _take_over_lr(self, args: TrainingArguments, scheduler: Any) -> None:
        """Apply the schedule's rates through the Trainer's LambdaLR (``dsd.integrations.trainer_lr``);
        warn where the Trainer's scheduler also scales them by a run-wide ramp."""
        take_over_lr(scheduler, self.schedule_lr)  # refuses a scheduler without lambdas
        kind = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
        if kind not in CONSTANT_SCHEDULERS:
            logger.warning(
                "lr_scheduler_type=%r multiplies the DSD schedule's per-phase rates by its run-wide "
                "ramp; for the schedule's rates as written use 'constant' (or 'constant_with_warmup')",
                kind,
            )


def _refuse_unsupported(args: TrainingArguments, model: torch.nn.Module) -> None:
    """DeepSpeed and FSDP1 keep the weights where the engine's torch optimizer does not see them."""
    fix = "use FSDP2 (TrainingArguments(fsdp=True, fsdp_config={'version': 2}), the default) or DDP"
    if getattr(args, "deepspeed", None):
        raise ConfigError(
            "DSDCallback does not support DeepSpeed: ZeRO partitions the weights and their optimizer "
            f"state outside the torch optimizer the DSD engine holds; {fix}"
        )
    from torch.distributed.fsdp import FullyShardedDataParallel

    if any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
        raise ConfigError(
            "DSDCallback does not support FSDP1 (fsdp_config={'version': 1}): its flat parameters "
            f"hide each weight's shape from the DSD engine; {fix}"
        )


def _last_micro_batch() -> Callable[[], bool]:
    """Whether the micro-batch now running is the last before the optimizer step (the engine asks
    before each training forward): the Trainer sets Accelerate's sync flag before every
    micro-batch, true on the last one of each step, so the pruned gradients are masked once per
    step whatever the gradient accumulation."""
    from accelerate.state import GradientState

    gradient_state = GradientState()
    return lambda: gradient_state.sync_gradients
