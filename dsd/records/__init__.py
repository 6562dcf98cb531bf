"""The on-disk contract: every file a run, a study or a sweep leaves, typed, with one reader and
one writer each. It needs neither torch nor pandas, so a login node, a status command or the
report reads results without them.

- ``layout``: the results folder and the run folder; the only place a file name is spelled.
- ``methods``: the table of methods (name, label, verdict name, role, what its runs do).
- ``run``: ``config.json`` (``RunRecord``) and ``result.json`` (``RunResult``), checked; the run hash.
- ``metrics``: the lines of ``metrics.jsonl`` (training and evaluation).
- ``histograms``: ``histograms.json``, the paper's Figure 4 moments.
- ``sweep``: a sparsity sweep's manifest.
- ``figures``: the figures folder's index (which figure shows which study).
- ``lock``: a run's lock as read: who holds it, and whether that holder is gone.
- ``jobs``: a launched job's record (its commands, when it was queued, started and ended, how).
- ``status``: where a run stands (done, running, waiting, failed, stopped, not started), from its
  folder alone (``dsd-suite status``).

The ``done`` marker is ``RunFolder.mark_done`` / ``RunFolder.is_done``.
"""

from dsd.records.layout import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    DONE_MARKER,
    HISTOGRAMS_FILE,
    METRICS_FILE,
    RECORD_FILES,
    RESULT_FILE,
    ResultsFolder,
    RunFolder,
)
from dsd.records.methods import (
    ABLATIONS,
    BRANCHES,
    METHOD_SETS,
    METHOD_TABLE,
    METHODS,
    RIVALS,
    STUDY_METHODS,
    Method,
)
from dsd.records.metrics import EvalLine, TrainLine, read_jsonl, read_lines
from dsd.records.run import (
    Metrics,
    PhaseResult,
    RunRecord,
    RunResult,
    check_result,
    config_hash,
    load_record,
    load_result,
)

__all__ = [
    "ABLATIONS",
    "BRANCHES",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "DONE_MARKER",
    "HISTOGRAMS_FILE",
    "METHODS",
    "METHOD_SETS",
    "METHOD_TABLE",
    "METRICS_FILE",
    "RECORD_FILES",
    "RESULT_FILE",
    "RIVALS",
    "STUDY_METHODS",
    "EvalLine",
    "Method",
    "Metrics",
    "PhaseResult",
    "ResultsFolder",
    "RunFolder",
    "RunRecord",
    "RunResult",
    "TrainLine",
    "check_result",
    "config_hash",
    "load_record",
    "load_result",
    "read_jsonl",
    "read_lines",
]
