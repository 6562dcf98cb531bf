"""What the three tasks share: one error hierarchy, one spelling of "the stand-in", one cache-dir
default, and command lines whose ``--help`` shows every field's help, default and choices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dsd.errors import ConfigError, DataError, UserError
from dsd.run.settings import RunConfig
from dsd.taskkit.adapter import default_cache_dir
from dsd.taskkit.config import choices_of, flag_name, help_of, path_fields
from tasks import get_task, task_names
from tasks.cli.study import run_parser
from tasks.flickr8k import corpus, features
from tasks.imagenet import data as imagenet_data
from tasks.wsj import audio, manifest, prepare

STANDIN_NAMES = {
    "imagenet": "digits stand-in",
    "flickr8k": "digits captions stand-in",
    "wsj": "espeak stand-in",
}


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (imagenet_data.DataTreeError, ValueError),
        (imagenet_data.ImageReadError, RuntimeError),
        (corpus.DataError, ValueError),
        (features.WeightsUnavailableError, RuntimeError),
        (manifest.ManifestError, ValueError),
        (audio.AudioError, ValueError),
        (audio.SphereConversionError, RuntimeError),
        (prepare.PreparationError, RuntimeError),
    ],
)
def test_every_task_error_is_a_user_error_and_keeps_its_builtin_base(error: type, builtin: type) -> None:
    assert issubclass(error, UserError) and issubclass(error, builtin)


@pytest.mark.parametrize("task", task_names())
def test_stand_in_spelling_and_cache_dir_default(task: str, tmp_path: Path) -> None:
    adapter_type = get_task(task)
    standin = adapter_type()
    assert standin.is_standin and standin.dataset_name == STANDIN_NAMES[task]
    assert standin.cache_dir == default_cache_dir(task) == Path("data") / task
    assert default_cache_dir(task, Path("elsewhere")) == Path("elsewhere") / task
    manifest.write_prepared(tmp_path, "librispeech", {}, {})  # what the speech task reads first
    real = adapter_type(None, tmp_path, tmp_path / "cache")
    assert not real.is_standin and real.data_dir == tmp_path and real.cache_dir == tmp_path / "cache"
    with pytest.raises(TypeError, match=f"expected a {adapter_type.Config.__name__}"):
        adapter_type(RunConfig())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task", "changes", "message"),
    [
        ("imagenet", {"arch": "resnet19"}, r"--arch 'resnet19' is not one of: resnet18, resnet50"),
        ("imagenet", {"batch_size": -1}, "--batch-size must be positive"),
        ("imagenet", {"min_crop_scale": 2.0}, r"--min-crop-scale must be in \(0, 1\]"),
        ("flickr8k", {"encoder": "resnet"}, r"--encoder 'resnet' is not one of: auto, vgg16-fc7"),
        ("flickr8k", {"feature_norm": "l2"}, "--feature-norm 'l2'"),
        ("flickr8k", {"rmsprop_alpha": -0.5}, "--rmsprop-alpha must be positive"),
        ("wsj", {"arch": "deepspeech3"}, "--arch 'deepspeech3' is not one of: deepspeech, deepspeech2"),
        ("wsj", {"rnn": "lstm"}, "--rnn 'lstm'"),
        ("wsj", {"optimizer": "sgd"}, "--optimizer 'sgd'"),
        ("wsj", {"standin_vocabulary": 0}, "vocabulary must be in 1.."),
    ],
)
def test_configuration_mistakes_are_config_errors(task: str, changes: dict, message: str) -> None:
    adapter_type = get_task(task)
    with pytest.raises(ConfigError, match=message) as caught:
        adapter_type(adapter_type.Config(**changes), None, Path("unused-cache"))
    assert isinstance(caught.value, ValueError) and caught.value.exit_code == 2


def test_data_and_preparation_mistakes_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        manifest.read_manifest(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="looks like neither WSJ"):
        prepare.detect_corpus(tmp_path)
    with pytest.raises(ConfigError, match="unknown corpus"):
        prepare.prepare_manifests("timit", tmp_path, tmp_path / "out")


@pytest.mark.parametrize("task", task_names())
def test_every_task_field_has_help_and_path_fields_stay_out_of_the_hash(task: str) -> None:
    config_type = get_task(task).Config
    for field in dataclasses.fields(config_type):
        assert help_of(config_type, field.name), f"{config_type.__name__}.{field.name} has no help"
    expected = {"imagenet": set(), "flickr8k": {"annotations_file", "images_dir"}, "wsj": {"prepared_dir"}}
    assert path_fields(config_type) == expected[task]


def _flat(text: str) -> str:
    """Help text with argparse's line wrapping undone (it breaks lines at spaces and after hyphens)."""
    return " ".join(text.split()).replace("- ", "-")


@pytest.mark.parametrize("task", task_names())
def test_run_help_shows_every_field_with_its_help_default_and_choices(
    task: str, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter_type = get_task(task)
    with pytest.raises(SystemExit):
        run_parser(task, adapter_type).parse_args(["--help"])
    text = _flat(capsys.readouterr().out)
    config_type = adapter_type.Config
    for field in dataclasses.fields(config_type):
        flag, default = flag_name(field.name), field.default
        shown = repr(default) if not isinstance(default, bool) else str(default)
        assert _flat(f"{help_of(config_type, field.name)} (default: {shown})") in text, flag
        choices = choices_of(config_type, field.name)
        if choices:
            assert f"{flag} {{{','.join(choices)}}}" in text, flag
    for field in ("epochs_scale", "amp", "log_every", "eval_every", "results_dir"):
        assert _flat(help_of(RunConfig, field)) in text, field


def test_cache_dir_flag_keeps_its_meaning() -> None:
    """``--cache-dir DIR`` puts a task's caches in DIR/<task>, as before; the default is data/<task>."""
    adapter_type = get_task("wsj")
    args = run_parser("wsj", adapter_type).parse_args([])
    assert default_cache_dir("wsj", args.cache_dir) == Path("data") / "wsj"
    args = run_parser("wsj", adapter_type).parse_args(["--cache-dir", "/scratch"])
    assert default_cache_dir("wsj", args.cache_dir) == Path("/scratch") / "wsj"
