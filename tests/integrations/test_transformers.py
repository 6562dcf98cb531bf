"""DSDCallback inside a real ``transformers.Trainer`` on a tiny config-built BERT (CPU, seconds).

The main run (``D:4steps S50%:4steps D:4steps``, a checkpoint at step 6, inside the S phase) is
shared by several tests; probes beside the callback record what the model looked like at each
Trainer event, counted from the weights themselves, not from what the callback reports.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import logging
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from dsd.integrations.transformers import ENGINE_FILE, DSDCallback, default_selection
from dsd.masks import pruned_count

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = "D:4steps@1e-3 S50%:4steps@1e-3 D:4steps@1e-4"
S_STEPS = range(4, 8)  # optimizer steps (0-based) of the S phase
CONFIG = dict(
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=16,
    num_labels=2,
)
BODY_LINEAR = [
    f"bert.encoder.layer.{i}.{name}.weight"
    for i in range(2)
    for name in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    )
] + ["bert.pooler.dense.weight"]


class Tokens(torch.utils.data.Dataset):
    """32 fixed sequences with a learnable label (first token above the middle of the vocab)."""

    def __init__(self, size: int = 32) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 50, (size, 8), generator=gen)
        self.ids[::3, 6:] = 0  # some padding
        self.mask = (self.ids != 0).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": int(self.ids[i, 0] > 25)}


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**CONFIG))


def training_args(output_dir: Path, **overrides) -> TrainingArguments:
    options = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        report_to=[],
        per_device_train_batch_size=8,
        max_steps=12,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        weight_decay=0.01,
        disable_tqdm=True,
        seed=0,
    )
    options.update(overrides)
    return TrainingArguments(**options)


def zeros(t: torch.Tensor) -> int:
    return int((t == 0).sum())


class Probe(TrainerCallback):
    """Records the model at Trainer events; placed after DSDCallback in the callback list."""

    def __init__(self, dsd: DSDCallback, model: torch.nn.Module) -> None:
        self.dsd, self.model = dsd, model
        self.params = dict(model.named_parameters())
        self.at_begin: dict = {}
        self.logs: list[tuple[int, dict, dict[str, int]]] = []
        self.masks_at: dict[int, dict[str, torch.Tensor]] = {}
        self.phase_at_begin: dict[int, str] = {}
        self.pruned_grad_max: dict[int, float] = {}
        self.pruned_values: dict[tuple[str, int], float] = {}
        self.redense_masks: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        engine = self.dsd.engine
        self.at_begin = {
            "phase": engine.phase,
            "masks": {k: v.clone() for k, v in engine.masks.items()},
            "selected": [t.name for t in engine.tensors],
            "zeros": {n: zeros(p) for n, p in self.params.items()},
        }

    def on_step_begin(self, args, state, control, **kwargs):
        step, engine = state.global_step, self.dsd.engine
        self.phase_at_begin[step] = engine.phase
        if engine.is_sparse:
            self.masks_at[step] = {k: v.clone() for k, v in engine.masks.items()}
            self.redense_masks = self.masks_at[step]
        elif self.redense_masks and step == S_STEPS[-1] + 1:
            self.pruned_values[("begin", step)] = self._pruned_abs_max()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        # After backward and clipping, before optimizer.step() and the engine's own pre-step hook.
        masks = self.dsd.engine.masks
        if masks:
            self.pruned_grad_max[state.global_step] = max(
                float(self.params[n].grad[~m].abs().max()) for n, m in masks.items()
            )

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step - 1 == S_STEPS[-1] + 1 and self.redense_masks:
            self.pruned_values[("end", state.global_step - 1)] = self._pruned_abs_max()

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append((state.global_step, dict(logs), {n: zeros(p) for n, p in self.params.items()}))

    def _pruned_abs_max(self) -> float:
        return max(float(self.params[n].detach()[~m].abs().max()) for n, m in self.redense_masks.items())


class Snapshot(TrainerCallback):
    """Copies every parameter at on_step_begin; placed before or after DSDCallback."""

    def __init__(self, model: torch.nn.Module, step: int) -> None:
        self.model, self.step, self.params = model, step, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.params = {n: p.detach().clone() for n, p in self.model.named_parameters()}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a shared machine, OpenMP spinning slows them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    """Train the full schedule once, with a checkpoint at step 6 (inside the S phase)."""
    out = tmp_path_factory.mktemp("dsd-trainer")
    model = tiny_bert()
    dsd = DSDCallback(SCHEDULE)
    probe = Probe(dsd, model)
    before, after = Snapshot(model, S_STEPS[0]), Snapshot(model, S_STEPS[0])
    args = training_args(out, save_strategy="steps", save_steps=6)
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[before, dsd, after, probe])
    trainer.train()
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return dict(
        out=out, model=model, dsd=dsd, probe=probe, before=before, after=after, trainer=trainer, final=final
    )


def test_default_selection_is_body_linear_weights(main_run):
    assert main_run["probe"].at_begin["selected"] == BODY_LINEAR
    assert default_selection(tiny_bert()) == BODY_LINEAR
    assert default_selection(tiny_bert(), prune_head=True) == [*BODY_LINEAR, "classifier.weight"]


def test_sparsity_is_exact_at_every_logged_step_of_the_s_phase(main_run):
    engine = main_run["dsd"].engine
    numel = {t.name: t.numel for t in engine.tensors}
    logged_in_s = 0
    for global_step, logs, counted in main_run["probe"].logs:
        if "loss" not in logs:
            continue
        last_step = global_step - 1  # the optimizer step this log follows
        if last_step in S_STEPS:
            logged_in_s += 1
            for name, n in numel.items():
                assert counted[name] == pruned_count(n, 0.5), (global_step, name)
            assert logs["dsd/phase"] == 1
            assert logs["dsd/sparsity"] == pytest.approx(0.5, abs=1e-3)
        else:
            assert logs["dsd/phase"] == (0 if last_step < S_STEPS[0] else 2)
    assert logged_in_s == len(S_STEPS)
    history = [h for h in main_run["trainer"].state.log_history if "loss" in h]
    assert [h["dsd/phase"] for h in history] == [0] * 4 + [1] * 4 + [2] * 4


def test_mask_is_fixed_through_the_s_phase(main_run):
    masks_at = main_run["probe"].masks_at
    assert sorted(masks_at) == list(S_STEPS)
    first = masks_at[S_STEPS[0]]
    for step in S_STEPS:
        for name, mask in masks_at[step].items():
            assert torch.equal(mask, first[name]), (step, name)


def test_pruned_gradients_are_zero_before_clipping_and_step(main_run):
    grads = main_run["probe"].pruned_grad_max
    assert sorted(grads) == list(S_STEPS)
    assert all(value == 0.0 for value in grads.values())


def test_embeddings_norms_and_biases_untouched(main_run):
    probe = main_run["probe"]
    selected = set(probe.at_begin["selected"])
    dense_weights = [n for n in probe.params if n.endswith(("_embeddings.weight", "LayerNorm.weight"))]
    assert dense_weights
    for _, _, counted in probe.logs:
        for name in dense_weights:
            assert counted[name] == probe.at_begin["zeros"][name], name
    # Pruning changes the selected tensors and nothing else, bit for bit.
    before, after = main_run["before"].params, main_run["after"].params
    for name in before:
        if name in selected:
            assert not torch.equal(before[name], after[name]), name
        else:
            assert torch.equal(before[name], after[name]), name


def test_weights_restart_from_zero_at_redense(main_run):
    probe = main_run["probe"]
    first_dense = S_STEPS[-1] + 1
    assert probe.phase_at_begin[first_dense] == "dense"
    assert probe.pruned_values[("begin", first_dense)] == 0.0
    assert probe.pruned_values[("end", first_dense)] > 0.0


def test_learning_rate_follows_the_schedule(main_run):
    rates = [logs["learning_rate"] for _, logs, _ in main_run["probe"].logs if "loss" in logs]
    assert rates == pytest.approx([1e-3] * 8 + [1e-4] * 4)


def test_checkpoint_holds_the_masks(main_run):
    path = main_run["out"] / "checkpoint-6" / ENGINE_FILE
    payload = torch.load(path, weights_only=True)
    assert payload["global_step"] == 6 and payload["phase_index"] == 1
    assert payload["engine"]["phase"] == "sparse"
    saved = payload["engine"]["masks"]
    for name, mask in main_run["probe"].masks_at[S_STEPS[0]].items():
        assert saved[name].dtype == torch.bool
        assert torch.equal(saved[name], mask)
    assert not list(path.parent.glob("*.tmp"))


def test_resume_mid_s_phase_keeps_the_mask(main_run, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(main_run["out"] / "checkpoint-6", out / "checkpoint-6")
    model = tiny_bert(seed=1)  # different init: everything must come from the checkpoint
    dsd = DSDCallback(SCHEDULE)
    probe = Probe(dsd, model)
    trainer = Trainer(model=model, args=training_args(out), train_dataset=Tokens(), callbacks=[dsd, probe])
    trainer.train(resume_from_checkpoint=True)

    assert probe.at_begin["phase"] == "sparse"
    expected = main_run["probe"].masks_at[S_STEPS[0]]
    assert probe.at_begin["masks"].keys() == expected.keys()
    for name, mask in expected.items():
        assert torch.equal(probe.at_begin["masks"][name], mask), name
    numel = {t.name: t.numel for t in dsd.engine.tensors}
    resumed_s_logs = [(g, c) for g, logs, c in probe.logs if "loss" in logs and g - 1 in S_STEPS]
    assert [g for g, _ in resumed_s_logs] == [7, 8]
    for _, counted in resumed_s_logs:
        for name, n in numel.items():
            assert counted[name] == pruned_count(n, 0.5), name
    # Same data order, RNG, optimizer state and masks: the resumed run ends where the first did.
    for name, value in model.state_dict().items():
        assert torch.equal(value, main_run["final"][name]), name


def test_resume_without_engine_file_is_refused(main_run, tmp_path):
    out = tmp_path / "no-masks"
    shutil.copytree(main_run["out"] / "checkpoint-6", out / "checkpoint-6")
    (out / "checkpoint-6" / ENGINE_FILE).unlink()
    trainer = Trainer(
        model=tiny_bert(), args=training_args(out), train_dataset=Tokens(), callbacks=[DSDCallback(SCHEDULE)]
    )
    with pytest.raises(FileNotFoundError, match=ENGINE_FILE):
        trainer.train(resume_from_checkpoint=True)


def test_epoch_phases_with_accumulation_and_linear_decay(tmp_path, caplog):
    """Fractional epochs become optimizer steps; a linear scheduler multiplies the phase rates."""
    model = tiny_bert()
    dsd = DSDCallback("D:1@1e-3 S50%:0.5@1e-3 D:0.5@1e-4")
    probe = Probe(dsd, model)
    args = training_args(
        tmp_path,
        max_steps=-1,
        num_train_epochs=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        lr_scheduler_type="linear",
    )
    with caplog.at_level(logging.WARNING, logger="dsd.integrations.transformers"):
        Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[dsd, probe]).train()
    assert dsd.steps_per_epoch == 4
    assert dsd.phase_starts == [0, 4, 6, 8]
    assert any("linear" in r.getMessage() for r in caplog.records)
    numel = {t.name: t.numel for t in dsd.engine.tensors}
    logs = [(g, logs, c) for g, logs, c in probe.logs if "loss" in logs]
    assert [g for g, _, _ in logs] == list(range(1, 9))
    for global_step, entry, counted in logs:
        step = global_step - 1
        phase_lr = 1e-4 if step >= 6 else 1e-3
        assert entry["learning_rate"] == pytest.approx(phase_lr * (8 - step) / 8)
        for name, n in numel.items():
            assert (counted[name] == pruned_count(n, 0.5)) == (step in (4, 5)), (step, name)
    assert sorted(probe.pruned_grad_max) == [4, 5]
    assert all(value == 0.0 for value in probe.pruned_grad_max.values())


class MaskingCounter(TrainerCallback):
    """Counts the engine's grad-hook calls and end-of-backward passes per optimizer step (wraps
    them at on_train_begin, after DSDCallback built the engine and before any prune())."""

    def __init__(self, dsd: DSDCallback) -> None:
        self.dsd = dsd
        self.hook_calls: dict[int, int] = {}
        self.passes: dict[int, int] = {}
        self.step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        after = self.dsd.engine._after_backward
        on_grad, masking = after._on_grad, after.fn

        def counted_hook(param):
            self.hook_calls[self.step] = self.hook_calls.get(self.step, 0) + 1
            on_grad(param)

        def counted_pass():
            self.passes[self.step] = self.passes.get(self.step, 0) + 1
            masking()

        after._on_grad, after.fn = counted_hook, counted_pass

    def on_step_begin(self, args, state, control, **kwargs):
        self.step = state.global_step


def test_with_accumulation_the_trainer_masks_once_per_optimizer_step(tmp_path):
    """Accumulation 4 over 10 batches an epoch (windows of 4, 4 and 2 micro-batches): the pruned
    tensors' hooks fire in the last micro-batch's backward only, one masking pass per step, and
    the gradients the Trainer clips are the sparse model's. Before: every micro-batch's backward
    called every pruned tensor's hook (10 calls a tensor per epoch instead of 3)."""
    model = tiny_bert()
    dsd = DSDCallback("D:1@1e-3 S50%:1@1e-3 D:1@1e-4")
    probe, counter = Probe(dsd, model), MaskingCounter(dsd)
    args = training_args(
        tmp_path,
        max_steps=-1,
        num_train_epochs=3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=4,
    )
    Trainer(model=model, args=args, train_dataset=Tokens(40), callbacks=[dsd, probe, counter]).train()
    assert dsd.phase_starts == [0, 3, 6, 9]
    tensors = len(dsd.engine.tensors)
    assert counter.hook_calls == {step: tensors for step in (3, 4, 5)}
    assert counter.passes == {3: 1, 4: 1, 5: 1}
    assert probe.pruned_grad_max == {3: 0.0, 4: 0.0, 5: 0.0}


class LogRecorder(TrainerCallback):
    """Stands for a reporting integration: keeps the keys of every log it receives."""

    def __init__(self) -> None:
        self.keys: list[set[str]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.keys.append(set(logs))


def test_attach_puts_the_callback_ahead_of_reporters(tmp_path):
    reporter = LogRecorder()
    args = training_args(tmp_path, max_steps=2)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(), callbacks=[reporter])
    dsd = DSDCallback("D:1steps@1e-3 S50%:1steps@1e-3").attach(trainer)
    assert trainer.callback_handler.callbacks[0] is dsd
    trainer.train()
    assert reporter.keys and all({"dsd/phase", "dsd/sparsity"} <= keys for keys in reporter.keys)


def call_train_begin(callback: DSDCallback, model, scheduler_kind: str = "lambda") -> None:
    """Drive on_train_begin by hand with a plain torch optimizer (no Trainer)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if scheduler_kind == "lambda":
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    state = TrainerState()
    state.max_steps = 12
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to=[], lr_scheduler_type="constant")
    callback.on_train_begin(
        args,
        state,
        TrainerControl(),
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        train_dataloader=None,
    )


def test_include_exclude_and_head():
    cb = DSDCallback(SCHEDULE, include="*.attention.self.*.weight", exclude="*.layer.1.*")
    call_train_begin(cb, tiny_bert())
    assert [t.name for t in cb.engine.tensors] == [
        f"bert.encoder.layer.0.attention.self.{n}.weight" for n in ("query", "key", "value")
    ]
    cb = DSDCallback(SCHEDULE, prune_head=True, exclude="bert.pooler.*")
    call_train_begin(cb, tiny_bert())
    assert [t.name for t in cb.engine.tensors] == [*BODY_LINEAR[:-1], "classifier.weight"]


def test_gpt2_conv1d_selected_and_tied_head_dense():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    names = default_selection(model, prune_head=True)
    assert names == [
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_proj.weight",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.0.mlp.c_proj.weight",
    ]


def test_scheduler_without_lambdas_is_refused_with_advice():
    with pytest.raises(TypeError, match="set_lr=False"):
        call_train_begin(DSDCallback(SCHEDULE), tiny_bert(), scheduler_kind="plateau")
    call_train_begin(DSDCallback(SCHEDULE, set_lr=False), tiny_bert(), scheduler_kind="plateau")


def test_bad_arguments_are_refused_at_construction():
    with pytest.raises(ValueError, match="cannot read phase"):
        DSDCallback("D:4@1e-3 S50:oops")
    with pytest.raises(ValueError, match="scope"):
        DSDCallback(SCHEDULE, scope="row")


def test_transformers_stays_optional():
    """``import dsd`` leaves transformers alone; without it, the integration says what to install."""
    code = (
        "import sys, dsd, dsd.integrations\n"
        "print('transformers' in sys.modules)\n"
        "sys.modules['transformers'] = None\n"
        "try:\n"
        "    import dsd.integrations.transformers\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    first, message = done.stdout.strip().split("\n", 1)
    assert first == "False"
    assert "pip install dsd-suite[transformers]" in message


def test_example_quick_runs(capsys):
    module = runpy.run_path(str(ROOT / "examples" / "hf_text_classification.py"), run_name="example")
    rows = module["main"](["--quick"])
    assert [r["method"] for r in rows] == ["baseline", "dsd", "dense-control"]
    peak = {r["method"]: r["peak_sparsity"] for r in rows}
    assert peak["dsd"] == pytest.approx(0.5, abs=1e-3)
    assert peak["baseline"] == 0.0 and peak["dense-control"] == 0.0
    printed = capsys.readouterr().out
    assert "| dsd |" in printed and "stand-in" in printed
