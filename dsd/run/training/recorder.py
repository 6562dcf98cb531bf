"""What a run leaves on disk, in the order it leaves it.

``config.json`` first (a folder with only that is a run that started), then ``metrics.jsonl``
line by line, a checkpoint at every epoch end, phase end and stop request, each phase's weights,
and at the end ``result.json`` and the ``done`` marker, after which the checkpoint goes. Rank 0
writes, each file atomically; the other ranks take part in the collectives (their RNG states are
gathered into every checkpoint) and wait at the barriers.
"""

from __future__ import annotations

from typing import Any

import torch

from dsd.errors import CheckpointError
from dsd.files import atomic_torch_save, safe_torch_load, stale_temporaries
from dsd.records import Metrics, RunFolder, RunRecord, RunResult
from dsd.records.metrics import size_of, truncate
from dsd.records.run import write_record, write_result
from dsd.run import dist
from dsd.run.training.hooks import LoopHook
from dsd.run.training.parts import RunParts
from dsd.run.training.state import RunState, capture_rng


class RunRecorder:
    """The files of one run folder, written as the run goes."""

    def __init__(
        self, folder: RunFolder, record: RunRecord, info: dist.DistInfo, hooks: list[LoopHook]
    ) -> None:
        self.folder, self.record, self.info, self.hooks = folder, record, info, hooks

    def open(self, parts: RunParts, scaler: torch.amp.GradScaler) -> RunState | None:
        """Write ``config.json`` if it is new; return the state saved by an earlier attempt
        (loaded into ``parts``, ``scaler`` and the hooks), or None when the run starts afresh."""
        if self.info.is_main:
            if not self.folder.config.exists():
                write_record(self.folder, self.record)
            self.remove_temporaries()
        dist.barrier()
        path = self.folder.checkpoint
        if not path.exists():
            if self.info.is_main:
                truncate(self.folder.metrics, 0)
            return None
        try:
            saved = safe_torch_load(path, map_location=self.info.device)
        except CheckpointError as err:
            raise CheckpointError(
                f"{err}. Delete {path} to train this run again from its start (its metrics restart "
                "with it), or put a good copy back; rerunning the same command then goes on"
            ) from None
        state, metrics_bytes = RunState.from_checkpoint(saved, path, parts, scaler, self.info.rank)
        for hook in self.hooks:
            hook.load_state_dict(state.hooks.get(hook.name, {}))
        if self.info.is_main:
            truncate(self.folder.metrics, metrics_bytes)  # lines logged after the checkpoint
        return state

    def checkpoint(self, state: RunState, parts: RunParts, scaler: torch.amp.GradScaler) -> None:
        """Everything needed to continue bit-identically (every rank calls this)."""
        state.hooks = {hook.name: hook.state_dict() for hook in self.hooks}
        rng = dist.gather_objects(capture_rng())
        if self.info.is_main:
            saved = state.to_checkpoint(parts, scaler, rng, size_of(self.folder.metrics))
            atomic_torch_save(saved, self.folder.checkpoint)

    def save_weights(self, model: torch.nn.Module, phase_index: int) -> str:
        """The model's weights at the end of a recipe phase; returns the file's name."""
        if self.info.is_main:
            atomic_torch_save(model.state_dict(), self.folder.phase_weights(phase_index))
        return RunFolder.phase_weights_name(phase_index)

    def finish(
        self, state: RunState, final: Metrics | None, wall_time_s: float, issues: dict[str, Any]
    ) -> RunResult:
        """``result.json``, then ``done``; the resume checkpoint is dropped."""
        result = RunResult.of(
            self.record,
            phases=state.phases,
            final=final if final is not None else state.phases[-1].metrics,
            wall_time_s=round(wall_time_s, 3),
            steps=state.position.step,
            data_issues=issues,
        )
        if self.info.is_main:
            write_result(self.folder, result)
            self.folder.mark_done()
            self.folder.checkpoint.unlink(missing_ok=True)
            self.remove_temporaries()
        dist.barrier()
        return result

    def remove_temporaries(self) -> None:
        """Temporary files of writes a killed attempt left half done (a checkpoint is large: about
        a gigabyte per preemption on VGG-16). Only this run's process writes here."""
        for path in stale_temporaries(self.folder.path):
            path.unlink(missing_ok=True)
