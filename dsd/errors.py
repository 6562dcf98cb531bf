"""The errors a user can cause and fix, apart from the bugs that are ours.

Everything the suite raises for a user's mistake (a flag, a recipe, the data on disk, a
checkpoint) derives from ``UserError``; the command line prints such an error as one line
naming the culprit and the fix, with no traceback. Any other exception is a bug of ours and
keeps its traceback. Each subclass also derives from ``ValueError`` (or what the standard
library would raise), so library callers can catch what they always caught.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; ``exit_code`` is what the command line exits with."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """A flag, a recipe or a configuration value that cannot work (exit code 2, like argparse)."""

    exit_code = 2


class DataError(UserError, ValueError):
    """The data on disk is missing, malformed or unreadable."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is missing, not weights-only loadable, or of another model."""


class PhaseError(UserError, RuntimeError):
    """A call that does not fit the engine's phase (``redense()`` while dense); the message says
    the likely cause."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the suite never downloads (published weights, ...) is not where it must be; the
    message names the file and where to put it."""


class RecordError(UserError, ValueError):
    """A run's record on disk (``config.json``, ``result.json``) that cannot be used; the message
    names the file, what to delete and what rerunning will then do."""


class WriteError(UserError, OSError):
    """A file could not be written for a reason of the disk (full, read-only, over quota, no
    permission); the last good file stays in place, so rerunning resumes once it is fixed."""
