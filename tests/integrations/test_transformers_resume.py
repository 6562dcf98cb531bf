"""DSDCallback resumes from the checkpoint folder the Trainer is given, wherever it is (issue 20,
item 13): a fresh ``Trainer`` with another ``output_dir`` calling
``trainer.train(resume_from_checkpoint="<other run>/checkpoint-6")``.

Before: ``FileNotFoundError ... no dsd_engine.pt was found`` (the callback looked only in
``TrainingArguments.resume_from_checkpoint`` and in its own ``output_dir``), and a resume from a
folder without the file silently took the masks of ``output_dir/checkpoint-6`` instead.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import Trainer

from dsd.integrations.transformers import ENGINE_FILE, DSDCallback
from tests.integrations.test_transformers import (
    S_STEPS,
    SCHEDULE,
    Probe,
    Tokens,
    one_thread,  # noqa: F401 (a module-scoped fixture: one thread for tiny models)
    tiny_bert,
    training_args,
)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The schedule trained once, with a checkpoint at step 6 (inside the S phase)."""
    out = tmp_path_factory.mktemp("first-run")
    model = tiny_bert()
    dsd = DSDCallback(SCHEDULE)
    probe = Probe(dsd, model)
    args = training_args(out, save_strategy="steps", save_steps=6)
    Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[dsd, probe]).train()
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return dict(out=out, masks=probe.masks_at[S_STEPS[0]], final=final)


def resume(output_dir, folder) -> tuple[torch.nn.Module, Probe]:
    model = tiny_bert(seed=1)  # another init: everything must come from the checkpoint
    dsd = DSDCallback(SCHEDULE)
    probe = Probe(dsd, model)
    trainer = Trainer(
        model=model, args=training_args(output_dir), train_dataset=Tokens(), callbacks=[dsd, probe]
    )
    trainer.train(resume_from_checkpoint=str(folder))
    return model, probe


def test_a_fresh_trainer_resumes_from_a_checkpoint_folder_elsewhere(first_run, tmp_path) -> None:
    folder = tmp_path / "kept" / "step six of the first run"  # any name, outside output_dir
    shutil.copytree(first_run["out"] / "checkpoint-6", folder)
    model, probe = resume(tmp_path / "fresh-output", folder)

    assert probe.at_begin["phase"] == "sparse"
    for name, mask in first_run["masks"].items():
        assert torch.equal(probe.at_begin["masks"][name], mask), name
    for name, value in model.state_dict().items():  # the run ends where the uninterrupted one did
        assert torch.equal(value, first_run["final"][name]), name


def test_the_folder_given_is_the_only_one_read(first_run, tmp_path) -> None:
    """A folder without the file is refused, even where ``output_dir`` holds a checkpoint at the
    same step: its masks would be another run's."""
    output_dir = tmp_path / "out"
    shutil.copytree(first_run["out"] / "checkpoint-6", output_dir / "checkpoint-6")
    folder = tmp_path / "elsewhere"
    shutil.copytree(first_run["out"] / "checkpoint-6", folder)
    (folder / ENGINE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=rf"no {ENGINE_FILE} was found in \['[^']*elsewhere'\]"):
        resume(output_dir, folder)
