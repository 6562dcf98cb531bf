"""How the command line ends: one line for a mistake the user can fix, a traceback for our bugs.

Every error a user can cause (a flag, a recipe, the data on disk, a checkpoint, missing weights)
derives from ``dsd.errors.UserError``; so does a command line argparse cannot read
(``UsageError``). The command line prints such an error as one message, without a traceback::

    dsd-suite: error: <what is wrong, naming the flag, file or line, and the fix>

and exits with its code: 2 for usage and configuration (as argparse does), 1 for data and
runtime, 130 for an interrupt (128 + SIGINT, what a shell reports for Ctrl-C). Any other
exception is a bug of ours and keeps its traceback. ``--debug`` anywhere on the command line, or
``DSD_DEBUG=1``, shows the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from dsd.errors import ConfigError, UserError

PREFIX = "dsd-suite: error:"
INTERRUPT_EXIT = 130
DEBUG_FLAG = "--debug"
DEBUG_ENV = "DSD_DEBUG"
#: A Ctrl-C outside the training loop (which checkpoints and says so itself).
INTERRUPTED = (
    "interrupted. Rerun the same command to continue: finished runs and preparation are reused, "
    "an unfinished run resumes from its last checkpoint"
)


class UsageError(ConfigError):
    """A command line that cannot be read: an unknown command or task, a flag or value argparse refuses."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a refused command line raises ``UsageError`` instead of printing the usage
    and exiting, so that every refusal reads the same (``--help`` still prints and exits)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def split_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether tracebacks are wanted (``--debug`` anywhere, or ``DSD_DEBUG=1``); ``argv`` without the flag."""
    wanted = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    return wanted, [arg for arg in argv if arg != DEBUG_FLAG]


def _rank_note() -> str:
    """``(rank 3) `` on a torchrun worker other than rank 0, so that a message from one rank is placed."""
    rank = os.environ.get("RANK", "0")
    return f"(rank {rank}) " if int(os.environ.get("WORLD_SIZE", "1")) > 1 and rank != "0" else ""


def say_error(message: str) -> None:
    print(f"{PREFIX} {_rank_note()}{message}", file=sys.stderr, flush=True)


def run_guarded(action: Callable[[], int], debug: bool = False) -> int:
    """``action()``'s exit code; a user's error or an interrupt printed as one message with its
    exit code. With ``debug`` they propagate with their tracebacks; a bug always does."""
    if debug:
        return action()
    try:
        return action()
    except UserError as err:
        say_error(str(err) or type(err).__name__)
        return err.exit_code
    except KeyboardInterrupt as err:  # the loop's RunInterrupted (checkpoint written), or a bare Ctrl-C
        say_error(f"interrupted: {err}" if str(err) else INTERRUPTED)
        return INTERRUPT_EXIT
