"""The statistics behind every number the tables print, and the verdict they draw from them.

Seeds are the unit of replication: ``Stat`` summarises per-seed numbers (mean, sample std, count),
and a comparison between two methods is always *paired by seed* (``paired_differences``: one
difference per seed that has both, signed so that positive means DSD is better whichever way the
metric goes). ``verdict`` is the one place that turns a paired gain into words.

A ``Stat`` of the paired differences carries all a Student-t interval needs (mean, std, n), so an
interval (and a verdict that speaks only when it excludes zero) is one method on ``Stat`` and one
rule in ``verdict`` away, with no caller to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

DECIMALS = 2
MISSING = "—"


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


def paired_gain(df: pd.DataFrame, key: str, ours: Any, other: Any, higher_is_better: bool) -> Stat:
    """DSD's gain over ``other`` (see ``paired_differences``), summarised over seeds."""
    return Stat.of(paired_differences(df, key, ours, other, higher_is_better))


def _within_spread(gain: Stat) -> bool:
    """Whether the mean gain is no larger than the seeds' spread of it (needs two seeds)."""
    return gain.n > 1 and abs(gain.mean) <= gain.std


def verdict(gain: Stat) -> str:
    """DSD against the control, in words, from the paired gain; a loss is shown in bold."""
    if gain.n == 0:
        return MISSING
    noise = " (within seed spread)" if _within_spread(gain) else ""
    if round(gain.mean, DECIMALS) == 0:
        return "tie"
    return f"DSD better{noise}" if gain.mean > 0 else f"**control better{noise}**"
