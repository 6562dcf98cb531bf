"""AC/DC's schedule (``dsd.acdc``) and the schedule pieces it is made of (``dsd.schedule``).

AC/DC follows its recipe: the paper's alternation (sparse 5, dense 5, ..., dense 10, sparse 15 in
the 90 epochs after its warm-up) scaled to the branch, ending sparse, as long as DSD's branch;
each phase runs on the branch's own learning-rate curve (the rate DSD and the control train at at
that moment), cut where a phase of the branch ends; the pieces of one branch phase train exactly
that phase's optimizer steps.
"""

from __future__ import annotations

import math

import pytest

from dsd import Schedule
from dsd.acdc import ACDCRecipe
from dsd.run.training.loop import phase_step_counts

RESNET_BRANCH = Schedule.parse("S30%:45@0.01 D:45@0.001 decay=step:30:0.1")
SPEECH_BRANCH = Schedule.parse("S50%:2@0.0005 D:2@0.0003 S25%:2@0.0001 D:2@3e-05 decay=cosine")


def _phases(schedule: Schedule) -> list[tuple[str, float]]:
    """(label, length) of every AC/DC phase, the pieces of a cut phase joined back."""
    out: list[tuple[str, float]] = []
    for p in schedule.phases:
        if p.joined:
            out[-1] = (out[-1][0], out[-1][1] + p.length)
        else:
            out.append((p.label, p.length))
    return [(label, round(length, 9)) for label, length in out]


def test_the_default_is_the_papers_resnet50_alternation_after_its_warm_up() -> None:
    """Pruned at 10, 20, ..., 70, restored at 15, 25, ..., 65 and 75, pruned at 85 to 100: minus the
    10 warm-up epochs, which the study's baseline stands in for."""
    acdc = ACDCRecipe().schedule(RESNET_BRANCH)
    phases = _phases(acdc)
    starts = [sum(length for _, length in phases[:i]) + 10 for i in range(len(phases))]
    assert [s for s, (label, _) in zip(starts, phases, strict=True) if label == "S30%"] == [
        10, 20, 30, 40, 50, 60, 70, 85,
    ]  # fmt: skip
    assert [s for s, (label, _) in zip(starts, phases, strict=True) if label == "D"] == [
        15, 25, 35, 45, 55, 65, 75,
    ]  # fmt: skip
    assert phases[-1] == ("S30%", 15) and acdc.phases[-1].is_sparse  # it ends sparse
    assert acdc.total_length == RESNET_BRANCH.total_length == 90


def test_it_trains_at_the_branchs_learning_rate_at_every_moment() -> None:
    acdc = ACDCRecipe().schedule(RESNET_BRANCH)
    time = 0.0
    for index, phase in enumerate(acdc.phases):
        for progress in (0.0, phase.length / 2, phase.length * 0.999):
            at = time + progress
            parent = 0 if at < 45 else 1
            expected = RESNET_BRANCH.lr(parent, at - 45 * parent)
            assert math.isclose(acdc.lr(index, progress), expected, rel_tol=1e-9), (index, progress)
        time += phase.length
    # the step decay 30 epochs into the branch: 0.01 in the dense phase before, 0.001 after
    assert acdc.lr(5, 4.9) == pytest.approx(0.01) and acdc.lr(6, 0.0) == pytest.approx(0.001)


def test_a_phase_cut_by_a_branch_boundary_continues_with_the_same_mask() -> None:
    """WSJ's branch ends phases at 1/4, 1/2 and 3/4 of its length, inside AC/DC phases: each is cut
    in two pieces, the second marked as continuing (nothing pruned or restored at its start)."""
    acdc = ACDCRecipe().schedule(SPEECH_BRANCH)
    joined = [p for p in acdc.phases if p.joined]
    assert len(joined) == 2 and [p.label for p in joined] == ["S50%", "D"]
    for i, p in enumerate(acdc.phases):
        if p.joined:
            assert acdc.phases[i - 1].label == p.label and p.offset == 0
    assert len(_phases(acdc)) == 15 and math.isclose(acdc.total_length, 8)
    assert {p.sparsity for p in acdc.phases if p.is_sparse} == {0.5}  # DSD's first sparsity


@pytest.mark.parametrize("batches", [37, 7, 1000])
@pytest.mark.parametrize("branch", [RESNET_BRANCH.scaled(1 / 45), SPEECH_BRANCH], ids=["resnet", "speech"])
def test_its_pieces_train_exactly_as_many_steps_as_dsd_and_the_control(
    branch: Schedule, batches: int
) -> None:
    acdc = ACDCRecipe().schedule(branch)
    assert sum(phase_step_counts(acdc, batches)) == sum(phase_step_counts(branch, batches))
    assert sum(phase_step_counts(acdc, batches)) == sum(phase_step_counts(branch.dense_control(), batches))
    assert math.isclose(acdc.total_length, branch.total_length)


def test_its_recipe_sets_lengths_and_sparsity_and_reads_back() -> None:
    recipe = ACDCRecipe.parse("sparsity=90%, cycles=2 sparse=1,dense=1,last-dense=2,final=4")
    assert recipe == ACDCRecipe(0.9, 2, 1.0, 1.0, 2.0, 4.0)
    assert ACDCRecipe.parse(str(recipe)) == recipe and ACDCRecipe.parse("") == ACDCRecipe()
    acdc = recipe.schedule(RESNET_BRANCH)
    assert _phases(acdc) == [("S90%", 10), ("D", 10), ("S90%", 10), ("D", 20), ("S90%", 40)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cycle=3", r"cannot read 'cycle=3'; expected key=value with keys sparsity, cycles"),
        ("sparsity=120%", r"sparsity must lie strictly between 0 and 100%"),
        ("cycles=0", r"cycles must be a whole number of at least 1"),
        ("final=0", r"final must be a positive length"),
        ("dense=five", r"cannot read the number in 'dense=five'"),
    ],
)
def test_a_wrong_recipe_is_refused_naming_the_pair(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ACDCRecipe.parse(text)


# ----------------------------------------------------------------------------- schedule pieces
def test_a_piece_reads_back_and_runs_on_its_phases_curve() -> None:
    schedule = Schedule.parse("S30%:5@0.01~10/40 +S30%:5@0.001~0/40 D:2@0.1 decay=cosine")
    assert Schedule.parse(str(schedule)) == schedule
    assert str(schedule) == "S30%:5@0.01~10/40 +S30%:5@0.001~0/40 D:2@0.1 decay=cosine"
    assert schedule.lr(0, 0.0) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 10 / 40)))
    assert schedule.lr(2, 1.0) == pytest.approx(0.1 * 0.5)  # a whole phase: its own curve
    assert schedule.scaled(0.5).phases[0].text("epochs") == "S30%:2.5@0.01~5/20"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("S30%:5@0.01~38/40", r"a piece of 5 starting 38 into a phase of 40 ends past that phase"),
        ("+S30%:5@0.01", r"continues the previous phase \('\+'\), so it needs one of the same kind"),
        ("S30%:5@0.01 +S50%:5@0.01", r"continues the previous phase"),
    ],
)
def test_a_piece_that_cannot_be_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.parse(text)
