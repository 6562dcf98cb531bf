"""Where a run stands, and the checkpoint that lets it continue bit-identically.

A checkpoint holds the model, the optimizer, the loss scaler and the engine (masks), the run's
position (phase, step, epoch, batch within the epoch), what it has measured so far, the state of
its hooks, every random generator of every rank, and how far ``metrics.jsonl`` had got (a resumed
run cuts lines logged after the checkpoint, so no step is logged twice). With all of it restored,
a resumed run sees the same batches, the same dropout and the same augmentations as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dsd.errors import CheckpointError
from dsd.records.run import PhaseResult
from dsd.taskkit.weights import load_model_weights

if TYPE_CHECKING:
    from dsd.run.training.parts import RunParts

#: 2: hooks' states under "hooks" (format 1 kept the histograms under "history").
CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)


@dataclass
class Position:
    """Where the run stands."""

    phase: int = 0  # index into the run's schedule
    phase_started: bool = False  # prune()/redense() for this phase already done
    phase_step: int = 0
    step: int = 0
    data_epoch: int = 0
    epoch_batch: int = 0  # batches of data_epoch already consumed
    elapsed_s: float = 0.0

    def finish_batch(self, batches_per_epoch: int) -> bool:
        """Move past an epoch's last batch; True when an epoch just ended."""
        if self.epoch_batch < batches_per_epoch:
            return False
        self.data_epoch += 1
        self.epoch_batch = 0
        return True


@dataclass
class RunState:
    """Position and what the run has measured, apart from the objects that hold their own state."""

    position: Position = field(default_factory=Position)
    phases: list[PhaseResult] = field(default_factory=list)
    pending_losses: list[float] = field(default_factory=list)  # checked, not yet logged
    hooks: dict[str, Any] = field(default_factory=dict)

    def to_checkpoint(
        self, parts: RunParts, scaler: torch.amp.GradScaler, rng: list[dict[str, Any]], metrics_bytes: int
    ) -> dict[str, Any]:
        """Everything to continue from here, as plain containers and tensors (weights_only-safe)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": parts.raw_model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "engine": parts.engine.state_dict() if parts.engine is not None else {},
            "position": dataclasses.asdict(self.position),
            "phases": [dataclasses.asdict(p) for p in self.phases],
            "hooks": self.hooks,
            "rng": rng,
            "metrics_bytes": metrics_bytes,
            "pending_losses": list(self.pending_losses),
        }

    @classmethod
    def from_checkpoint(
        cls, state: dict[str, Any], path: Path, parts: RunParts, scaler: torch.amp.GradScaler, rank: int
    ) -> tuple[RunState, int]:
        """Load ``state`` into the objects, restore this rank's RNG; returns the run state and
        the size ``metrics.jsonl`` had at the checkpoint."""
        if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
            raise CheckpointError(
                f"{path} is not a checkpoint of this loop (format {CHECKPOINT_FORMAT} expected); "
                "delete the run folder to start the run again"
            )
        load_model_weights(parts.raw_model, state["model"], f"checkpoint {path}")
        parts.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        if parts.engine is not None:
            parts.engine.load_state_dict(state["engine"])
        if state["format"] == 1:  # the histograms were the only hook state
            phases, histograms = state["history"]["phases"], state["history"]["histograms"]
            hooks = {"histograms": histograms} if histograms else {}
        else:
            phases, hooks = state["phases"], state["hooks"]
        ranks = state["rng"]
        restore_rng(ranks[rank] if rank < len(ranks) else ranks[0])
        run_state = cls(
            position=Position(**state["position"]),
            phases=[PhaseResult(**p) for p in phases],
            pending_losses=list(state["pending_losses"]),
            hooks=dict(hooks),
        )
        return run_state, int(state["metrics_bytes"])


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


def seed_everything(seed: int, deterministic: bool = False, threads: int = 0) -> None:
    """Seed every generator the run draws from; ``deterministic``: kernels that give the same
    bits every time (slower), so that a CPU run resumes bit-identically; ``threads`` (0: leave
    it): the intra-op thread count, which on the CPU changes the last bits of every result too."""
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not deterministic
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
