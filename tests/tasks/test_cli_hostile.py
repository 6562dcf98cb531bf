"""What a hostile user typed (issue 20): values that used to be accepted and crash later, or train
a wrong result, are refused by ``plan`` and ``run`` alike, before anything is built, as one line
naming the flag, the value and what it may be; results folders that cannot hold results and
report sources that do not exist are named too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.cli import main
from tests.tasks.test_cli_errors import suite, written

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize(
    ("flags", "culprit"),
    [
        (["--momentum", "nan"], ["--momentum nan", "finite"]),
        (["--weight-decay", "nan"], ["--weight-decay nan", "finite"]),
        (["--grad-clip", "nan"], ["--grad-clip nan", "finite"]),
        (["--grad-clip", "-1"], ["--grad-clip -1.0", "at least 0"]),
        (["--eval-batch-size", "-3"], ["--eval-batch-size -3", "at least 0"]),
        (["--workers", "-5"], ["--workers -5", "at least -1"]),
        (["--seeds", "0,0"], ["--seeds", "0 given twice"]),
        (["--seeds", "-1"], ["--seeds", "-1", "from 0 to"]),
        (["--seeds", "99999999999999999999"], ["--seeds", "99999999999999999999", "from 0 to"]),
        (["--device", "tpu"], ["--device 'tpu'", "cpu, cuda"]),
        (["--checkpoint-minutes", "inf"], ["--checkpoint-minutes inf", "finite"]),
        (["--results", ""], ["--results", "needs a folder"]),
    ],
)
def test_a_bad_value_is_refused_before_anything_is_built(
    place: Path, capsys: pytest.CaptureFixture[str], command: str, flags: list[str], culprit: list[str]
) -> None:
    code, err = suite(capsys, command, "wsj", *flags)
    assert code == 2
    for text in culprit:
        assert text in err, (text, err)
    assert written(place) == []  # no stand-in, no run folder


@pytest.mark.parametrize(
    ("flags", "culprit"),
    [
        (["--label-smoothing", "5"], "--label-smoothing 5.0 is out of range: from 0 to 1"),
        (["--momentum", "-1"], "--momentum -1.0 is out of range: from 0 to 1"),
        (["--weight-decay", "inf"], "--weight-decay inf is not a finite number"),
    ],
)
def test_an_imagenet_value_is_refused_by_plan_as_by_run(
    place: Path, capsys, flags: list[str], culprit: str
) -> None:
    for command in ("plan", "run"):
        code, err = suite(capsys, command, "imagenet", *flags)
        assert code == 2 and culprit in err, err
    assert written(place) == []


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="this machine has a GPU, so --device cuda is valid"
)
def test_a_gpu_asked_for_on_a_machine_without_one_is_named(place: Path, capsys) -> None:
    code, err = suite(capsys, "plan", "wsj", "--device", "cuda")
    assert code == 2 and "--device 'cuda': this machine has no CUDA GPU" in err


def test_plan_takes_runs_flags(place: Path, capsys) -> None:
    """``plan`` takes the flags of ``run``, ``--no-tables`` included (it builds no tables anyway)."""
    assert main(["plan", "wsj", "--no-tables"]) == 0
    assert "dsd-suite plan: wsj" in capsys.readouterr().out


def test_a_results_folder_that_is_a_file_is_named_first(place: Path, capsys) -> None:
    (place / "taken").write_text("not a folder")
    for command in ("plan", "run"):
        code, err = suite(capsys, command, "wsj", "--results", "taken")
        assert code == 2 and "--results taken: a file is there" in err
    code, err = suite(capsys, "plan", "wsj", "--results", "taken/below")
    assert code == 2 and "taken is a file, so the folder cannot be made there" in err
    assert written(place) == [Path("taken")]


def test_a_read_only_results_folder_is_named_before_any_work(
    place: Path, capsys, read_only_folder: Path
) -> None:
    code, err = suite(capsys, "plan", "wsj", "--results", str(read_only_folder / "results"))
    assert code == 2 and f"--results {read_only_folder / 'results'}: {read_only_folder}" in err
    assert "read-only" in err or "not writable" in err
    assert written(place) == []


@pytest.mark.parametrize("command", ["tables", "figures", "report"])
def test_a_runs_folder_that_is_missing_or_a_file_is_named(place: Path, capsys, command: str) -> None:
    code, err = suite(capsys, command, "--runs", "nowhere")
    assert code == 2 and "--runs nowhere: no runs folder at nowhere" in err
    (place / "afile").write_text("x")
    code, err = suite(capsys, command, "--runs", "afile")
    assert code == 2 and "--runs afile: afile is a file, not a folder of runs" in err
    code, err = suite(capsys, command, "--results", "empty")
    assert code == 2 and "--results empty: no runs folder at empty/runs" in err
