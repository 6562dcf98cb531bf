"""A finished run whose ``result.json`` was lost or damaged: measured again from its saved weights.

A run folder marked ``done`` holds the weights of every phase (``phase<i>.pt``); what the run
measured is a pure function of them and the evaluation splits. So rather than reuse the folder
without a word (the report would then skip it) or train it again, its weights are evaluated
again and ``result.json`` is written anew. Only the wall time is lost. Weights that do not load
either leave the folder to be deleted, and the message says so.
"""

from __future__ import annotations

from typing import Any

from dsd.errors import CheckpointError, RecordError
from dsd.files import JSONFileError, safe_torch_load
from dsd.records import PhaseResult, RunResult, load_result
from dsd.records.metrics import read_lines
from dsd.run import dist
from dsd.run.settings import LoopConfig
from dsd.run.training.evaluation import evaluate_split
from dsd.run.training.loop import RunPlan, phase_step_counts
from dsd.run.training.parts import build_parts
from dsd.run.training.precision import Precision
from dsd.run.training.recorder import RunRecorder
from dsd.run.training.state import RunState, seed_everything
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.weights import load_model_weights


def damaged_result(plan: RunPlan) -> str | None:
    """Why the finished run's ``result.json`` cannot be used ("missing", "not valid JSON (...)"),
    or None when it reads."""
    try:
        load_result(plan.folder.path)
    except JSONFileError as err:
        return "missing" if err.missing else err.reason
    except ValueError as err:
        return str(err)
    return None


def reevaluate(adapter: TaskAdapter, plan: RunPlan, config: LoopConfig, info: dist.DistInfo) -> RunResult:
    """Evaluate each phase's saved weights of the finished run ``plan`` again and write its
    ``result.json`` (every rank takes part; rank 0 writes)."""
    seed_everything(
        config.seed * 1000 + info.rank, deterministic=config.deterministic, threads=config.threads
    )
    parts = build_parts(adapter, plan.schedule, None, config.seed, info)
    precision = Precision(config.amp, info.device)
    state = RunState()

    def measured(index: int) -> dict[str, Any]:
        path = plan.folder.phase_weights(index)
        try:
            weights = safe_torch_load(path, map_location=info.device)
        except CheckpointError as err:
            raise RecordError(
                f"{plan.folder.path} is marked done but its result.json is damaged and {err}. Delete the "
                "run folder; rerunning trains the run again"
            ) from None
        load_model_weights(parts.raw_model, weights, f"weights {path}")
        return {split: evaluate_split(adapter, parts, split, info, precision)[0] for split in parts.eval_sets}

    final = None
    if not plan.record.schedule:  # a start given by --start: evaluated, never trained
        final = measured(0)
    else:
        steps = phase_step_counts(plan.schedule, parts.batches_per_epoch)
        for i, phase in enumerate(plan.schedule.phases):
            index = plan.first_phase + i
            weights = plan.folder.phase_weights_name(index)
            state.phases.append(
                PhaseResult.of(phase, index, plan.schedule.unit, steps[i], measured(index), weights)
            )
        state.position.step = _logged_steps(plan) or sum(steps)
    return RunRecorder(plan.folder, plan.record, info, []).finish(state, final, 0.0, adapter.data_issues())


def _logged_steps(plan: RunPlan) -> int:
    """The last optimizer step ``metrics.jsonl`` logged (0 when it cannot say)."""
    try:
        return max((line.step for line in read_lines(plan.folder.metrics)), default=0)
    except (OSError, ValueError):
        return 0
