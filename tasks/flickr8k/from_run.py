"""The captioner's task as a finished run was made with, rebuilt from its record: for the caption
comparison (``tasks.flickr8k.figures``) drawn after the fact, from a results folder alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dsd.errors import ConfigError, DataError
from dsd.records import load_record
from tasks.flickr8k.adapter import Flickr8kTask
from tasks.flickr8k.config import STANDIN_NAME, Flickr8kConfig


def task_of_run(folder: Path, data_dir: Path | None = None, cache_dir: Path | None = None) -> Flickr8kTask:
    """The adapter a run was made with, rebuilt from its ``config.json``.

    ``cache_dir`` defaults to the task's ``default_cache_dir`` (``data/flickr8k``), where the
    command line builds the stand-in and the feature cache.
    """
    record = load_record(folder)
    if record.task != Flickr8kTask.name:
        raise DataError(f"{folder} is a {record.task!r} run, not a flickr8k one")
    known = {f.name for f in dataclasses.fields(Flickr8kConfig)}
    task_config = Flickr8kConfig(**{k: v for k, v in record.task_config.items() if k in known})
    standin = record.dataset == STANDIN_NAME
    if not standin and data_dir is None:
        raise ConfigError(f"{folder} was trained on Flickr-8K: pass data_dir (the dataset folder)")
    return Flickr8kTask(task_config, None if standin else data_dir, cache_dir)
