"""The suite's tasks: name -> adapter class, imported only when asked for.

Each task is a package that stands on ``dsd`` alone (never on another task).
"""

from __future__ import annotations

import importlib

from dsd.taskkit.adapter import TaskAdapter

#: name -> "module:Class"; lazy so that one task's heavy imports never slow another's.
REGISTRY: dict[str, str] = {
    "imagenet": "tasks.imagenet.adapter:ImageNetTask",
    "flickr8k": "tasks.flickr8k.adapter:Flickr8kTask",
    "wsj": "tasks.wsj.adapter:SpeechTask",
}


def task_names() -> list[str]:
    return sorted(REGISTRY)


def get_task(name: str) -> type[TaskAdapter]:
    """The adapter class registered as ``name``; an unknown name lists the valid ones."""
    if name not in REGISTRY:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(task_names())}")
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
