"""How a study is run, as opposed to what it learns (that is the task's ``Config``).

``RunConfig`` is what the command line's study flags fill in: methods, seeds, where results go,
a scale on every phase length, the start point, and the loop settings shared by every run of the
study. ``LoopConfig`` is the loop settings of one run (one seed). Of the loop settings only
``amp`` and ``deterministic`` can change results, so only they enter a run's identity: how often
a run checkpoints or whether it writes TensorBoard events changes no number it trains, and nor
do the run locks' settings. ``threads`` changes a CPU run's last bits as a GPU's scheduling does,
not what it learns, so it stays out too (a machine with other cores keeps its runs' names).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dsd.records import METHODS, STUDY_METHODS, ResultsFolder
from dsd.taskkit.config import param

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


@dataclass
class LoopSettings:
    """The loop settings every run of a study shares."""

    amp: str = param(
        "auto", "mixed precision on CUDA: auto (bf16 where supported, else fp16), bf16, fp16, off; "
        "the CPU always runs fp32", choices=AMP_CHOICES,
    )  # fmt: skip
    deterministic: bool = param(False, "deterministic kernels (slower); CPU runs resume bit-identically")
    eval_every: int = param(1, "validate every N epochs; 0: only at phase ends", bounds=(0, None))
    log_every: int = param(50, "optimizer steps between loss checks and progress updates", bounds=(1, None))
    device: str = param("auto", "cpu, cuda, cuda:N; auto: this rank's GPU when there is one, else the CPU")
    threads: int = param(
        0,
        "intra-op CPU threads of each process; 0: the cores it was given (a launched job's share, else "
        "all). On the CPU the count changes the last bits of every result, so runs compared bit for bit "
        "(--deterministic, or one study under two launchers) need the same count",
        bounds=(0, None),
        identity=False,
    )
    progress: bool | None = param(None, "a progress bar; default: when stderr is a terminal")
    checkpoint_every: int = param(
        0,
        "optimizer steps between mid-epoch checkpoints (atomic; a killed job loses at most this many "
        "steps); 0: by wall time, see --checkpoint-minutes. Epoch ends always checkpoint",
        bounds=(0, None),
    )
    checkpoint_minutes: float = param(
        10.0,
        "with --checkpoint-every 0: a mid-epoch checkpoint once this many minutes have passed since "
        "the last one (a preempted ImageNet job loses minutes, not an epoch); 0: at epoch ends only",
        bounds=(0, None),
    )
    tensorboard: bool = param(
        False,
        "write each run's curves (loss, lr, every metric, sparsity of masks and weights, throughput, phase "
        "boundaries) to <run>/tensorboard/: tensorboard --logdir results/runs",
    )


@dataclass
class LoopConfig(LoopSettings):
    """The loop settings of one run."""

    seed: int = param(0, "seeds the model's initialisation, dropout and the data order")


@dataclass
class RunConfig(LoopSettings):
    """What to run: which methods and seeds, where, at which scale, from which start."""

    results_dir: Path = param(Path("results"), "where runs/, sweeps/, tables/, figures/ and report.html go")
    seeds: list[int] = param(help="one run of every method per seed", default_factory=lambda: [0])
    methods: list[str] = param(help=f"of {', '.join(METHODS)}", default_factory=lambda: list(STUDY_METHODS))
    epochs_scale: float = param(1.0, "every phase length times this (stand-ins, smoke runs)")
    start: str = param(
        "", "'': train the dense phase; 'pretrained': the task's published weights; or a checkpoint file"
    )
    acdc: str = param(
        "",
        "AC/DC's phases (the acdc method), key=value pairs: sparsity=90%,cycles=7,sparse=5,dense=5,"
        "last-dense=10,final=15 (relative lengths, scaled to DSD's branch; ''/any key left out: the AC/DC "
        "paper's ResNet-50 schedule after its warm-up, at the recipe's first sparsity)",
    )
    wait_for_locks: bool = param(
        False,
        "when another process holds a run this study needs (its lock, <run>/lock), wait for it instead "
        "of moving on to the next run and leaving that one to its holder",
    )
    lock_stale_minutes: float = param(
        10.0,
        "a run's lock whose heartbeat is this old is taken over (its holder died on another host; one "
        "dead on this host is taken over at once)",
        bounds=(0.1, None),
    )

    @property
    def results(self) -> ResultsFolder:
        """Where the runs (and the sweeps, tables, figures) go."""
        return ResultsFolder.at(self.results_dir)

    def loop(self, seed: int) -> LoopConfig:
        """The loop settings of one seed's runs."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(LoopSettings)}
        return LoopConfig(seed=seed, **shared)
