"""The README is executable documentation: its quick start runs exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_engine_quick_start_runs_as_written(tmp_path: Path) -> None:
    section = README.split("## The engine in your own loop", 1)[1].split("\n## ", 1)[0]
    (block,) = python_blocks(section)
    script = tmp_path / "quick_start.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "DSD prunes 3 tensors" in done.stdout
    import torch

    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}


def test_readme_first_command_is_make_demo_and_second_make_test() -> None:
    commands = re.findall(r"^make (\w[\w-]*)", README.split("## Quick start", 1)[1], flags=re.MULTILINE)
    assert commands[:2] == ["demo", "test"]


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = re.findall(r"^make (\w+)", ci, flags=re.MULTILINE)
    assert steps == ["install", "test", "lint"]


def test_make_targets_named_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"`make ([\w-]+)", README))
    assert named <= targets, f"README names missing Make targets: {sorted(named - targets)}"
