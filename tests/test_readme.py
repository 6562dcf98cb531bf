"""The README is executable documentation: its quick start runs exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


#: The study targets (the README tables name them) and the command each runs.
STUDY_COMMANDS = {
    "imagenet-resnet18": "run imagenet --arch resnet18",
    "imagenet-resnet50": "run imagenet --arch resnet50",
    "imagenet-vgg16": "run imagenet --arch vgg16",
    "imagenet-googlenet": "run imagenet --arch googlenet",
    "imagenet-alexnet": "run imagenet --arch alexnet",
    "imagenet-squeezenet": "run imagenet --arch squeezenet1_0",
    "imagenet-vit_b_16": "run imagenet --arch vit_b_16",
    "imagenet-convnext_tiny": "run imagenet --arch convnext_tiny",
    "flickr8k-captioning": "run flickr8k",
    "wsj-deepspeech": "run wsj --arch deepspeech",
    "wsj-deepspeech2": "run wsj --arch deepspeech2",
}


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
    steps = re.findall(r"^(make \w+|install_browser)(?=\s)", ci, flags=re.MULTILINE)
    assert steps == ["make install", "install_browser", "make test", "make lint"]


def _ci_browser_step(tmp_path: Path, apt_get_exit: int, uid: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run CI's ``install_browser`` under ``set -euo pipefail`` on a PATH holding only a fake
    ``apt-get`` (exiting ``apt_get_exit``, logging its arguments) and a fake ``id`` (printing ``uid``)."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (function,) = re.findall(r"^install_browser\(\) \{\n.*?^\}\n", ci, flags=re.MULTILINE | re.DOTALL)
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir(parents=True)
    fakes = {"apt-get": f'echo "$*" >> "{log}"; exit {apt_get_exit}', "id": f"echo {uid}"}
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    done = subprocess.run(
        ["/bin/bash", "-c", f"set -euo pipefail\n{function}install_browser"],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, log.read_text() if log.is_file() else ""


def test_ci_installs_chromium_with_apt_get_when_root(tmp_path: Path) -> None:
    done, calls = _ci_browser_step(tmp_path, apt_get_exit=0, uid="0")
    assert done.returncode == 0, done.stderr
    assert "install -y -qq chromium" in calls.splitlines()[-1], calls


def test_ci_browser_step_never_fails_ci(tmp_path: Path) -> None:
    """A failing apt-get, or no root, leaves CI running (the browser test then skips)."""
    failed, _ = _ci_browser_step(tmp_path / "failing", apt_get_exit=100, uid="0")
    assert failed.returncode == 0 and "could not install chromium" in failed.stderr, failed.stderr
    not_root, calls = _ci_browser_step(tmp_path / "user", apt_get_exit=0, uid="1000")
    assert not_root.returncode == 0 and "browser test will be skipped" in not_root.stderr
    assert calls == ""


def make_targets() -> set[str]:
    """Every target the Makefile defines, as make itself reads them (static pattern rules such as
    the studies' ``$(TASK_TARGETS): %: ...`` included): its database, printed without running."""
    done = subprocess.run(
        ["make", "--print-data-base", "--no-builtin-rules", "--no-builtin-variables", "--question", ":"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return set(re.findall(r"^([\w-]+):(?!=)", done.stdout, flags=re.MULTILINE))


def test_make_targets_named_in_the_readme_exist() -> None:
    targets = make_targets()
    named = set(re.findall(r"`make ([\w-]+)", README))
    assert named <= targets, f"README names missing Make targets: {sorted(named - targets)}"


def test_make_help_lists_every_study_target() -> None:
    studies = set(STUDY_COMMANDS)
    assert studies <= make_targets()
    shown = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True)
    assert studies <= set(shown.stdout.split()), shown.stdout


def test_each_study_target_runs_its_study() -> None:
    """The README's table of targets: each runs exactly its task's command (a dry run of make)."""
    for target, command in STUDY_COMMANDS.items():
        done = subprocess.run(
            ["make", "--dry-run", "--no-print-directory", target, "SEEDS=0,1", "ARGS=--epochs-scale 0.5"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        expected = f"-m tasks.cli {command} --seeds 0,1 --epochs-scale 0.5"
        assert done.returncode == 0 and expected in done.stdout.splitlines()[-1], (target, done.stdout)
