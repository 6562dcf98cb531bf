"""``dsd-suite plan``: the whole study a command would run, printed in seconds, nothing written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dsd import records as runfolder
from dsd.run.execute import run_study
from dsd.run.plan import NEW, RESUMES, REUSED, plan_study, render
from dsd.run.preflight import preflight
from dsd.run.settings import RunConfig
from tasks.cli import main
from tests.run.toy_task import ToyConfig, ToyTask

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]


def every_path(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def test_plan_of_resnet50_on_the_stand_in_prints_the_study_in_seconds_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IMAGENET_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # the default results/ and data/ would land here
    started = time.perf_counter()
    code = main(["plan", "imagenet", "--arch", "resnet50"])
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    assert code == 0
    assert every_path(tmp_path) == []  # no stand-in, no verify verdict, no run folder, nothing
    assert elapsed < 10, f"the plan took {elapsed:.1f} s"
    print(f"plan imagenet --arch resnet50: {elapsed:.2f} s")
    lines = out.splitlines()
    assert any(ln.startswith("data      digits stand-in, not built yet") for ln in lines)
    assert "train 2,394 images, val 1,200 images (from the stand-in's specification)" in out
    assert "classes: 10" in out and "build the stand-in (3,594 PNG images)" in out
    assert "model     resnet50: 23,528,522 parameters (23.5 M)" in out
    assert "pruned    53 tensors, 23,465,984 weights" in out  # every conv and fc weight but conv1
    assert "left dense: first conv (kept dense, as in the paper): 1 tensor, 9,408 values" in out
    assert "64 images per step (one process); 37 steps per epoch of 2,394 images" in out
    assert "recipe    D:4@0.01 S30%:1@0.001 D:1@0.0001 decay=cosine" in out
    assert "phase 0 D      4 epochs       148 steps" in out
    assert "phase 1 S30%   1 epoch        37 steps" in out and "30% of the pruned tensors at zero" in out
    assert "total     296 optimizer steps in 3 runs" in out


def test_plan_names_the_runs_the_study_made_and_what_each_would_do(tmp_path: Path) -> None:
    """A study stopped in its DSD run: the plan finds the baseline done, DSD to resume, the
    control new, each at the folder the study uses, and counts only what is left to train."""
    config = ToyConfig(train_samples=48)  # 3 steps per epoch
    run = RunConfig(results_dir=tmp_path, log_every=2, progress=False, deterministic=True)
    task = ToyTask(config)
    task.inject = {8: "sigterm"}  # the DSD run's second step
    with pytest.raises(KeyboardInterrupt):
        run_study(task, run)
    adapter = ToyTask(config)
    before = every_path(tmp_path)
    plan = plan_study(adapter, run, preflight(adapter, run))
    assert every_path(tmp_path) == before
    assert [(r.method, r.status) for r in plan.runs] == [
        ("baseline", REUSED),
        ("dsd", RESUMES),
        ("dense-control", NEW),
    ]
    assert [r.steps for r in plan.runs] == [[6], [6, 6], [6, 6]]
    assert plan.steps("total_steps") == 30 and plan.steps("to_train") == 24
    folders = [runfolder.RunFolder(f) for f in run_study(ToyTask(config), run)]
    assert [r.folder for r in plan.runs] == folders
    text = render(plan)
    assert "total     30 optimizer steps in 3 runs (1 done, 1 unfinished, 1 new); 24 of them to train" in text
    assert f"done: reused         {folders[0].path.as_posix()}" in text


def test_every_study_command_in_the_readme_and_the_cluster_guide_parses() -> None:
    """The documented ``dsd-suite run|plan`` and ``torchrun ... -m tasks.cli run`` lines name
    real flags of real tasks (read, not run)."""
    import re
    import shlex

    from tasks import get_task
    from tasks.cli.study import study_parser

    root = Path(__file__).resolve().parents[2]
    text = "\n".join((root / name).read_text() for name in ("README.md", "docs/cluster.md"))
    text = text.replace("\\\n", " ")  # shell line continuations
    commands = re.findall(r"(?:dsd-suite|-m tasks\.cli) ((?:run|plan) [a-z0-9]+(?: [^#`\n]*)?)", text)
    assert len(commands) >= 8, commands
    for command in commands:
        name, task, *flags = shlex.split(command)
        flags = [flag for flag in flags if flag not in ("...", "--help")]
        study_parser(name, task, get_task(task)).parse_args(flags)
