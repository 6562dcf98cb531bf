"""The callback's file in a Hugging Face Trainer checkpoint, and finding it again at resume.

``DSDCallback.on_save`` writes ``dsd_engine.pt`` (masks, phase, schedule) into each checkpoint
folder. At resume it must read the file of the folder the Trainer resumes from, wherever that is:
``trainer.train(resume_from_checkpoint="<another run>/checkpoint-6")`` with a fresh ``output_dir``
is ordinary use. The Trainer passes that folder to no callback (it is a local of its training
loop, already resolved from ``True`` to the last checkpoint of ``output_dir``), so it is read from
the frame of the Trainer method that called the callback (``resume_folder``). Where no Trainer
frame says (a callback driven by hand), the folders that can say are tried: the
``TrainingArguments(resume_from_checkpoint=...)`` field, then ``output_dir/checkpoint-<step>``.
When the Trainer does say, only its folder counts: masks from another folder would be another
run's.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch
from transformers import Trainer, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

#: The file the callback writes into every Trainer checkpoint folder.
ENGINE_FILE = "dsd_engine.pt"
FILE_FORMAT = "dsd-trainer-callback"
FILE_VERSION = 1


def resume_folder() -> str | None:
    """The checkpoint folder the running ``Trainer`` resumes from, read from the nearest calling
    frame of a Trainer method that has ``resume_from_checkpoint`` (its training loop); None when
    there is none or it does not resume."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if "resume_from_checkpoint" in frame.f_code.co_varnames and isinstance(
                frame.f_locals.get("self"), Trainer
            ):
                folder = frame.f_locals.get("resume_from_checkpoint")
                return os.fspath(folder) if isinstance(folder, (str, os.PathLike)) else None
            frame = frame.f_back
        return None
    finally:
        del frame  # a frame held in a local keeps every caller's locals alive


def candidate_folders(args: TrainingArguments, state: TrainerState) -> list[str]:
    """Where the engine state of a resume at ``state.global_step`` may be, in order."""
    folder = resume_folder()
    if folder is not None:
        return [folder]
    folders = []
    if isinstance(args.resume_from_checkpoint, str):
        folders.append(args.resume_from_checkpoint)
    folders.append(os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"))
    return folders


def load_payload(args: TrainingArguments, state: TrainerState, schedule: str) -> tuple[dict[str, Any], str]:
    """The callback's saved payload for this resume, checked (format, version, schedule, step),
    and the path it came from."""
    folders = candidate_folders(args, state)
    path = next(
        (os.path.join(f, ENGINE_FILE) for f in folders if os.path.isfile(os.path.join(f, ENGINE_FILE))),
        None,
    )
    if path is None:
        raise FileNotFoundError(
            f"resuming at optimizer step {state.global_step}, but no {ENGINE_FILE} was found in "
            f"{folders}; the DSD masks cannot be restored. Resume from a checkpoint written with "
            "DSDCallback."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: cannot read the DSD engine state ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ValueError(f"{path}: not a DSDCallback checkpoint file (format {FILE_FORMAT!r} expected)")
    if payload.get("version") != FILE_VERSION:
        raise ValueError(f"{path}: file version {payload.get('version')!r}, expected {FILE_VERSION}")
    if payload["schedule"] != schedule:
        raise ValueError(
            f"{path}: written for schedule {payload['schedule']!r}, but this callback runs "
            f"{schedule!r}; resume with the same schedule"
        )
    if payload["global_step"] != state.global_step:
        raise ValueError(
            f"{path}: written at optimizer step {payload['global_step']}, but the Trainer resumes "
            f"at step {state.global_step}"
        )
    return payload, path
