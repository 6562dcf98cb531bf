"""Every mistake a user can make ends as one ``dsd-suite: error:`` line naming the culprit, with
exit code 2 (usage, configuration), 1 (data, runtime) or 130 (interrupt), and no traceback; and
the cheap checks run before anything is built (no stand-in, feature cache or run folder is left).
A bug of ours keeps its traceback, and ``--debug`` / ``DSD_DEBUG=1`` shows one for any error."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models import WeightsEnum

import tasks
from dsd.errors import ConfigError
from tasks.cli import main
from tasks.cli.errors import PREFIX
from tests.run.toy_task import ToyTask
from tests.tasks.flickr8k.test_data import CAPTIONS, write_token_layout
from tests.tasks.imagenet.helpers import make_tree, truncate
from tests.tasks.wsj.test_prepare import make_librispeech

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]
ROOT = Path(__file__).resolve().parents[2]


def suite(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``dsd-suite argv`` (in this process), checked to be one clean error."""
    code = main([*argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(PREFIX), err
    return code, err


def written(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------- flags and recipes
@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["run", "imagenet", "--arch", "resnet19"], ["--arch", "'resnet19'", "resnet50", "squeezenet1_0"]),
        (["run", "flickr8k", "--encoder", "resnet"], ["--encoder", "vgg16-fc7", "digits-cnn", "pixels"]),
        (["run", "wsj", "--corpus", "libri"], ["--corpus", "'libri'", "librispeech"]),
        (["run", "wsj", "--corpus", "wsj"], ["--corpus wsj", "no --data is given"]),
        (["run", "imagenet", "--seeds", "0,x"], ["--seeds", "'0,x'"]),
        (["run", "imagenet", "--epochs-scale", "0"], ["--epochs-scale"]),
        (["run", "imagenet", "--log-every", "0"], ["--log-every"]),
        (["run", "mnist"], ["'mnist'", "flickr8k, imagenet, wsj"]),
        (["frobnicate"], ["'frobnicate'", "commands: run, ", " plan, ", "(dsd-suite --help)"]),
        (
            ["run", "imagenet", "--recipe", "D:1@0.1 S150%:1@0.01"],
            ["--recipe", "S150%", "sparsity must be in [0, 1)"],
        ),
        (["run", "imagenet", "--recipe", "D:1@0.1 X:1@0.1"], ["--recipe", "'X:1@0.1'"]),
    ],
)
def test_usage_and_configuration_errors_exit_2_naming_the_flag(
    place: Path, capsys: pytest.CaptureFixture[str], argv: list[str], culprit: list[str]
) -> None:
    code, err = suite(capsys, *argv)
    assert code == 2
    for text in culprit:
        assert text in err, (text, err)
    assert written(place) == []


@pytest.mark.parametrize(
    "recipe", ["D:1@0.1 D:1@0.01", "D:1@0.1 S80%:1@0.01 Q:1@0.1"], ids=["no sparse phase", "syntax"]
)
def test_a_flickr8k_recipe_error_comes_before_any_stand_in_feature_or_run(
    place: Path, capsys: pytest.CaptureFixture[str], recipe: str
) -> None:
    """The issue's example: once refused after 63 s of encoder training and feature extraction."""
    code, err = suite(
        capsys, "run", "flickr8k", "--recipe", recipe, "--results", "out", "--cache-dir", "cache"
    )
    assert code == 2 and "--recipe" in err
    assert not (place / "cache").exists()  # no stand-in, no glyph encoder, no feature cache
    assert not (place / "out").exists()  # no run folder
    assert written(place) == []


# ---------------------------------------------------------------------- data
def test_missing_and_empty_data_folders_exit_1_naming_them(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = suite(capsys, "run", "imagenet", "--data", "nowhere")
    assert code == 1 and "nowhere does not exist" in err
    (place / "empty").mkdir()
    code, err = suite(capsys, "run", "imagenet", "--data", "empty")
    assert code == 1 and "empty/train does not exist" in err and "train/<class>/<image>" in err
    code, err = suite(capsys, "run", "flickr8k", "--data", "empty")
    assert code == 1 and "no Flickr-8K captions under empty" in err
    code, err = suite(capsys, "prepare", "wsj", "--src", "nowhere", "--out", "prepared")
    assert code == 1 and "corpus folder nowhere does not exist" in err
    assert written(place) == []


def test_a_truncated_jpeg_exits_1_naming_the_file_and_the_flag_to_skip_it(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(place / "imagenet")
    truncate(tree / "train" / "n01443537" / "n01443537_2.JPEG", keep=0.4)
    code, err = suite(
        capsys, "run", "imagenet", "--data", "imagenet", "--batch-size", "4", "--results", "out"
    )
    assert code == 1
    assert "n01443537_2.JPEG" in err and "--skip-bad-images" in err
    assert not (place / "out").exists()


def test_a_batch_larger_than_the_training_set_exits_2_before_the_verify_pass(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(place / "imagenet")  # 3 classes x 6 training images
    code, err = suite(
        capsys, "run", "imagenet", "--data", "imagenet", "--batch-size", "64", "--cache-dir", "c"
    )
    assert code == 2
    assert "--batch-size 64 is larger than the training set: train holds 18 images" in err
    assert not (place / "c").exists()  # no verify pass ran (its verdict would be cached there)


def test_a_caption_line_without_a_tab_names_file_line_and_the_flag(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [f"{name}#{k}\t{c}" for name, caps in CAPTIONS.items() for k, c in enumerate(caps)]
    lines.insert(3, "1000268201_693b08cb0e.jpg#3 A girl without a tab .")
    write_token_layout(place / "flickr", lines)
    code, err = suite(capsys, "run", "flickr8k", "--data", "flickr", "--cache-dir", "c", "--results", "out")
    assert code == 1
    assert "Flickr8k.token.txt:4: no TAB" in err
    assert "--skip-bad-data" in err and "skip_bad_data" not in err
    assert not (place / "c").exists() and not (place / "out").exists()


def test_offline_vgg16_weights_exit_1_naming_the_file_before_any_feature(
    place: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(place / "hub"))

    def offline(self: object, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    write_token_layout(place / "flickr")
    argv = ["run", "flickr8k", "--data", "flickr", "--encoder", "vgg16-fc7", "--batch-size", "2"]
    code, err = suite(capsys, *argv, "--cache-dir", "c", "--results", "o")
    assert code == 1
    assert "vgg16-397923af.pth" in err and str(place / "hub" / "checkpoints") in err
    assert not list((place / "c").rglob("*.pt")) and not (place / "o").exists()


# ---------------------------------------------------------------------- checkpoints
def test_a_start_file_that_is_no_checkpoint_or_of_another_model_exits_1(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(place / "imagenet")
    (place / "notes.pt").write_text("these are my notes, not weights\n")
    torch.save(torch.nn.Linear(3, 2).state_dict(), place / "linear.pt")
    common = [
        "run",
        "imagenet",
        "--data",
        "imagenet",
        "--batch-size",
        "4",
        "--cache-dir",
        "c",
        "--results",
        "o",
    ]
    code, err = suite(capsys, *common, "--start", "notes.pt")
    assert code == 1 and "cannot load notes.pt as a weights-only PyTorch checkpoint" in err
    assert "weights_only=False" not in err  # torch's advice to load untrusted pickles is cut
    code, err = suite(capsys, *common, "--start", "linear.pt")
    assert code == 1 and "--start checkpoint linear.pt does not fit the model ResNet" in err
    code, err = suite(capsys, *common, "--start", "missing.pt")
    assert code == 1 and "--start missing.pt: no such file" in err
    assert not (place / "c").exists() and not (place / "o").exists()  # refused before the verify pass


def test_published_weights_missing_offline_exit_1_naming_the_file_and_where_it_goes(
    place: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(place / "hub"))
    make_tree(place / "imagenet")
    argv = ["run", "imagenet", "--data", "imagenet", "--batch-size", "4", "--start", "pretrained"]
    code, err = suite(capsys, *argv, "--cache-dir", "c", "--results", "o")
    assert code == 1
    assert f"expected the file {place / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'}" in err
    assert not (place / "c").exists() and not (place / "o").exists()


# ---------------------------------------------------------------------- speech
def test_speech_corpus_flag_is_checked_against_the_data(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_librispeech(place / "raw")
    code, err = suite(capsys, "run", "wsj", "--data", "raw", "--corpus", "wsj", "--cache-dir", "c")
    assert code == 2 and "--corpus wsj, but raw is a LibriSpeech folder: pass --corpus librispeech" in err
    assert not (place / "c").exists()


def test_missing_audio_is_not_found_before_training_and_leaves_no_run_folder(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tasks.wsj.prepare import prepare_manifests

    prepare_manifests("librispeech", make_librispeech(place / "raw"), place / "prepared")
    gone = place / "raw" / "LibriSpeech" / "dev-clean" / "84" / "198" / "84-198-0000.flac"
    gone.unlink()
    code, err = suite(capsys, "run", "wsj", "--data", "prepared", "--batch-size", "1", "--results", "o")
    assert code == 1 and f"{gone} (not found)" in err
    assert "System error" not in err
    assert not (place / "o").exists()


# ---------------------------------------------------------------------- interrupts and runtime
class CtrlCToy(ToyTask):
    """The toy task, whose user presses Ctrl-C at its fifth training step."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.inject = {5: "sigint"}


class NanToy(ToyTask):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.inject = {5: "nan"}


class CtrlCBeforeTrainingToy(ToyTask):
    def prepare(self) -> None:
        raise KeyboardInterrupt


class BuggyToy(ToyTask):
    def prepare(self) -> None:
        raise RuntimeError("a bug of ours")


@pytest.fixture
def toys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CtrlCToy", "NanToy", "CtrlCBeforeTrainingToy", "BuggyToy"):
        monkeypatch.setitem(tasks.REGISTRY, name.lower(), f"{__name__}:{name}")


TOY = ["--results", "out", "--cache-dir", "c", "--no-tables", "--log-every", "3", "--deterministic"]


@pytest.mark.usefixtures("toys")
def test_ctrl_c_exits_130_saying_how_to_resume(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = suite(capsys, "run", "ctrlctoy", *TOY)
    assert code == 130
    assert err.strip().splitlines()[-1].startswith(f"{PREFIX} interrupted: stopped at step 5; checkpoint")
    assert "rerun the same command to resume" in err
    assert list((place / "out").rglob("checkpoint.pt"))
    code, err = suite(capsys, "run", "ctrlcbeforetrainingtoy", *TOY)
    assert code == 130 and "interrupted. Rerun the same command to continue" in err


@pytest.mark.usefixtures("toys")
def test_a_nan_loss_exits_1_naming_the_step_and_the_flags(
    place: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = suite(capsys, "run", "nantoy", *TOY)
    assert code == 1 and "loss is nan at phase D" in err and "step 5" in err and "--grad-clip" in err


@pytest.mark.usefixtures("toys")
def test_a_bug_keeps_its_traceback_and_debug_shows_user_errors_tracebacks(
    place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RuntimeError, match="a bug of ours"):
        main(["run", "buggytoy", *TOY])
    with pytest.raises(ConfigError, match="--arch"):
        main(["run", "imagenet", "--arch", "resnet19", "--debug"])
    monkeypatch.setenv("DSD_DEBUG", "1")
    with pytest.raises(ConfigError, match="--epochs-scale"):
        main(["run", "imagenet", "--epochs-scale", "-1"])


def test_the_installed_command_exits_with_the_code_and_one_line(place: Path) -> None:
    """The real process: its exit status, and stderr without a traceback (``DSD_DEBUG=1``: with one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGENET_DIR", "DSD_DEBUG")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "tasks.cli", "run", "imagenet", "--data", "nowhere"]
    done = subprocess.run(command, cwd=place, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        == f"{PREFIX} data directory nowhere does not exist; expected nowhere/train/ and nowhere/val/"
    )
    done = subprocess.run(
        command, cwd=place, env={**env, "DSD_DEBUG": "1"}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and "Traceback" in done.stderr and "DataTreeError" in done.stderr
