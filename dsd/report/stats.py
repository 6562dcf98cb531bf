"""The statistics behind every number the tables print, and the verdicts they draw from them.

Seeds are the unit of replication. ``Stat`` summarises per-seed numbers (mean, sample std, count).
A comparison of two methods is always *paired by seed*: one difference per seed that has both
(``paired_differences``), signed so that positive means the first method is better whichever way
the metric goes. ``Gain`` is the mean of those differences with a 95 % confidence interval from
Student's t over them (n - 1 degrees of freedom), and ``Gain.verdict`` speaks only when that
interval excludes zero: "DSD better" or "control better"; "no clear difference" when it
touches zero; "1 seed: no verdict" when there is one seed, since one seed cannot tell a real
difference from the noise between seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats as scipy_stats

DECIMALS = 2
MISSING = "—"
CONFIDENCE = 0.95
#: How the tables explain their gains and verdicts, once per document.
GAIN_RULE = (
    "Gains: per-seed differences, paired by seed and positive when the first-named method is better "
    "whichever way the metric goes, shown as mean [95 % confidence interval] (n seeds); the interval "
    "is Student's t over the paired differences. A verdict names a winner only when the interval "
    "excludes zero ('no clear difference' otherwise); one seed gives no verdict."
)


@dataclass(frozen=True)
class Stat:
    """Mean, sample std (ddof=1; NaN for one seed) and count of a set of per-seed numbers."""

    mean: float = math.nan
    std: float = math.nan
    n: int = 0

    @classmethod
    def of(cls, values: pd.Series) -> Stat:
        values = values.dropna()
        if values.empty:
            return cls()
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        return cls(float(values.mean()), std, len(values))

    def text(self, signed: bool = False) -> str:
        """``mean ± std`` to ``DECIMALS`` places (``mean`` alone for one seed, ``MISSING`` for none)."""
        if self.n == 0:
            return MISSING
        mean = f"{self.mean:+.{DECIMALS}f}" if signed else f"{self.mean:.{DECIMALS}f}"
        return mean if self.n < 2 else f"{mean} ± {self.std:.{DECIMALS}f}"


@dataclass(frozen=True)
class Gain:
    """How much better ``ours`` is than ``other``, paired by seed, with a 95 % Student-t interval."""

    ours: str
    other: str
    mean: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n: int = 0

    @classmethod
    def of(cls, differences: pd.Series, ours: str, other: str) -> Gain:
        """From the per-seed differences (positive = ``ours`` better)."""
        values = differences.dropna()
        n = len(values)
        if n == 0:
            return cls(ours, other)
        mean = float(values.mean())
        if n == 1:
            return cls(ours, other, mean, math.nan, math.nan, 1)
        half = (
            float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
        )
        return cls(ours, other, mean, mean - half, mean + half, n)

    def text(self) -> str:
        """``+0.80 [-0.40, +2.00] (n=3)``; one seed: ``+0.80 (n=1)``; none: ``MISSING``."""
        if self.n == 0:
            return MISSING
        mean = f"{self.mean:+.{DECIMALS}f}"
        if self.n == 1:
            return f"{mean} (n=1)"
        return f"{mean} [{self.low:+.{DECIMALS}f}, {self.high:+.{DECIMALS}f}] (n={self.n})"

    def verdict(self) -> str:
        """Which is better, when the interval says so; a loss of ``ours`` is shown in bold."""
        if self.n == 0:
            return MISSING
        if self.n == 1:
            return "1 seed: no verdict"
        if self.low > 0:
            return f"{self.ours} better"
        if self.high < 0:
            return f"**{self.other} better**"
        return "no clear difference"


def rows_where(df: pd.DataFrame, **equal: Any) -> pd.DataFrame:
    """The rows of ``df`` whose columns equal the given values."""
    mask = pd.Series(True, index=df.index)
    for column, value in equal.items():
        mask &= df[column] == value
    return df[mask]


def stat_where(df: pd.DataFrame, **equal: Any) -> Stat:
    """The ``Stat`` of the ``value`` column over the rows of ``df`` that match ``equal``."""
    return Stat.of(rows_where(df, **equal)["value"])


def paired_differences(
    df: pd.DataFrame, key: str, ours: Any, other: Any, higher_is_better: bool
) -> pd.Series:
    """Per seed (in seed order), how much better ``ours`` is than ``other`` (positive = ours
    better), from the rows where ``df[key]`` is one or the other; only seeds with both count."""
    a = df[df[key] == ours].set_index("seed")["value"]
    b = df[df[key] == other].set_index("seed")["value"]
    both = a.index.intersection(b.index)
    diff = (a[both] - b[both]) if higher_is_better else (b[both] - a[both])
    return diff.sort_index()


def paired_gain(
    df: pd.DataFrame, key: str, ours: Any, other: Any, higher_is_better: bool, labels: tuple[str, str]
) -> Gain:
    """``ours`` against ``other`` (see ``paired_differences``); ``labels`` name them in verdicts."""
    return Gain.of(paired_differences(df, key, ours, other, higher_is_better), *labels)
