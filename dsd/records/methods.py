"""The methods a study compares, in one table: what each is called, what it does, whom it branches from.

The study reads it to know which runs to make and how each trains, the report to name rows and
verdicts, the command line to list and check ``--method``. A new method is one more row here.

    baseline         D0                      the dense run every other method starts from
     ├── dsd              S1 D2 [S3 D4 ...]   the paper's phases
     ├── dense-control    D1 D2 [D3 D4 ...]   same lengths and learning rates, never pruned
     ├── dsd-random-mask  S1 D2 ...           a random mask of the same size (ablation)
     ├── dsd-reinit       S1 D2 ...           re-dense re-initialises instead of zeroing (ablation)
     ├── dsd-reset-state  S1 D2 ...           re-dense resets the whole optimizer state (ablation)
     └── acdc             S D S D ... D S     AC/DC, the rival: alternating, as long (``dsd.acdc``)
"""

from __future__ import annotations

from dataclasses import dataclass

#: What a method is for in the tables.
BASELINE, METHOD, CONTROL, ABLATION, RIVAL = "baseline", "method", "control", "ablation", "rival"


@dataclass(frozen=True)
class Method:
    """One method: its names and what its runs do after the baseline."""

    name: str  # on the command line, in records and in run folder names
    label: str  # a table row: "DSD", "dense control"
    verdict: str  # a verdict's wording: "DSD better", "control better"
    role: str  # BASELINE, METHOD, CONTROL, ABLATION or RIVAL
    branches: bool = True  # starts from the baseline's final weights
    prunes: bool = True  # its sparse phases prune (the control's are dense)
    alternates: bool = False  # AC/DC's alternation over the branch (``dsd.acdc``), not the recipe's phases
    criterion: str = "magnitude"  # the sparse phases' mask: smallest |w|, or a random set
    restart: str = "zero"  # re-dense: pruned weights restart from zero, or re-initialised
    reset_state: str = "restored"  # re-dense: restored entries' optimizer state restarts, or all of it

    def identity(self) -> dict[str, str]:
        """What enters a run's hash beyond its schedule: only what departs from DSD's own
        ingredients, so that the runs of DSD and the control keep the hashes they always had."""
        changed = {"criterion": self.criterion} if self.criterion != "magnitude" else {}
        changed |= {"restart": self.restart} if self.restart != "zero" else {}
        return changed | ({"reset_state": self.reset_state} if self.reset_state != "restored" else {})


#: Every method, in the order the study runs them and the tables list them.
METHOD_TABLE: dict[str, Method] = {
    m.name: m
    for m in (
        Method("baseline", "baseline", "baseline", BASELINE, branches=False, prunes=False),
        Method("dsd", "DSD", "DSD", METHOD),
        Method("dense-control", "dense control", "control", CONTROL, prunes=False),
        Method("dsd-random-mask", "DSD, random mask", "random mask", ABLATION, criterion="random"),
        Method("dsd-reinit", "DSD, re-initialised at re-dense", "re-init", ABLATION, restart="reinit"),
        Method("dsd-reset-state", "DSD, optimizer state reset at re-dense", "reset state", ABLATION,
               reset_state="all"),
        Method("acdc", "AC/DC", "AC/DC", RIVAL, alternates=True, reset_state="all"),
    )
}  # fmt: skip

METHODS = tuple(METHOD_TABLE)
#: The paper's comparison (``--method all``): the baseline, DSD, and the equal-length dense control.
STUDY_METHODS = tuple(n for n, m in METHOD_TABLE.items() if m.role in (BASELINE, METHOD, CONTROL))
#: DSD with one ingredient changed (``--method all-ablations`` adds them): which part matters?
ABLATIONS = tuple(n for n, m in METHOD_TABLE.items() if m.role == ABLATION)
#: What a researcher would run instead, at equal compute (``--method rivals`` adds them).
RIVALS = tuple(n for n, m in METHOD_TABLE.items() if m.role == RIVAL)
#: The method lists ``--method`` takes by name.
METHOD_SETS = {
    "all": STUDY_METHODS,
    "all-ablations": (*STUDY_METHODS, *ABLATIONS),
    "rivals": (*STUDY_METHODS, *RIVALS),
}
#: The methods that branch from the baseline, in order.
BRANCHES = tuple(n for n, m in METHOD_TABLE.items() if m.branches)
