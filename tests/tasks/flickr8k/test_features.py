"""The image-feature cache: computed once, reused, keyed by encoder and images, never half-written."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models._api import WeightsEnum

from tasks.flickr8k import features, glyphnet
from tasks.flickr8k.adapter import Flickr8kConfig, Flickr8kTask
from tasks.flickr8k.corpus import DataError
from tests.tasks.flickr8k.test_data import TEST, TRAIN, VAL, write_token_layout

NAMES = TRAIN + VAL + TEST


def test_features_are_computed_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = write_token_layout(tmp_path / "data") / "Flicker8k_Dataset"
    table = features.load_or_compute(tmp_path / "cache", "pixels", images, NAMES)
    assert table.names == sorted(NAMES) and table.features.shape == (4, 24 * 32 * 3) and table.failed == []
    cached = list((tmp_path / "cache" / features.CACHE_FOLDER).iterdir())
    assert [p.suffix for p in cached] == [".pt"] and cached[0].name.startswith("pixels-")

    def no_recompute(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were recomputed instead of read from the cache")

    monkeypatch.setattr(features, "compute", no_recompute)
    again = features.load_or_compute(tmp_path / "cache", "pixels", images, list(reversed(NAMES)))
    assert torch.equal(again.features, table.features)
    # another image list (or another encoder) is another cache file
    assert features.cache_path(tmp_path, "pixels", images, NAMES[:3]) != cached[0]
    assert features.cache_path(tmp_path, "digits-cnn", images, NAMES).name.startswith("digits-cnn-")


def test_an_undecodable_image_is_named_and_nothing_is_cached(tmp_path: Path) -> None:
    root = write_token_layout(tmp_path / "data")
    (root / "Flicker8k_Dataset" / TRAIN[1]).write_bytes(b"this is no JPEG")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"{TRAIN[1]}: cannot decode the image"):
        features.load_or_compute(cache, "pixels", root / "Flicker8k_Dataset", NAMES)
    assert not list(cache.rglob("*.pt")) and not list(cache.rglob("*.tmp"))

    config = Flickr8kConfig(encoder="pixels", skip_bad_data=True, min_word_count=1)
    task = Flickr8kTask(config, root, cache)
    task.prepare()
    assert task.data_issues()["undecodable_images"] == 1
    assert task.split_images("train") == TRAIN[:1] and task.split_images("test") == TEST
    # the cache records the failure: a later run without skipping still refuses the image
    with pytest.raises(DataError, match="could not be decoded"):
        Flickr8kTask(Flickr8kConfig(encoder="pixels"), root, cache).prepare()


def test_vgg16_weights_offline_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(self: object, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    expected = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    with pytest.raises(RuntimeError, match=rf"vgg16-397923af\.pth .*{expected}"):
        features.build_encoder("vgg16-fc7", tmp_path)


def test_glyph_encoder_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glyphnet, "TRAIN_PATCHES", 300)
    monkeypatch.setattr(glyphnet, "TEST_PATCHES", 100)
    monkeypatch.setattr(glyphnet, "EPOCHS", 1)
    encoder, accuracy = glyphnet.load_or_train(tmp_path)
    assert 0.0 <= accuracy <= 1.0 and (tmp_path / f"glyphnet-v{glyphnet.VERSION}.pt").is_file()
    out = encoder(torch.rand(2, 3, 48, 64))
    cells = glyphnet.GRID[0] * glyphnet.GRID[1]
    assert out.shape == (
        2,
        cells * (48 + glyphnet.CLASSES) + 3 * glyphnet.THUMBNAIL[0] * glyphnet.THUMBNAIL[1],
    )
    assert not any(p.requires_grad for p in encoder.parameters())
    reloaded, same = glyphnet.load_or_train(tmp_path)
    assert same == accuracy and torch.equal(
        reloaded(torch.ones(1, 3, 48, 64)), encoder(torch.ones(1, 3, 48, 64))
    )
