"""A real one-node SLURM cluster for the launcher's tests, started the way CI starts it.

``tests/cluster/slurm.sh`` writes the configuration and starts munge, slurmctld and slurmd;
CI (``.ci/run``) runs it before ``make test`` and exports ``SLURM_CONF``. Here the tests use a
cluster that answers; where none does they start one with the same script (as root, with
Debian's ``slurm-wlm`` and ``munge`` installed) and stop it when the session ends, and where
they cannot they are skipped with the reason. ``DSD_REQUIRE_SLURM=1`` (CI sets it) turns that
skip into a failure, so CI never passes without having run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "slurm.sh"
REQUIRE_ENV = "DSD_REQUIRE_SLURM"


def answers(conf: str) -> bool:
    """The cluster of ``conf`` takes jobs: its node is idle, mixed or allocated."""
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(["sinfo", "--noheader", "--format=%t"], env={**os.environ, "SLURM_CONF": conf},
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    return done.returncode == 0 and any(
        s.strip("*~#") in ("idle", "mix", "alloc") for s in done.stdout.split()
    )


def why_not(conf: str) -> str:
    """Why this machine cannot start the test cluster ("" when it can)."""
    missing = [tool for tool in ("sbatch", "slurmctld", "slurmd", "munged") if shutil.which(tool) is None]
    if missing:
        return f"no SLURM here ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "starting the test cluster's daemons needs root (CI runs as root)"
    return ""


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_ENV} is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """A cluster that takes jobs, with ``SLURM_CONF`` set for every process the tests start."""
    conf = (
        os.environ.get("SLURM_CONF")
        or subprocess.check_output(["bash", str(SCRIPT), "conf"], text=True).strip()
    )
    started = False
    if not answers(conf):
        reason = why_not(conf)
        if reason:
            unavailable(reason)
        done = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=180)
        if done.returncode != 0 or not answers(conf):
            unavailable(f"tests/cluster/slurm.sh start failed: {(done.stderr or done.stdout).strip()[-500:]}")
        started = True
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120, check=False)
