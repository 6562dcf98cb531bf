"""A study's plan: what ``dsd-suite run`` would do, worked out without doing any of it.

A week-long ImageNet study is checked before it is launched: which data was found (splits,
sizes, classes or vocabulary) and what preparing it would still take, the model and its
parameter count, which tensors DSD prunes (the engine's own summary), every run of every method
and seed with its phases (length, optimizer steps, learning rates, sparsity), which runs
already exist and would be reused, and the optimizer steps in all. It writes nothing and builds
nothing: the data is described by ``TaskAdapter.inspect``, the runs are the study's own graph
(``dsd.run.study.Study``, the one ``run`` walks), and a run's folder is only named where the
data's fingerprint (part of every run's hash) is known without preparing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from dsd import selection
from dsd.engine import DSD
from dsd.records import RunFolder
from dsd.run.preflight import Preflight
from dsd.run.settings import RunConfig
from dsd.run.study import PlannedRun, Study, start_identity
from dsd.run.training.loop import phase_step_counts
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter
from dsd.taskkit.summary import DataSummary

REUSED, RESUMES, NEW, UNKNOWN = "done: reused", "unfinished: resumes", "new", "unknown yet"


@dataclass
class PlanLine:
    """One run of the study as the plan shows it: the run, its state, its optimizer steps."""

    run: PlannedRun
    status: str
    steps: list[int] | None  # optimizer steps per phase; None: the training set's size is unknown

    @property
    def method(self) -> str:
        return self.run.method.name if self.run.requested else f"{self.run.method.name} (for the branches)"

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def schedule(self) -> Schedule:
        return self.run.schedule

    @property
    def folder(self) -> RunFolder | None:
        return self.run.folder

    @property
    def evaluates_start(self) -> bool:
        return self.run.evaluates_start

    @property
    def total_steps(self) -> int | None:
        return None if self.steps is None else (0 if self.evaluates_start else sum(self.steps))

    @property
    def to_train(self) -> int | None:
        return 0 if self.status == REUSED else self.total_steps


@dataclass
class StudyPlan:
    """Everything ``dsd-suite plan`` prints."""

    task: str
    model_name: str
    data: DataSummary
    recipe: Schedule
    run: RunConfig
    batch_size: int
    world_size: int
    batches_per_epoch: int | None
    parameters: int | None
    pruned: list[str] | None  # what the engine prunes and leaves dense, in a few lines
    setup: list[str] = field(default_factory=list)  # departures from the paper's setup (reduced models)
    runs: list[PlanLine] = field(default_factory=list)

    def steps(self, key: str) -> int | None:
        """``total_steps`` or ``to_train`` summed over every run (None when any is unknown)."""
        values = [getattr(r, key) for r in self.runs]
        return None if any(v is None for v in values) else sum(values)


def plan_study(adapter: TaskAdapter, run: RunConfig, checked: Preflight) -> StudyPlan:
    """The study ``run_study(adapter, run)`` would run, from what the checks before it found."""
    data, recipe = checked.data, checked.recipe
    samples = data.train_samples
    per_epoch = None if samples is None else samples // (adapter.config.batch_size * checked.world_size)
    model = checked.model
    plan = StudyPlan(
        task=adapter.name,
        model_name=adapter.model_name,
        data=data,
        recipe=recipe,
        run=run,
        batch_size=adapter.config.batch_size,
        world_size=checked.world_size,
        batches_per_epoch=per_epoch,
        parameters=None if model is None else sum(p.numel() for p in model.parameters()),
        pruned=None if model is None else _pruned(adapter, model, recipe),
        setup=adapter.setup_notes(),
    )
    digest = data.fingerprint.digest if data.fingerprint is not None else None
    study = Study.build(adapter, run, [recipe], digest, start_identity(adapter, run.start))
    plan.runs = [PlanLine(r, _status(r.folder), _steps(r.schedule, per_epoch)) for r in study]
    return plan


def _pruned(adapter: TaskAdapter, model: nn.Module, recipe: Schedule) -> list[str]:
    """What the engine would prune in ``model`` (a throwaway copy) and what it leaves dense, by
    reason: the engine's summary (``DSD.summary``) folded to a few lines."""
    optimizer = adapter.build_optimizer(model, recipe.phases[0].lr)
    engine = DSD(model, optimizer, **adapter.prune_selection())
    chosen = {t.name for t in engine.tensors}
    weights = sum(t.numel for t in engine.tensors)
    total = sum(p.numel() for p in model.parameters())
    types = Counter(t.module_type for t in engine.tensors)
    largest = max(engine.tensors, key=lambda t: t.numel)
    share = weights / max(1, total)
    lines = [
        f"{_count(len(engine.tensors), 'tensor')}, {weights:,} weights ({share:.1%} of the parameters): "
        + ", ".join(f"{n} {kind}" for kind, n in types.most_common())
        + f"; the largest {largest.name} {list(largest.param.shape)}"
    ]
    left: dict[str, list[int]] = {}
    for name, param, _, reason in selection.considered_parameters(model, engine.skip_first_conv):
        if name not in chosen:
            left.setdefault(reason or "excluded by the task", []).append(param.numel())
    lines += [
        f"left dense: {why}: {_count(len(sizes), 'tensor')}, {sum(sizes):,} values"
        for why, sizes in left.items()
    ]
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _steps(schedule: Schedule, per_epoch: int | None) -> list[int] | None:
    if schedule.unit == "steps":
        return phase_step_counts(schedule, 1)
    return None if per_epoch is None else phase_step_counts(schedule, per_epoch)


def _status(folder: RunFolder | None) -> str:
    if folder is None:
        return UNKNOWN
    if folder.is_done:
        return REUSED
    if folder.checkpoint.exists():
        return RESUMES
    return NEW


# ---------------------------------------------------------------------- the printout
def render(plan: StudyPlan) -> str:
    """The plan as ``dsd-suite plan`` prints it."""
    data, run = plan.data, plan.run
    lines = [
        f"dsd-suite plan: {plan.task} {plan.model_name}, seeds {','.join(map(str, run.seeds))}, "
        f"methods {', '.join(run.methods)} (a dry run: nothing is built, trained or written)",
        "",
        f"data      {data.description}",
        f"          {_splits(data)}",
    ]
    lines += [f"          {name}: {_fact(value)}" for name, value in data.facts.items()]
    if data.pending:
        lines.append("          before training: " + "; then ".join(data.pending))
    if plan.parameters is None:
        lines.append(f"model     {plan.model_name}: its size is known once the data is prepared")
    else:
        lines.append(
            f"model     {plan.model_name}: {plan.parameters:,} parameters ({plan.parameters / 1e6:.1f} M)"
        )
    if plan.setup:
        lines.append(f"setup     {'; '.join(plan.setup)} (named in every table row)")
    if plan.pruned:
        lines += ["pruned    " + plan.pruned[0], *("          " + line for line in plan.pruned[1:])]
    per_step = plan.batch_size * plan.world_size
    processes = f"{plan.world_size} processes x {plan.batch_size}" if plan.world_size > 1 else "one process"
    epoch = (
        f"{plan.batches_per_epoch:,} steps per epoch of {data.train_samples:,} {data.unit}"
        if plan.batches_per_epoch is not None
        else "steps per epoch known once the data is prepared"
    )
    lines.append(f"batches   {per_step:,} {data.unit} per step ({processes}); {epoch}")
    scale = f", every phase x{run.epochs_scale:g}" if run.epochs_scale != 1 else ""
    lines.append(f"recipe    {plan.recipe}{scale}")
    if run.start:
        lines.append(f"start     --start {run.start}: the baseline is evaluated, not trained")
    lines += ["", "runs"]
    for planned in plan.runs:
        lines += _run_lines(planned, plan)
    lines += ["", _total(plan)]
    if any(r.status == UNKNOWN for r in plan.runs):
        lines.append(
            f"          {UNKNOWN}: a run's hash holds the data's fingerprint, known once the data is "
            "prepared; a finished run of the same data is then reused"
        )
    return "\n".join(lines)


def _splits(data: DataSummary) -> str:
    parts = []
    for i, (split, count) in enumerate(data.splits.items()):
        unit = data.unit if i == 0 or not data.eval_unit else data.eval_unit
        parts.append(f"{split} {'?' if count is None else f'{count:,}'} {unit}")
    source = " (from the stand-in's specification)" if data.implied else ""
    return ", ".join(parts) + source


def _fact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fact(v)}" for k, v in value.items())
    return f"{value:,}" if isinstance(value, int) else str(value)


def _run_lines(planned: PlanLine, plan: StudyPlan) -> list[str]:
    where = (
        planned.folder.path.as_posix() if planned.folder is not None else "(folder: hash known once prepared)"
    )
    lines = [f"  seed {planned.seed}  {planned.method:<16} {planned.status:<20} {where}"]
    if planned.evaluates_start:
        return [*lines, "          evaluates the start weights (no training)"]
    schedule = planned.schedule
    per_unit = 1 if schedule.unit == "steps" else plan.batches_per_epoch
    for i, phase in enumerate(schedule.phases):
        steps = planned.steps[i] if planned.steps is not None else None
        length = f"{phase.length:g} {schedule.unit if phase.length != 1 else schedule.unit[:-1]}"
        shown = f"{steps:,} steps" if steps is not None else "? steps"
        lr = (
            f"lr {phase.lr:g}" if not phase.span else f"lr {schedule.lr(i, 0.0):.3g}"
        )  # a piece: where it starts
        if steps is not None and per_unit and schedule.decay.rule != "none":
            lr += f" -> {schedule.lr(i, (steps - 1) / per_unit):.3g} ({schedule.decay})"
        sparsity = f"{phase.sparsity:.0%} of the pruned tensors at zero" if phase.is_sparse else "dense"
        index = planned.run.first_phase + i
        label = ("+" if phase.joined else "") + phase.label  # +: continues the phase before, same mask
        lines.append(f"          phase {index} {label:<6} {length:<14} {shown:<14} {lr:<34} {sparsity}")
    return lines


def _total(plan: StudyPlan) -> str:
    total, to_train = plan.steps("total_steps"), plan.steps("to_train")
    counts = {
        status: sum(r.status == status for r in plan.runs) for status in (REUSED, RESUMES, NEW, UNKNOWN)
    }
    shown = ", ".join(f"{n} {status.split(':')[0]}" for status, n in counts.items() if n)
    if total is None:
        return f"total     {len(plan.runs)} runs ({shown}); optimizer steps known once the data is prepared"
    runs = f"{len(plan.runs)} runs ({shown})"
    return f"total     {total:,} optimizer steps in {runs}; {to_train:,} of them to train"
