"""dsd.schedule: the text form, the paper's recipes, decays, the dense control, derived schedules."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from dsd import PAPER_RECIPES, Phase, Schedule
from dsd.schedule import Decay


# ----------------------------------------------------------------------------- the paper's recipes
@pytest.mark.parametrize("name", list(PAPER_RECIPES))
def test_every_paper_recipe_parses_and_round_trips(name):
    text = PAPER_RECIPES[name]
    schedule = Schedule.parse(text)
    assert Schedule.parse(str(schedule)) == schedule
    assert schedule.unit == "epochs" and schedule.decay == Decay()
    assert schedule.phases[0].kind == "dense" and schedule.phases[-1].kind == "dense"


def test_paper_recipes_hold_the_papers_numbers():
    vgg = Schedule.parse(PAPER_RECIPES["vgg16"])
    assert [p.kind for p in vgg.phases] == ["dense", "sparse", "dense"]
    assert [p.length for p in vgg.phases] == [74, 1.25, 18]  # the 1.25-epoch S phase
    assert [p.lr for p in vgg.phases] == [1e-2, 1e-4, 1e-5]
    assert vgg.phases[1].sparsity == 0.3
    resnet = Schedule.parse(PAPER_RECIPES["resnet18"])
    assert [(p.length, p.lr) for p in resnet.phases] == [(90, 0.1), (45, 0.01), (45, 0.001)]
    talk = Schedule.parse(PAPER_RECIPES["neuraltalk"])
    assert talk.phases[1].sparsity == 0.8 and [p.length for p in talk.phases] == [19, 10, 6]
    speech = Schedule.parse(PAPER_RECIPES["deepspeech"])
    assert [p.label for p in speech.phases] == ["D", "S50%", "D", "S25%", "D"]
    assert [p.lr for p in speech.phases] == [8e-4, 5e-4, 3e-4, 1e-4, 3e-5]
    assert speech.total_length == 250
    ds2 = Schedule.parse(PAPER_RECIPES["deepspeech2"])
    assert [p.lr for p in ds2.phases] == [3e-4, 3e-4, 3e-5, 3e-5, 6e-6] and ds2.total_length == 100
    googlenet = Schedule.parse(PAPER_RECIPES["googlenet"])
    assert [(p.length, p.lr) for p in googlenet.phases] == [(60, 1e-2), (11, 1e-3), (22, 1e-4)]


# ----------------------------------------------------------------------------- the text form
def test_separators_case_units_and_sparsity_forms():
    a = Schedule.parse("D:90@0.1 S30%:45@0.01 D:45@0.001")
    assert Schedule.parse("d:90@0.1,s0.3:45@1e-2,  D:45EP@1E-3") == a
    assert Schedule.parse("D:90epochs@0.1 S30%:45ep@0.01 D:45@0.001") == a


def test_percent_sparsity_is_read_exactly():
    assert Schedule.parse("S99.9%:1@0.1").phases[0].sparsity == 0.999  # not 0.9990000000000001
    assert Schedule.parse("S0.999:1@0.1").phases[0].sparsity == 0.999
    assert str(Schedule.parse("S0.999:1@0.1")) == "S99.9%:1@0.1"
    assert str(Schedule((Phase("sparse", 1, 0.1, 1e-7),))) == "S0.00001%:1@0.1"


def test_fractional_epoch_phase():
    schedule = Schedule.parse("D:2@0.1 S50%:1.25@0.01 D:0.5@0.001")
    assert [p.length for p in schedule.phases] == [2, 1.25, 0.5]
    assert schedule.total_length == 3.75
    assert str(schedule) == "D:2@0.1 S50%:1.25@0.01 D:0.5@0.001"
    assert str(Schedule.parse(PAPER_RECIPES["resnet18"])) == PAPER_RECIPES["resnet18"]
    assert str(Schedule.parse(PAPER_RECIPES["vgg16"])) == "D:74@0.01 S30%:1.25@0.0001 D:18@1e-05"


def test_steps_unit():
    schedule = Schedule.parse("D:500steps@3e-5 S50%:500st@3e-5 D:1000000steps@3e-6")
    assert schedule.unit == "steps"
    assert [p.length for p in schedule.phases] == [500, 500, 1_000_000]
    assert str(schedule) == "D:500steps@3e-05 S50%:500steps@3e-05 D:1e+06steps@3e-06"
    assert Schedule.parse(str(schedule)) == schedule


def test_mixed_units_are_refused():
    with pytest.raises(ValueError, match="mixes epochs and steps"):
        Schedule.parse("D:5@0.1 S50%:100steps@0.01")


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("D:90@0.1 X:45@0.01", "'X:45@0.01'"),
        ("D:90@0.1 S30%:45", "'S30%:45'"),
        ("D:90@0.1 S:45@0.01", "'S:45@0.01'"),  # a sparse phase without sparsity
        ("D30%:90@0.1", "'D30%:90@0.1'"),  # a dense phase with one
        ("D:90@0.1 S130%:45@0.01", "'S130%:45@0.01'"),
        ("D:90@0.1 S30:45@0.01", "'S30:45@0.01'"),  # 30 as a fraction: out of [0, 1)
        ("D:90@0.1 S0%:45@0.01", "'S0%:45@0.01'"),  # a sparse phase at 0%
        ("D:0@0.1", "'D:0@0.1'"),
        ("D:90@0", "'D:90@0'"),
        ("D:1.2.3@0.1", "'D:1.2.3@0.1'"),
        ("S1.2.3%:5@0.1", "'S1.2.3%:5@0.1'"),
        ("D:90@0.1.5", "'D:90@0.1.5'"),
        ("D:90@0.1 decay=linear", "'linear'"),
        ("D:90@0.1 decay=step:0:0.1", "'step:0:0.1'"),
        ("D:90@0.1 decay=step:30:2", "'step:30:2'"),
        ("D:90@0.1 decay=exp:x", "'exp:x'"),
    ],
)
def test_errors_name_the_bad_token(text, token):
    with pytest.raises(ValueError) as err:
        Schedule.parse(text)
    assert token in str(err.value)


def test_empty_schedule_is_refused():
    for text in ("", "   ", "decay=cosine"):
        with pytest.raises(ValueError, match="no phases"):
            Schedule.parse(text)
    with pytest.raises(ValueError, match="at least one phase"):
        Schedule(())


def test_phase_validation():
    with pytest.raises(ValueError, match="'middle'"):
        Phase("middle", 1, 0.1)
    with pytest.raises(ValueError, match="sparsity above 0"):
        Phase("sparse", 1, 0.1, 0.0)
    with pytest.raises(ValueError, match="dense phase has sparsity 0"):
        Phase("dense", 1, 0.1, 0.3)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="length"):
            Phase("dense", bad, 0.1)
        with pytest.raises(ValueError, match="learning rate"):
            Phase("dense", 1, bad)


# ----------------------------------------------------------------------------- decays
def test_decay_rules_and_their_text():
    schedule = Schedule.parse("D:90@0.1 S30%:45@0.01 D:45@0.001 decay=step:30:0.1")
    assert str(schedule.decay) == "step:30:0.1"
    assert schedule.lr(0, 0) == 0.1
    assert schedule.lr(0, 29.9) == 0.1
    assert schedule.lr(0, 30) == pytest.approx(0.01)
    assert schedule.lr(0, 60) == pytest.approx(0.001)
    assert schedule.lr(1, 0) == 0.01 and schedule.lr(1, 30) == pytest.approx(0.001)
    assert schedule.lr(2, 44) == pytest.approx(1e-4)
    exp = Schedule.parse("D:10@1 decay=exp:0.5")
    assert (
        exp.lr(0, 0) == 1 and exp.lr(0, 2) == pytest.approx(0.25) and exp.lr(0, 0.5) == pytest.approx(2**-0.5)
    )
    cosine = Schedule.parse("D:10@1 S50%:4@0.1 decay=cosine")
    assert (
        cosine.lr(0, 0) == 1
        and cosine.lr(0, 5) == pytest.approx(0.5)
        and cosine.lr(0, 10) == pytest.approx(0)
    )
    assert cosine.lr(1, 2) == pytest.approx(0.05)
    assert cosine.lr(0, 12) == pytest.approx(0), "past the end stays at zero"
    none = Schedule.parse("D:10@0.3 decay=none")
    assert none.lr(0, 9.99) == 0.3 and none.decay == Decay()
    for text in ("D:10@1 decay=exp:0.5", "D:10@1 decay=cosine", "D:10@1 decay=step:2.5:0.5"):
        assert Schedule.parse(str(Schedule.parse(text))) == Schedule.parse(text)
        assert str(Schedule.parse(text)) == text
    assert str(Schedule.parse("D:10@1 decay=none")) == "D:10@1"


# ----------------------------------------------------------------------------- derived schedules
@pytest.mark.parametrize("name", list(PAPER_RECIPES))
def test_dense_control_keeps_lengths_and_rates_with_no_sparse_phase(name):
    dsd_schedule = Schedule.parse(PAPER_RECIPES[name] + " decay=step:30:0.1")
    control = dsd_schedule.dense_control()
    assert control.is_dense and not dsd_schedule.is_dense
    assert [p.length for p in control.phases] == [p.length for p in dsd_schedule.phases]
    assert [p.lr for p in control.phases] == [p.lr for p in dsd_schedule.phases]
    assert all(p.kind == "dense" and p.sparsity == 0 for p in control.phases)
    assert control.total_length == dsd_schedule.total_length
    assert control.decay == dsd_schedule.decay and control.unit == dsd_schedule.unit
    for i, p in enumerate(dsd_schedule.phases):
        for progress in (0.0, p.length / 3, p.length * 0.99):
            assert control.lr(i, progress) == dsd_schedule.lr(i, progress)
    assert Schedule.parse(str(control)) == control


def test_scaled_head_and_tail():
    schedule = Schedule.parse("D:90@0.1 S30%:45@0.01 D:45@0.001 decay=step:30:0.1")
    small = schedule.scaled(0.1)
    assert [p.length for p in small.phases] == pytest.approx([9, 4.5, 4.5])
    assert [p.lr for p in small.phases] == [0.1, 0.01, 0.001]
    assert small.decay.every == pytest.approx(3)  # the decay period scales with the phases
    assert small.lr(0, 3) == pytest.approx(schedule.lr(0, 30))
    assert schedule.scaled(1.0) == schedule
    # the text form of a scaled schedule reads as written, without binary float noise
    assert (
        str(Schedule.parse("D:6@1e-3 S80%:3@1e-4 D:2@1e-5").scaled(0.6))
        == "D:3.6@0.001 S80%:1.8@0.0001 D:1.2@1e-05"
    )
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="scale factor"):
            schedule.scaled(bad)
    head = schedule.head()
    assert head.phases == schedule.phases[:1] and head.decay == schedule.decay
    tail = schedule.tail()
    assert tail.phases == schedule.phases[1:] and tail.phases[0].is_sparse
    assert str(tail) == "S30%:45@0.01 D:45@0.001 decay=step:30:0.1"
    with pytest.raises(ValueError, match="no phases after the first"):
        head.tail()


# ----------------------------------------------------------------------------- property: round trip
_phases = st.lists(
    st.tuples(
        st.booleans(),
        st.floats(1e-3, 1e7, allow_nan=False, allow_infinity=False),  # length
        st.floats(1e-9, 10, allow_nan=False, allow_infinity=False),  # learning rate
        st.floats(1e-6, 0.999, allow_nan=False),  # sparsity of a sparse phase
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=80, deadline=None)
@given(
    phases=_phases,
    unit=st.sampled_from(["epochs", "steps"]),
    decay=st.sampled_from(["none", "cosine", "step:30:0.1", "exp:0.95", "step:2.5:0.5"]),
)
def test_property_text_form_round_trips(phases, unit, decay):
    schedule = Schedule(
        tuple(Phase("sparse" if s else "dense", n, lr, sp if s else 0.0) for s, n, lr, sp in phases),
        unit,
        Decay.parse(decay),
    )
    again = Schedule.parse(str(schedule))
    assert again == schedule, str(schedule)
    assert not math.isnan(again.total_length)
