"""The suite's tasks: name -> adapter class, imported only when asked for.

Each task is a package that stands on ``dsd`` alone (never on another task).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from dsd.errors import ConfigError

if TYPE_CHECKING:  # the registry itself needs no torch: `dsd-suite status` runs without it
    from dsd.taskkit.adapter import TaskAdapter

#: name -> "module:Class"; lazy so that one task's heavy imports never slow another's.
REGISTRY: dict[str, str] = {
    "imagenet": "tasks.imagenet.adapter:ImageNetTask",
    "flickr8k": "tasks.flickr8k.adapter:Flickr8kTask",
    "wsj": "tasks.wsj.adapter:SpeechTask",
}


#: Tasks added without editing the suite: ``DSD_TASKS="name=module:Class,..."`` names adapter
#: classes importable on the Python path (a lab's own task package; the tests' toy task, which
#: the jobs of a launched study import this way in processes of their own).
TASKS_ENV = "DSD_TASKS"


def registry() -> dict[str, str]:
    """The suite's tasks and those ``DSD_TASKS`` adds: name -> ``module:Class``."""
    tasks = dict(REGISTRY)
    for entry in filter(None, (e.strip() for e in os.environ.get(TASKS_ENV, "").split(","))):
        name, _, target = entry.partition("=")
        if not name or target.count(":") != 1:
            raise ConfigError(
                f"{TASKS_ENV}: {entry!r} is not name=module:Class (e.g. mytask=mypackage.task:MyTask)"
            )
        tasks[name.strip()] = target.strip()
    return tasks


def task_names() -> list[str]:
    return sorted(registry())


def get_task(name: str) -> type[TaskAdapter]:
    """The adapter class registered as ``name``; an unknown name lists the valid ones."""
    tasks = registry()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(tasks))}")
    module_name, class_name = tasks[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
