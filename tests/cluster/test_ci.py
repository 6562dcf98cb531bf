"""CI runs the launcher's SLURM tests, never skips them: it starts the cluster before `make test`
with the script the tests use, and tells them a skip is a failure."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_starts_the_cluster_before_the_tests_and_requires_them() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = re.findall(r"^(make \w+|install_browser|start_slurm)(?=\s)", ci, flags=re.MULTILINE)
    assert steps.index("start_slurm") < steps.index("make test")
    (function,) = re.findall(r"^start_slurm\(\) \{\n.*?^\}\n", ci, flags=re.MULTILINE | re.DOTALL)
    assert "apt-get install -y -qq slurm-wlm munge" in function
    assert "bash tests/cluster/slurm.sh start" in function and "tests/cluster/slurm.sh stop" in function
    assert "export SLURM_CONF DSD_REQUIRE_SLURM=1" in function
