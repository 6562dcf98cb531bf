"""One training loop that drives any task through its phases.

A run is a list of phases (``dsd.schedule``) trained one after another on one model and one
optimizer. The task adapter (``dsd.taskkit.adapter``) supplies model, data, loss and evaluation; the
loop supplies the rest: each phase's learning rate and its in-phase decay, ``prune()`` /
``redense()`` at phase boundaries, mixed precision, gradient clipping, evaluation, atomic
checkpoints every epoch, mid-epoch and on SIGINT/SIGTERM, exact resume, and DDP. Around it, each
job has its own module: the run's position and checkpoints (``state``), when to checkpoint
mid-epoch (``clock``), exact split evaluation (``evaluation``), the console, ``metrics.jsonl`` and
progress (``log``), autocast and the loss scaler (``precision``), signals (``signals``), and
whatever watches the run (``hooks``: the study's, and TensorBoard's with ``--tensorboard``).

Reading order: ``RunLoop.run`` is the loop; the methods below it are its steps, in the order
they happen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsd.records import PhaseResult, RunFolder, RunRecord, RunResult
from dsd.records.metrics import EvalLine, LogLine, TrainLine
from dsd.run import dist
from dsd.run.settings import LoopConfig
from dsd.run.training.clock import CheckpointClock
from dsd.run.training.evaluation import evaluate_split
from dsd.run.training.hooks import LoopHook, RunView
from dsd.run.training.log import LossTracker, NonFiniteLossError, RunLog, check_weights
from dsd.run.training.parts import build_parts
from dsd.run.training.precision import Precision
from dsd.run.training.recorder import RunRecorder
from dsd.run.training.signals import stop_on_signals
from dsd.run.training.state import Position, RunState, seed_everything
from dsd.schedule import Phase, Schedule
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.weights import load_model_weights

__all__ = ["NonFiniteLossError", "RunInterrupted", "RunLoop", "RunPlan", "phase_step_counts"]


class RunInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM: a checkpoint was written; rerunning the same command resumes."""


@dataclass
class RunPlan:
    """One run: where it lives, which phases it trains, what it starts from, what watches it."""

    folder: RunFolder
    schedule: Schedule  # this run's phases
    first_phase: int  # index of schedule.phases[0] in the full recipe (baseline = 0)
    record: RunRecord  # config.json
    init_weights: Path | None = None  # plain state_dict to start from (None: fresh init)
    start_step: int = 0  # optimizer steps of the run it branches from (its curves continue them)
    hooks: list[LoopHook] = field(default_factory=list)
    criterion: str = "magnitude"  # each sparse phase's mask (``random``: the mask ablation)
    restart: str = "zero"  # how pruned weights restart at re-dense (``reinit``: the restart ablation)
    reset_state: str = "restored"  # whose optimizer state re-dense restarts (``all``: AC/DC's reset)

    def ablation(self, seed: int, phase: int) -> dict[str, dict[str, Any]]:
        """The engine's arguments for an ablation's ``prune()`` and ``redense()`` (none for DSD).
        Their random draws come from a generator seeded by the run's seed and the phase, so a
        resumed run draws the same; the engine makes every rank use rank 0's draw."""
        generator = torch.Generator().manual_seed(seed * 1000 + phase)
        mask = {"criterion": self.criterion, "generator": generator} if self.criterion != "magnitude" else {}
        restart = {"restart": self.restart, "generator": generator} if self.restart != "zero" else {}
        reset = {"reset_state": self.reset_state} if self.reset_state != "restored" else {}
        return {"prune": mask, "redense": restart | reset}


def phase_step_counts(schedule: Schedule, batches_per_epoch: int) -> list[int]:
    """Optimizer steps of each phase (at least one), for ``batches_per_epoch`` (1 for a schedule
    in steps). A piece of a longer phase (``Phase.span``, AC/DC's) gets its share of that phase's
    steps, counted from the phase's start, so that the pieces of one phase train exactly as many
    steps as the phase itself does in DSD and the control: equal compute, step for step."""
    per_unit = 1 if schedule.unit == "steps" else batches_per_epoch

    def steps_to(phase: Phase, progress: float) -> int:
        """Steps of ``phase``'s whole curve up to ``progress`` into it (its end: what it has whole)."""
        whole = max(1, round(phase.span * per_unit))
        if progress >= phase.span * (1 - 1e-9):
            return whole
        return min(whole, math.floor(progress * per_unit + 0.5 + 1e-6))  # a half rounds up, always

    return [
        steps_to(p, p.offset + p.length) - steps_to(p, p.offset)
        if p.span
        else max(1, round(p.length * per_unit))
        for p in schedule.phases
    ]


class RunLoop:
    """Trains one run (``RunPlan``) of one task to its end, resuming if it was cut short."""

    def __init__(self, adapter: TaskAdapter, plan: RunPlan, config: LoopConfig, info: dist.DistInfo) -> None:
        self.adapter, self.plan, self.config, self.info = adapter, plan, config, info
        self.folder, self.schedule = plan.folder, plan.schedule
        self.hooks = [*plan.hooks, *_watchers(config)]
        self.state = RunState()
        self.resumed = False
        self.log = RunLog(plan.folder, plan.record.label, info.is_main, config.progress)
        self.recorder = RunRecorder(plan.folder, plan.record, info, self.hooks)
        self.precision = Precision(config.amp, info.device)
        self.clock = CheckpointClock(
            config.checkpoint_every, config.checkpoint_minutes, config.log_every, info.distributed
        )
        self.losses = LossTracker()
        self._lr: float | None = None
        self._batches: Any = None
        self._samples = 0  # samples trained by this rank since the process started
        self._started = time.perf_counter()

    @property
    def pos(self) -> Position:
        """Where the run stands (the loop's most used field, hence the short name)."""
        return self.state.position

    # ================================================================= the loop
    def run(self) -> RunResult:
        """Train every phase of the plan; returns the run's result (also written to disk)."""
        self._setup()
        self._started = time.perf_counter() - self.pos.elapsed_s
        title = f"{self.plan.record.model} {self.plan.record.method}"
        with (
            stop_on_signals(self.log.say) as stop,
            self.log.progress(sum(self.phase_steps), self.pos.step, title),
        ):
            while self.pos.phase < len(self.schedule.phases):
                if not self.pos.phase_started:
                    self._enter_phase()
                while self.pos.phase_step < self.phase_steps[self.pos.phase]:
                    self._train_step(self._next_batch())
                    self.log.bar.update(1)
                    epoch_done = self.pos.finish_batch(self.parts.batches_per_epoch)
                    if epoch_done:
                        self._batches = None  # the next epoch's batches come from a new shuffle
                    if self.pos.phase_step == self.phase_steps[self.pos.phase]:
                        break  # the phase end evaluates and checkpoints
                    if epoch_done:
                        self._end_epoch()
                    elif self.pos.step % self.config.log_every == 0:
                        self._flush_losses()
                    if stop.agreed(self.pos.step, self.config.log_every, self.info.distributed):
                        self._checkpoint()
                        raise RunInterrupted(
                            f"stopped at step {self.pos.step}; checkpoint written to "
                            f"{self.folder.checkpoint}, rerun the same command to resume"
                        )
                    if not epoch_done and self.clock.due(self.pos.step):
                        self._checkpoint()  # mid-epoch: a SIGKILL loses at most this much
                self._end_phase()
        return self._finish()

    def evaluate_start(self, state: dict[str, torch.Tensor]) -> RunResult:
        """A baseline that is given, not trained (published weights): evaluate it and record it
        as phase 0, so the branches start from it like from a trained baseline."""
        self._setup()
        load_model_weights(self.parts.raw_model, state, f"start weights ({self.plan.record.start})")
        check_weights(self.parts.raw_model.state_dict(), "0 (the start weights)", self.folder.path)
        metrics = {split: self._evaluate(split, "start") for split in self.parts.eval_sets}
        self.recorder.save_weights(self.parts.raw_model, 0)
        return self._finish(final=metrics)

    # ================================================================= setup and resume
    def _setup(self) -> None:
        config, info, schedule = self.config, self.info, self.schedule
        seed_everything(
            config.seed * 1000 + info.rank, deterministic=config.deterministic, threads=config.threads
        )
        self.parts = build_parts(self.adapter, schedule, self.plan.init_weights, config.seed, info)
        self.phase_steps = phase_step_counts(schedule, self.parts.batches_per_epoch)
        resumed = self.recorder.open(self.parts, self.precision.scaler)
        if resumed is not None:
            self.state, self.losses, self.resumed = resumed, LossTracker(resumed.pending_losses), True
            self.log.say(
                f"resumed at step {self.pos.step} (phase {self._label()}, epoch {self._epoch():.2f})"
            )
        self.view = RunView(
            folder=self.folder,
            schedule=schedule,
            first_phase=self.plan.first_phase,
            start_step=self.plan.start_step,
            position=self.pos,
            model=self.parts.raw_model,
            engine=self.parts.engine,
            selection=self.adapter.prune_selection(),
            histogram_tensor=lambda names: self.adapter.histogram_tensor(self.parts.raw_model, names),
            is_main=info.is_main,
            resumed=self.resumed,
        )
        for hook in self.hooks:
            hook.on_start(self.view)

    # ================================================================= phases and epochs
    def _enter_phase(self) -> None:
        """prune() or redense() as the new phase asks (``RunParts.enter``), telling the hooks."""
        phase = self.schedule.phases[self.pos.phase]
        ablation = self.plan.ablation(self.config.seed, self.pos.phase)
        report = self.parts.enter(phase, ablation, self._notify)
        if report is not None:
            self.log.say(
                f"phase {self._label()}: pruned {len(report.tensors)} tensors to "
                f"{report.mask_sparsity:.2%} (weights: {report.weight_sparsity:.2%})"
            )
        self._notify("entered")
        self.pos.phase_started = True

    def _notify(self, event: str) -> None:
        for hook in self.hooks:
            hook.on_phase_start(self.view, event)

    def _end_phase(self) -> None:
        """Check the weights, evaluate every split, save the phase's weights, advance, checkpoint."""
        self._flush_losses()
        phase = self.schedule.phases[self.pos.phase]
        where = f"{self._label()} (run phase {self.pos.phase + 1} of {len(self.schedule.phases)})"
        check_weights(self.parts.raw_model.state_dict(), where, self.folder.path)
        metrics = {split: self._evaluate(split, "phase_end") for split in self.parts.eval_sets}
        for hook in self.hooks:
            hook.on_phase_end(self.view)
        index = self.plan.first_phase + self.pos.phase
        weights = self.recorder.save_weights(self.parts.raw_model, index)
        steps = self.phase_steps[self.pos.phase]
        self.state.phases.append(PhaseResult.of(phase, index, self.schedule.unit, steps, metrics, weights))
        self.pos.phase += 1
        self.pos.phase_step = 0
        self.pos.phase_started = False
        self._checkpoint()

    def _end_epoch(self) -> None:
        self._flush_losses()
        every = self.config.eval_every
        if every and self.pos.data_epoch % every == 0:
            self._evaluate(next(iter(self.parts.eval_sets)), "epoch")
        self._checkpoint()

    # ================================================================= one step
    def _next_batch(self) -> Any:
        if self._batches is None:
            self._batches = self.parts.train_batches(
                self.adapter, self.pos.data_epoch, self.pos.epoch_batch, self.config.seed, self.info.device
            )
        self.pos.epoch_batch += 1
        return next(self._batches)

    def _train_step(self, batch: Any) -> None:
        parts, optimizer = self.parts, self.parts.optimizer
        lr = self.schedule.lr(self.pos.phase, self._phase_progress())
        if lr != self._lr:
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            self._lr = lr
        batch = self.adapter.to_device(batch, self.info.device)
        with self.precision.autocast():
            loss = self.adapter.training_loss(parts.model, batch)
        scaler = self.precision.scaler  # disabled (a pass-through) unless training in fp16
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.adapter.config.grad_clip > 0:
            scaler.unscale_(optimizer)
            if parts.engine is not None:
                parts.engine.mask_gradients()  # clip the sparse model's gradient, not the dense one
            nn.utils.clip_grad_norm_(parts.trainable, self.adapter.config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        self.losses.add(loss)
        self._samples += self.adapter.batch_size_of(batch)
        self.pos.step += 1
        self.pos.phase_step += 1

    def _check_losses(self) -> None:
        where = f"{self._label()} (run phase {self.pos.phase + 1} of {len(self.schedule.phases)})"
        self.losses.check(self.pos.step, where, self.parts.batches_per_epoch, self.folder.path)

    def _flush_losses(self) -> None:
        """Check the losses since the last flush and log their mean with lr and throughput."""
        self._check_losses()
        loss = self.losses.take_mean()
        if loss is None:
            return
        rate = self.log.throughput(self._samples, self.info.world_size)
        self.log.status(
            f"{self._label()} ep {self._epoch():.2f} loss {loss:.4g} lr {self._lr:.3g} {rate:.0f}/s"
        )
        self._write(TrainLine(**self._position(), train_loss=loss, samples_per_s=rate))

    # ================================================================= evaluation and records
    def _evaluate(self, split: str, kind: str) -> dict[str, float]:
        metrics, merged = evaluate_split(self.adapter, self.parts, split, self.info, self.precision)
        last = kind == "phase_end" and self.pos.phase == len(self.schedule.phases) - 1
        if merged is not None and (kind == "start" or last):
            self.adapter.write_predictions(split, merged, self.folder.predictions(split))
        self._write(EvalLine(**self._position(), split=split, eval_kind=kind, metrics=metrics))
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.log.say(f"{self._label()} epoch {self._epoch():.2f} step {self.pos.step}: {split} {shown}")
        return metrics

    def _position(self) -> dict[str, Any]:
        """Where the run stands, as every ``metrics.jsonl`` line records it."""
        engine = self.parts.engine
        return {
            "phase": self.view.phase_index,
            "phase_label": self._label(),
            "epoch": round(self._epoch(), 6),
            "step": self.pos.step,
            "lr": self._lr,
            "sparsity": engine.sparsity if engine is not None and engine.is_sparse else 0.0,
            "time_s": round(time.perf_counter() - self._started, 3),
        }

    def _write(self, line: LogLine) -> None:
        self.log.write(line)
        for hook in self.hooks:
            hook.on_log(self.view, line)

    def _checkpoint(self) -> None:
        """Everything needed to continue bit-identically (``dsd.run.training.recorder``)."""
        self._check_losses()  # never checkpoint past a NaN; the pending ones resume with the run
        self.pos.elapsed_s = time.perf_counter() - self._started
        self.state.pending_losses = list(self.losses.checked)
        self.recorder.checkpoint(self.state, self.parts, self.precision.scaler)
        self.clock.reset()

    def _finish(self, final: dict[str, Any] | None = None) -> RunResult:
        """The hooks' files, then ``result.json`` and ``done``."""
        for hook in self.hooks:
            hook.on_finish(self.view)
        wall = time.perf_counter() - self._started
        return self.recorder.finish(self.state, final, wall, self.adapter.data_issues())

    # ================================================================= small helpers
    def _phase_progress(self) -> float:
        """Progress into the current phase in the schedule's unit (epochs or steps)."""
        per_unit = 1 if self.schedule.unit == "steps" else self.parts.batches_per_epoch
        return self.pos.phase_step / per_unit

    def _epoch(self) -> float:
        return self.pos.step / self.parts.batches_per_epoch

    def _label(self) -> str:
        return self.schedule.phases[min(self.pos.phase, len(self.schedule.phases) - 1)].label


def _watchers(config: LoopConfig) -> list[LoopHook]:
    """The hooks every run gets from its loop settings (the study adds its own per method)."""
    if not config.tensorboard:
        return []
    from dsd.run.training.tensorboard import TensorBoardHook  # needs the optional tensorboard package

    return [TensorBoardHook()]
