"""One training loop that drives any task through its phases.

A run is a list of phases (``dsd.schedule``) trained one after another on one model and one
optimizer. The task adapter (``dsd.run.adapter``) supplies model, data, loss and evaluation; this
loop supplies the rest: the learning rate of each phase and its in-phase decay, ``prune()`` /
``redense()`` at phase boundaries, AMP on CUDA, gradient clipping, a progress bar, evaluation,
``metrics.jsonl``, atomic checkpoints every epoch and on SIGINT/SIGTERM, exact resume, and DDP.

Reading order: ``Trainer.run`` is the loop; everything else is one step of it.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from dsd import collective, files
from dsd.engine import DSD
from dsd.run import dist
from dsd.run import folder as runfolder
from dsd.run.adapter import TaskAdapter
from dsd.run.histograms import histogram_edges, weight_histogram
from dsd.run.sampling import EpochBatchSampler
from dsd.run.settings import LoopConfig
from dsd.run.weights import load_model_weights
from dsd.schedule import Schedule

CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM: a checkpoint was written; rerunning the same command resumes."""


@dataclass
class RunPlan:
    """One run: where it lives, which phases it trains and what it starts from."""

    folder: Path
    schedule: Schedule  # this run's phases
    first_phase: int  # index of schedule.phases[0] in the full recipe (baseline = 0)
    record: dict[str, Any]  # config.json content
    init_weights: Path | None = None  # plain state_dict to start from (None: fresh init)
    histograms: bool = False  # record the weight histograms of Figure 4


@dataclass
class Position:
    """Where the run stands; saved in every checkpoint."""

    phase: int = 0  # index into the run's schedule
    phase_started: bool = False  # prune()/redense() for this phase already done
    phase_step: int = 0
    step: int = 0
    data_epoch: int = 0
    epoch_batch: int = 0  # batches of data_epoch already consumed
    elapsed_s: float = 0.0


@dataclass
class _History:
    """What the run has measured so far (kept in checkpoints, written to result.json)."""

    phases: list[dict[str, Any]] = field(default_factory=list)
    histograms: dict[str, Any] = field(default_factory=dict)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: full precision)."""
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def default_workers(requested: int, world_size: int, device: torch.device | str) -> int:
    """DataLoader workers per process: the cores shared among the ranks, at most 8; none on CPU.

    Training on the CPU already keeps every core busy with intra-op threads; a worker process
    competing for them stalls those threads at every barrier (measured on 2 cores with the
    ImageNet stand-in: an epoch 13 % faster with the loading done in the main process).
    """
    if requested >= 0:
        return requested
    if torch.device(device).type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, cores // max(1, world_size) - 1))


def capture_rng() -> dict[str, Any]:
    """Every RNG state the run consumes (torch, CUDA, NumPy, Python), weights_only-safe."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains one run (``RunPlan``) of one task to its end, resuming if it was cut short."""

    def __init__(self, adapter: TaskAdapter, plan: RunPlan, loop: LoopConfig, info: dist.DistInfo) -> None:
        self.adapter, self.plan, self.loop, self.info = adapter, plan, loop, info
        self.folder = Path(plan.folder)
        self.schedule = plan.schedule
        self.device = info.device
        self.amp_dtype = autocast_dtype(loop.amp, self.device)
        self.pos = Position()
        self.history = _History()
        self._stop_requested = False
        self._losses: list[torch.Tensor] = []  # this log interval's step losses, on the device
        self._loss_values: list[float] = []  # ... and those already checked, on the host
        self._lr: float | None = None
        self._batches = None
        self._samples = 0  # samples trained by this rank since the process started
        self._tick = (time.perf_counter(), 0)  # (time, samples) at the last progress update
        self._started = time.perf_counter()

    # ================================================================= the loop
    def run(self) -> dict[str, Any]:
        """Train every phase of the plan; returns the run's result (also written to disk)."""
        self._setup()
        self._started = time.perf_counter() - self.pos.elapsed_s
        with self._signals(), self._progress_bar() as bar:
            self.bar = bar
            while self.pos.phase < len(self.schedule.phases):
                if not self.pos.phase_started:
                    self._enter_phase()
                while self.pos.phase_step < self.phase_steps[self.pos.phase]:
                    self._train_step(self._next_batch())
                    bar.update(1)
                    epoch_done = self.pos.epoch_batch == self.batches_per_epoch
                    if epoch_done:
                        self.pos.data_epoch += 1
                        self.pos.epoch_batch = 0
                        self._batches = None
                    if self.pos.phase_step == self.phase_steps[self.pos.phase]:
                        break  # the phase end evaluates and checkpoints
                    if epoch_done:
                        self._end_epoch()
                    elif self.pos.step % self.loop.log_every == 0:
                        self._flush_losses()
                    if self._should_stop():
                        self._checkpoint()
                        raise RunInterrupted(
                            f"stopped at step {self.pos.step}; checkpoint written to "
                            f"{self.folder / runfolder.CHECKPOINT_FILE}, rerun the same command to resume"
                        )
                self._end_phase()
        return self._finish()

    def evaluate_start(self, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """A baseline that is given, not trained (published weights): evaluate it and record it
        as phase 0, so the branches start from it like from a trained baseline."""
        self._setup()
        load_model_weights(self.raw_model, state, f"start weights ({self.plan.record.get('start')})")
        self.bar = tqdm(disable=True)
        metrics = {split: self._evaluate(split, "start") for split in self.eval_sets}
        if self.info.is_main:
            files.atomic_torch_save(self.raw_model.state_dict(), self.folder / "phase0.pt")
        return self._finish(final=metrics)

    # ================================================================= setup and resume
    def _setup(self) -> None:
        loop, adapter = self.loop, self.adapter
        if loop.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = not loop.deterministic
        seed_everything(loop.seed * 1000 + self.info.rank)

        model = adapter.build_model()
        if self.plan.init_weights is not None:
            state = files.safe_torch_load(self.plan.init_weights)
            load_model_weights(model, state, f"start weights {self.plan.init_weights}")
        self.raw_model = model.to(self.device)
        self.optimizer = adapter.build_optimizer(self.raw_model, self.schedule.phases[0].lr)
        self.model: nn.Module = self.raw_model
        if self.info.distributed:
            ids = [self.info.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.raw_model, device_ids=ids)
        self.engine = None
        if not self.schedule.is_dense:
            self.engine = DSD(self.model, self.optimizer, **adapter.prune_selection())
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.trainable = [p for p in self.raw_model.parameters() if p.requires_grad]

        self.train_set = adapter.train_dataset()
        self.eval_sets = adapter.eval_datasets()
        self.workers = default_workers(adapter.config.workers, self.info.world_size, self.device)
        self.sampler = EpochBatchSampler(
            len(self.train_set),
            adapter.config.batch_size,
            seed=loop.seed * 1_000_003,
            rank=self.info.rank,
            world_size=self.info.world_size,
            lengths=adapter.sample_lengths(),
        )
        self.batches_per_epoch = self.sampler.batches_per_epoch
        self.phase_steps = [self._steps_of(p.length) for p in self.schedule.phases]

        if self.info.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not (self.folder / runfolder.CONFIG_FILE).exists():
                files.atomic_write_json(self.folder / runfolder.CONFIG_FILE, self.plan.record)
        dist.barrier()
        if (self.folder / runfolder.CHECKPOINT_FILE).exists():
            self._resume()
        elif self.info.is_main:
            runfolder.truncate_file(self.folder / runfolder.METRICS_FILE, 0)

    def _steps_of(self, length: float) -> int:
        if self.schedule.unit == "steps":
            return max(1, round(length))
        return max(1, round(length * self.batches_per_epoch))

    def _resume(self) -> None:
        path = self.folder / runfolder.CHECKPOINT_FILE
        state = files.safe_torch_load(path, map_location=self.device)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a checkpoint of this loop (format {CHECKPOINT_FORMAT})")
        load_model_weights(self.raw_model, state["model"], f"checkpoint {path}")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        if self.engine is not None:
            self.engine.load_state_dict(state["engine"])
        self.pos = Position(**state["position"])
        self.history = _History(**state["history"])
        self._loss_values = list(state["pending_losses"])
        ranks = state["rng"]
        restore_rng(ranks[self.info.rank] if self.info.rank < len(ranks) else ranks[0])
        if self.info.is_main:
            runfolder.truncate_file(self.folder / runfolder.METRICS_FILE, state["metrics_bytes"])
            self._say(f"resumed at step {self.pos.step} (phase {self._label()}, epoch {self._epoch():.2f})")

    # ================================================================= phases
    def _enter_phase(self) -> None:
        """prune() or redense() as the new phase asks, recording Figure 4's moments."""
        phase = self.schedule.phases[self.pos.phase]
        engine = self.engine
        if engine is not None:
            if engine.is_sparse:
                engine.redense()
                self._record_histogram("redense_start")
            if phase.is_sparse:
                self._record_histogram("dense")
                report = engine.prune(phase.sparsity)
                self._record_histogram("pruned")
                self._say(
                    f"phase {self._label()}: pruned {len(report.tensors)} tensors to "
                    f"{report.mask_sparsity:.2%} (weights: {report.weight_sparsity:.2%})"
                )
        self.pos.phase_started = True

    def _end_phase(self) -> None:
        """Evaluate every split, save the phase's weights, advance, checkpoint."""
        self._flush_losses()
        phase = self.schedule.phases[self.pos.phase]
        metrics = {split: self._evaluate(split, "phase_end") for split in self.eval_sets}
        if self.engine is not None and self.engine.is_sparse:
            self._record_histogram("sparse_trained")
        elif self.history.histograms.get("moments", {}).get("redense_start") is not None:
            self._record_histogram("redense_trained")
        index = self.plan.first_phase + self.pos.phase
        self.history.phases.append(
            {
                "index": index,
                "label": phase.label,
                "kind": phase.kind,
                "sparsity": phase.sparsity,
                "length": phase.length,
                "unit": self.schedule.unit,
                "lr": phase.lr,
                "steps": self.phase_steps[self.pos.phase],
                "metrics": metrics,
                "weights": f"phase{index}.pt",
            }
        )
        if self.info.is_main:
            files.atomic_torch_save(self.raw_model.state_dict(), self.folder / f"phase{index}.pt")
        self.pos.phase += 1
        self.pos.phase_step = 0
        self.pos.phase_started = False
        self._checkpoint()

    def _end_epoch(self) -> None:
        self._flush_losses()
        every = self.loop.eval_every
        if every and self.pos.data_epoch % every == 0:
            first = next(iter(self.eval_sets))
            self._evaluate(first, "epoch")
        self._checkpoint()

    # ================================================================= one step
    def _next_batch(self) -> Any:
        if self._batches is None:
            self.sampler.set_epoch(self.pos.data_epoch, self.pos.epoch_batch)
            loader = DataLoader(
                self.train_set,
                batch_sampler=self.sampler,
                num_workers=self.workers,
                collate_fn=self.adapter.collate_fn(),
                pin_memory=self.device.type == "cuda",
                generator=torch.Generator().manual_seed(self.loop.seed * 1_000_003 + self.pos.data_epoch),
            )
            self._batches = iter(loader)
        self.pos.epoch_batch += 1
        return next(self._batches)

    def _train_step(self, batch: Any) -> None:
        lr = self.schedule.lr(self.pos.phase, self._phase_progress())
        if lr != self._lr:
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            self._lr = lr
        batch = self.adapter.to_device(batch, self.device)
        with self._autocast():
            loss = self.adapter.training_loss(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        clip = self.adapter.config.grad_clip
        if clip > 0:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            if self.engine is not None:
                self.engine.mask_gradients()  # clip the sparse model's gradient, not the dense one
            nn.utils.clip_grad_norm_(self.trainable, clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self._losses.append(loss.detach())
        self._samples += self.adapter.batch_size_of(batch)
        self.pos.step += 1
        self.pos.phase_step += 1

    def _collect_losses(self) -> None:
        """Bring the step losses to the host (one device sync) and check each one."""
        if not self._losses:
            return
        values = torch.stack(self._losses).float().cpu().tolist()
        self._losses = []
        first_step = self.pos.step - len(self._loss_values) - len(values) + 1
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                step = first_step + len(self._loss_values) + offset
                raise NonFiniteLossError(
                    f"loss is {value} at phase {self._label()} (run phase {self.pos.phase + 1} of "
                    f"{len(self.schedule.phases)}), epoch {step / self.batches_per_epoch:.2f}, step {step}; "
                    f"the last good checkpoint is kept in {self.folder}. Lower the learning rate, "
                    "enable grad_clip, or check the data."
                )
        self._loss_values.extend(values)

    def _flush_losses(self) -> None:
        """Check the losses since the last flush and log their mean with lr and throughput."""
        self._collect_losses()
        if not self._loss_values:
            return
        loss = sum(self._loss_values) / len(self._loss_values)
        self._loss_values = []
        now, samples = time.perf_counter(), self._samples
        rate = (samples - self._tick[1]) * self.info.world_size / max(1e-9, now - self._tick[0])
        self._tick = (now, samples)
        status = f"{self._label()} ep {self._epoch():.2f} loss {loss:.4g} lr {self._lr:.3g} {rate:.0f}/s"
        self.bar.set_postfix_str(status, refresh=False)
        self._log(
            {"split": "train", "kind": "train", "metrics": {}, "train_loss": loss, "samples_per_s": rate}
        )

    # ================================================================= evaluation
    def _evaluate(self, split: str, kind: str) -> dict[str, float]:
        """Exact metrics of a whole split: each rank scores a strided shard, rank 0 reduces."""
        dataset = self.eval_sets[split]
        shard = Subset(dataset, dist.shard_indices(len(dataset), self.info.rank, self.info.world_size))
        loader = DataLoader(
            shard,
            batch_size=self.adapter.config.eval_batch_size or self.adapter.config.batch_size,
            num_workers=self.workers,
            collate_fn=self.adapter.collate_fn(),
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(0),  # never draws from the training RNG
        )
        model = self.raw_model
        was_training = model.training
        model.eval()
        local: list[Any] = []
        with torch.no_grad(), self._autocast():
            for batch in loader:
                batch = self.adapter.to_device(batch, self.device)
                out = self.adapter.eval_batch(model, batch, split)
                if len(out) != self.adapter.batch_size_of(batch):
                    raise RuntimeError(
                        f"{type(self.adapter).__name__}.eval_batch returned {len(out)} records for a "
                        f"batch of {self.adapter.batch_size_of(batch)}; it must return one per sample"
                    )
                local.extend(out)
        model.train(was_training)
        merged = dist.gather_records(local, len(dataset))
        metrics = None
        if self.info.is_main:
            metrics = self.adapter.compute_metrics(split, merged)
            if kind == "start" or (kind == "phase_end" and self.pos.phase == len(self.schedule.phases) - 1):
                self.adapter.write_predictions(split, merged, self.folder / "predictions" / f"{split}.txt")
        metrics = dist.broadcast_object(metrics)
        self._log({"split": split, "kind": kind, "metrics": metrics, "train_loss": None})
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self._say(f"{self._label()} epoch {self._epoch():.2f} step {self.pos.step}: {split} {shown}")
        return metrics

    # ================================================================= records
    def _log(self, line: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        sparsity = self.engine.sparsity if self.engine is not None and self.engine.is_sparse else 0.0
        line = {
            "phase": self.plan.first_phase + min(self.pos.phase, len(self.schedule.phases) - 1),
            "phase_label": self._label(),
            "epoch": round(self._epoch(), 6),
            "step": self.pos.step,
            "lr": self._lr,
            "sparsity": sparsity,
            "time_s": round(time.perf_counter() - self._started, 3),
            **line,
        }
        runfolder.append_jsonl(self.folder / runfolder.METRICS_FILE, line)

    def _record_histogram(self, moment: str) -> None:
        """Counts of the chosen tensor's weights at one of Figure 4's moments (first cycle only)."""
        if not self.plan.histograms or self.engine is None:
            return
        hist = self.history.histograms
        if moment in hist.get("moments", {}):
            return
        names = [t.name for t in self.engine.tensors]
        if not hist:
            name = self.adapter.histogram_tensor(self.raw_model, names)
            hist.update(tensor=name, moments={})
        index = names.index(hist["tensor"])
        weight = self.engine.tensors[index].param.detach()
        if "bin_edges" not in hist:
            hist["bin_edges"] = histogram_edges(weight)
        values = weight
        if moment in ("pruned", "sparse_trained"):  # the survivors: a hole around zero
            values = weight[self.engine.masks[hist["tensor"]]]
        hist["moments"][moment] = weight_histogram(values, hist["bin_edges"])

    def _checkpoint(self) -> None:
        """Everything needed to continue bit-identically, written atomically by rank 0."""
        self._collect_losses()  # never checkpoint past a NaN; the pending ones resume with the run
        self.pos.elapsed_s = time.perf_counter() - self._started
        rng = dist.gather_objects(capture_rng())
        if not self.info.is_main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "engine": self.engine.state_dict() if self.engine is not None else {},
            "position": vars(self.pos).copy(),
            "history": {"phases": self.history.phases, "histograms": self.history.histograms},
            "rng": rng,
            "metrics_bytes": runfolder.file_size(self.folder / runfolder.METRICS_FILE),
            "pending_losses": list(self._loss_values),
        }
        files.atomic_torch_save(state, self.folder / runfolder.CHECKPOINT_FILE)

    def _finish(self, final: dict[str, Any] | None = None) -> dict[str, Any]:
        """result.json, histograms.json, then ``done``; the resume checkpoint is dropped."""
        result = dict(self.plan.record)
        result.update(
            phases=self.history.phases,
            final=final if final is not None else self.history.phases[-1]["metrics"],
            wall_time_s=round(time.perf_counter() - self._started, 3),
            steps=self.pos.step,
            data_issues=self.adapter.data_issues(),
        )
        if self.info.is_main:
            if self.history.histograms:
                files.atomic_write_json(self.folder / "histograms.json", self.history.histograms)
            files.atomic_write_json(self.folder / runfolder.RESULT_FILE, result)
            runfolder.RunFolder(self.folder).mark_done()
            (self.folder / runfolder.CHECKPOINT_FILE).unlink(missing_ok=True)
        dist.barrier()
        return result

    # ================================================================= small helpers
    def _phase_progress(self) -> float:
        """Progress into the current phase in the schedule's unit (epochs or steps)."""
        if self.schedule.unit == "steps":
            return float(self.pos.phase_step)
        return self.pos.phase_step / self.batches_per_epoch

    def _epoch(self) -> float:
        return self.pos.step / self.batches_per_epoch

    def _label(self) -> str:
        return self.schedule.phases[min(self.pos.phase, len(self.schedule.phases) - 1)].label

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _say(self, message: str) -> None:
        if self.info.is_main:
            prefix = (
                f"[{self.plan.record.get('task', '')} {self.plan.record.get('model', '')} "
                f"{self.plan.record.get('method', '')} seed{self.loop.seed}]"
            )
            tqdm.write(f"{prefix} {message}", file=sys.stderr)

    def _should_stop(self) -> bool:
        if not self.info.distributed:
            return self._stop_requested
        if self.pos.step % self.loop.log_every:
            return False
        return collective.any_rank(self._stop_requested)

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM ask for a checkpoint at the next step; a second SIGINT aborts at once."""
        if not _in_main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_requested = True
            self._say(f"{signal.Signals(signum).name}: checkpointing at the next step ...")

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _progress_bar(self) -> tqdm:
        show = self.loop.progress if self.loop.progress is not None else sys.stderr.isatty()
        return tqdm(
            total=sum(self.phase_steps),
            initial=self.pos.step,
            disable=not (show and self.info.is_main),
            unit="step",
            dynamic_ncols=True,
            desc=f"{self.plan.record.get('model', '')} {self.plan.record.get('method', '')}",
            file=sys.stderr,
        )


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
