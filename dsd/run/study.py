"""A task's study as a graph of runs: the dense baseline, and the branches that start from it.

    baseline       D0                       (trained, or the start checkpoint evaluated)
                    ├── dsd              S1 D2 [S3 D4 ...]   the paper's phases
                    ├── dense-control    D1 D2 [D3 D4 ...]   same lengths and LRs, never pruned
                    ├── the ablations    S1 D2 ...           one ingredient of DSD changed each
                    └── acdc             S D S ... D S       AC/DC's alternation, as long (dsd.acdc)

``Study.build`` works out every run of every requested method and seed once (its schedule, its
identity and hash, its folder, the run it waits for), and everything else asks it: ``plan``
prints it, ``run`` walks it (``dsd.run.execute``), ``sweep`` builds one over several recipes.
A run's folder is named by a hash of what can change its training, so a finished run is found
and reused, never retrained, and moving the data never renames it. A branch names its baseline
by that baseline's hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dsd.acdc import ACDCRecipe
from dsd.errors import ConfigError
from dsd.files import file_sha256
from dsd.records import METHOD_TABLE, Method, ResultsFolder, RunFolder, load_record
from dsd.run.identity import Identity, shared_identity
from dsd.run.settings import RunConfig
from dsd.schedule import Schedule
from dsd.taskkit.adapter import TaskAdapter


def study_recipe(adapter: TaskAdapter, epochs_scale: float = 1.0, recipe: Schedule | None = None) -> Schedule:
    """The task's recipe (``recipe``, else its config's, else its default), scaled, checked for a study."""
    if recipe is None:
        recipe = Schedule.parse(adapter.config.recipe or adapter.default_recipe)
    recipe = recipe.scaled(epochs_scale)
    if recipe.phases[0].is_sparse:
        raise ConfigError(f"recipe {recipe} must start with a dense phase: the study's baseline")
    if len(recipe.phases) < 2 or recipe.is_dense:
        raise ConfigError(f"recipe {recipe} needs a sparse phase after the dense baseline")
    return recipe


def acdc_recipe(text: str) -> ACDCRecipe:
    """``--acdc``: AC/DC's recipe, refused in one line naming the flag."""
    try:
        return ACDCRecipe.parse(text)
    except ValueError as err:
        raise ConfigError(f"--acdc {text!r}: {err}") from None


def branch_schedule(method: Method, recipe: Schedule, acdc: str = "") -> Schedule:
    """The phases a branch trains after the baseline: the recipe's (DSD and its ablations), the
    same with nothing pruned (the dense control), or AC/DC's alternation over them (``acdc``: its
    ``--acdc`` recipe), so that every branch is as long as DSD's."""
    tail = recipe.tail()
    if not method.alternates:
        return tail if method.prunes else tail.dense_control()
    alternation = acdc_recipe(acdc)
    try:
        return alternation.schedule(tail)
    except ValueError as err:
        raise ConfigError(f"--acdc {acdc!r}: {err}") from None


def start_identity(adapter: TaskAdapter, start: str) -> str:
    """What names the start point in the baseline's hash: the published weights by model, a
    file by its content (never its path)."""
    if not start:
        return ""
    return f"pretrained:{adapter.model_name}" if start == "pretrained" else f"file:{file_sha256(Path(start))}"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: what it trains, where it lives, and the run it waits for."""

    task: str
    model: str
    method: Method
    seed: int
    schedule: Schedule  # this run's phases
    first_phase: int  # index of schedule.phases[0] in the study's recipe (baseline: 0)
    recipe: Schedule  # the study's whole recipe
    start: str = ""  # a baseline given by --start ("pretrained:<model>", "file:<sha>"); "" trained
    run_hash: str | None = None  # None: the hash needs the data's fingerprint, known once prepared
    folder: RunFolder | None = None
    baseline: PlannedRun | None = None  # the run a branch starts from (and waits for)
    baseline_hash: str = ""  # how a branch names its baseline in its hash and record
    requested: bool = True  # asked for by --method (a baseline may run only for its branches)

    @property
    def key(self) -> str:
        """Names the run in the graph: its folder, else what it is."""
        if self.folder is not None:
            return self.folder.path.as_posix()
        return f"{self.task}-{self.model}/{self.method.name}/{self.schedule}/seed{self.seed}"

    @property
    def evaluates_start(self) -> bool:
        """A baseline given by ``--start``: evaluated, not trained."""
        return bool(self.start) and not self.method.branches

    @property
    def waits_for(self) -> tuple[PlannedRun, ...]:
        return () if self.baseline is None else (self.baseline,)

    @property
    def is_done(self) -> bool:
        return self.folder is not None and self.folder.is_done


@dataclass
class Study:
    """Every run of one task's study, in an order where each run comes after the run it waits for."""

    task: str
    model: str
    results: ResultsFolder
    runs: list[PlannedRun] = field(default_factory=list)
    by_recipe: dict[str, list[str]] = field(default_factory=dict)  # recipe -> the keys of its runs

    @classmethod
    def build(
        cls,
        adapter: TaskAdapter,
        settings: RunConfig,
        recipes: Iterable[Schedule],
        data_digest: str | None,
        start: str = "",
    ) -> Study:
        """The runs of ``settings.methods`` and ``settings.seeds`` for each of ``recipes`` (scaled,
        checked study recipes; a sweep gives several, sharing their baseline and control).
        ``data_digest``: the data's fingerprint, None when it is known only once prepared (the
        runs then have no hash and no folder). ``start``: the start point's identity."""
        study = cls(adapter.name, adapter.model_name, settings.results)
        shared = None if data_digest is None else shared_identity(adapter, settings, data_digest)
        seen: dict[str, PlannedRun] = {}
        for seed in settings.seeds:
            for recipe in recipes:
                baseline = study._baseline(adapter, settings, recipe, seed, shared, start, seen)
                reached = [baseline]
                for name, method in METHOD_TABLE.items():
                    if method.branches and name in settings.methods:
                        schedule = branch_schedule(method, recipe, settings.acdc)
                        reached.append(
                            study._add(_branch(study, method, schedule, recipe, seed, shared, baseline), seen)
                        )
                study.by_recipe.setdefault(str(recipe), []).extend(r.key for r in reached)
        return study

    def _baseline(
        self,
        adapter: TaskAdapter,
        settings: RunConfig,
        recipe: Schedule,
        seed: int,
        shared: Identity | None,
        start: str,
        seen: dict[str, PlannedRun],
    ) -> PlannedRun:
        head = recipe.head()
        hashes = (
            None if shared is None else shared.hashes({"start": start} if start else {"schedule": str(head)})
        )
        run = self._planned(METHOD_TABLE["baseline"], head, 0, recipe, seed, hashes, start=start)
        run = replace(run, requested="baseline" in settings.methods)
        return self._add(run, seen)

    def _planned(
        self,
        method: Method,
        schedule: Schedule,
        first_phase: int,
        recipe: Schedule,
        seed: int,
        hashes: tuple[str, str] | None,
        **more: Any,
    ) -> PlannedRun:
        """The run, at its folder: the one its hash names, or the one a run written under the old
        identity rule holds (``dsd.run.identity``), which keeps its name."""
        run_hash, folder = None, None
        if hashes is not None:
            run_hash, legacy_hash = hashes
            folder = self.results.run_folder(self.task, self.model, method.name, run_hash, seed)
            old = self.results.run_folder(self.task, self.model, method.name, legacy_hash, seed)
            if not folder.config.exists() and old.config.exists():
                run_hash, folder = legacy_hash, old
        return PlannedRun(self.task, self.model, method, seed, schedule, first_phase, recipe,
                          run_hash=run_hash, folder=folder, **more)  # fmt: skip

    def _add(self, run: PlannedRun, seen: dict[str, PlannedRun]) -> PlannedRun:
        """Add ``run`` unless the graph holds it already (a sweep's baseline and control are one
        run for every sparsity); a run asked for once is asked for."""
        if run.key in seen:
            known = seen[run.key]
            if run.requested and not known.requested:
                self.runs[self.runs.index(known)] = known = replace(known, requested=True)
                seen[run.key] = known
            return known
        seen[run.key] = run
        self.runs.append(run)
        return run

    # ------------------------------------------------------------------ reading the graph
    def requested(self) -> list[PlannedRun]:
        """The runs asked for, in order."""
        return [r for r in self.runs if r.requested]

    def of_recipe(self, recipe: Schedule) -> list[PlannedRun]:
        """The requested runs of one of the study's recipes (a sweep's point), in order."""
        keys = set(self.by_recipe.get(str(recipe), []))
        return [r for r in self.requested() if r.key in keys]

    def __iter__(self) -> Iterator[PlannedRun]:
        return iter(self.runs)


def _branch(
    study: Study,
    method: Method,
    schedule: Schedule,
    recipe: Schedule,
    seed: int,
    shared: Identity | None,
    baseline: PlannedRun,
) -> PlannedRun:
    """A branch of ``baseline`` training ``schedule`` (``branch_schedule``) after it."""
    hashes, baseline_hash = None, ""
    if shared is not None and baseline.folder is not None:
        baseline_hash = _baseline_hash(baseline)
        hashes = shared.hashes({"schedule": str(schedule), "baseline": baseline_hash, **method.identity()})
    more = {"baseline": baseline, "baseline_hash": baseline_hash}
    return study._planned(method, schedule, 1, recipe, seed, hashes, **more)


def _baseline_hash(baseline: PlannedRun) -> str:
    """The hash a branch names its baseline by: the one the baseline recorded when it is done (a
    run written by an older version may carry a hash of its own), else the one planned."""
    if baseline.folder is not None and baseline.folder.is_done:
        return load_record(baseline.folder.path).hash
    return baseline.run_hash or ""
