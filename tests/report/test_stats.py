"""Paired gains, their 95 % Student-t intervals and the verdicts, against hand-computed cases."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dsd.report.stats import Gain, paired_gain

T_975 = {1: 12.706204736174707, 2: 4.302652729749462}  # Student t quantiles (0.975; 1 and 2 df)


def gain(*differences: float) -> Gain:
    return Gain.of(pd.Series(differences, dtype=float), "DSD", "control")


def test_no_seed() -> None:
    g = gain()
    assert g.n == 0 and g.text() == "—" and g.verdict() == "—"


def test_one_seed_gives_no_verdict_however_large() -> None:
    g = gain(5.0)
    assert (g.mean, g.n) == (5.0, 1) and math.isnan(g.low) and math.isnan(g.high)
    assert g.text() == "+5.00 (n=1)"
    assert g.verdict() == "1 seed: no verdict"


def test_two_seeds_by_hand() -> None:
    g = gain(1.0, 3.0)  # mean 2, std sqrt(2), half width t * sqrt(2) / sqrt(2) = t
    assert g.mean == pytest.approx(2.0)
    assert (g.low, g.high) == pytest.approx((2.0 - T_975[1], 2.0 + T_975[1]))
    assert g.text() == "+2.00 [-10.71, +14.71] (n=2)"
    assert g.verdict() == "no clear difference"  # the interval touches zero


def test_three_seeds_by_hand_exclude_zero_both_ways() -> None:
    better = gain(0.8, 1.0, 1.2)  # mean 1.0, std 0.2, half width t * 0.2 / sqrt(3)
    half = T_975[2] * 0.2 / math.sqrt(3)
    assert (better.low, better.high) == pytest.approx((1.0 - half, 1.0 + half))
    assert better.text() == "+1.00 [+0.50, +1.50] (n=3)"
    assert better.verdict() == "DSD better"
    worse = gain(-0.8, -1.0, -1.2)
    assert worse.verdict() == "**control better**"  # a loss is shown in bold
    assert worse.text() == "-1.00 [-1.50, -0.50] (n=3)"


def test_an_interval_that_touches_zero_gives_no_winner() -> None:
    g = gain(0.1, 0.9, 0.5)  # mean 0.5, std 0.4: half width 0.99 > 0.5
    assert g.low < 0 < g.high and g.verdict() == "no clear difference"


def test_pairing_is_by_seed_and_signed_by_the_metric() -> None:
    """Lower is better: control 10 / DSD 9 on seed 0 is +1 for DSD; seed 2 has no pair."""
    df = pd.DataFrame(
        [("dsd", 0, 9.0), ("dense-control", 0, 10.0), ("dsd", 1, 9.5), ("dense-control", 1, 9.0),
         ("dsd", 2, 1.0)],
        columns=["role", "seed", "value"],
    )  # fmt: skip
    g = paired_gain(df, "role", "dsd", "dense-control", higher_is_better=False, labels=("DSD", "control"))
    assert g.n == 2 and g.mean == pytest.approx((1.0 - 0.5) / 2)
    up = paired_gain(df, "role", "dsd", "dense-control", higher_is_better=True, labels=("DSD", "control"))
    assert up.mean == pytest.approx(-g.mean)
