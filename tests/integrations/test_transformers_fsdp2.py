"""DSDCallback in a real ``transformers.Trainer`` under Accelerate's FSDP2 plugin, on 2 gloo ranks.

A tiny Llama (grouped-query attention, gated MLP with 33 rows: uneven shards, output tied to the
embedding) trains ``D:2steps S50%:3steps D:2steps`` with gradient accumulation 2 and a checkpoint
inside the S phase, then a second Trainer resumes from it with another initialisation. Each rank
records what its shards looked like at the Trainer's events; the single-process engine's masks on
the same weights are computed here.

Accelerate turns its FSDP plugin on only for GPU-like devices (``accelerate.state``: the CPU
branch never reads it). On these CPU machines the test sets the distributed type that branch would
set, before the Trainer builds its ``Accelerator``; from there on everything is Accelerate's own
FSDP2 path: ``fsdp2_prepare_model`` (``fully_shard`` per decoder layer, the tied embedding and
the root), the optimizer's parameters swapped for the shards, clipping over DTensor gradients,
and DCP checkpoints of the model and optimizer.

Every test failed on the callback before FSDP2 support (commit 2fab2a3): ``on_train_begin``
refused FSDP (``NotImplementedError: DSDCallback does not support DeepSpeed or FSDP``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import functools
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.engine.test_held_everywhere_ddp import run_on_two_ranks

SCHEDULE = "D:2steps@1e-3 S50%:3steps@1e-3 D:2steps@1e-4"
S_STEPS = (2, 3, 4)  # optimizer steps (0-based) of the S phase
JOIN_TIMEOUT_S = 240


def tiny_llama(seed: int = 0) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=33,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=16,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


class Tokens(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.ids = torch.randint(1, 40, (64, 8), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


# ----------------------------------------------------------------------------- on each rank
def _accelerate_fsdp2_on_cpu(args: Any) -> None:
    """Set the state Accelerate sets for FSDP on a GPU (see the module's docstring)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    Accelerator(cpu=True)
    state = AcceleratorState()
    state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)


def _callbacks(schedule: str) -> tuple[Any, Any, Any]:
    """The DSD callback between two probes: one sees each step before it, one after it."""
    from transformers import TrainerCallback

    from dsd.integrations.transformers import DSDCallback

    dsd = DSDCallback(schedule)

    def local(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to_local().detach()

    class Before(TrainerCallback):
        """Full weights at the start of the S phase (before the callback prunes)."""

        def __init__(self) -> None:
            self.weights: dict[str, list] = {}

        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == S_STEPS[0] and dsd.engine is not None:
                self.weights = {t.name: t.param.full_tensor().tolist() for t in dsd.engine.tensors}

    class After(TrainerCallback):
        """What this rank's shards hold at each event, counted from the tensors themselves."""

        def __init__(self) -> None:
            self.seen: dict[str, Any] = {"masks": {}, "grads": {}, "weights": {}, "logs": [], "restored": {}}
            self.params: dict[str, torch.Tensor] = {}
            self.kept: dict[str, torch.Tensor] = {}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            engine = dsd.engine
            self.params = {t.name: t.param for t in engine.tensors}
            self.seen["begin"] = {
                "phase": engine.phase,
                "masks": {n: m.int().tolist() for n, m in engine.masks.items()},
            }
            self.seen["selected"] = [t.name for t in engine.tensors]

        def on_step_begin(self, args, state, control, **kwargs):
            masks = dsd.engine.masks
            if masks:
                self.kept = {n: m.clone() for n, m in masks.items()}
                self.seen["masks"][state.global_step] = {n: m.int().tolist() for n, m in masks.items()}
            elif self.kept and state.global_step == S_STEPS[-1] + 1:  # restored: from exactly 0
                self.seen["restored"]["begin"] = self._pruned_max()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):  # after clipping
            masks = dsd.engine.masks
            if masks:
                self.seen["grads"][state.global_step] = max(
                    local(self.params[n].grad)[~m].abs().max().item() for n, m in masks.items()
                )

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step - 1
            if dsd.engine.masks:
                self.seen["weights"][step] = self._pruned_max()
            elif self.kept and step == S_STEPS[-1] + 1:
                self.seen["restored"]["moved"] = min(
                    (local(self.params[n])[~m] != 0).float().mean().item() for n, m in self.kept.items()
                )

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.seen["logs"].append([state.global_step, logs["dsd/phase"], logs["dsd/sparsity"]])

        def _pruned_max(self) -> float:
            return max(local(self.params[n])[~m].abs().max().item() for n, m in self.kept.items())

    return Before(), dsd, After()


def _train(rank: int, out_dir: Path, seed: int, resume: str | None) -> dict[str, Any]:
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(out_dir),
        use_cpu=True,
        report_to=[],
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_steps=7,
        logging_steps=1,
        save_strategy="steps",
        save_steps=3,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        disable_tqdm=True,
        seed=0,
        fsdp=True,
        fsdp_config={"version": 2, "state_dict_type": "SHARDED_STATE_DICT"},
    )
    _accelerate_fsdp2_on_cpu(args)
    before, dsd, after = _callbacks(SCHEDULE)
    model = tiny_llama(seed)
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[before, dsd, after])
    trainer.train(resume_from_checkpoint=resume)
    seen = after.seen | {"weights_at_prune": before.weights, "fsdp": trainer.is_fsdp_enabled}
    seen["final"] = {n: p.full_tensor().tolist() for n, p in model.named_parameters()}
    return seen


def _story(rank: int, out_dir: str) -> dict[str, Any]:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    first = _train(rank, Path(out_dir, "run"), seed=0, resume=None)
    resumed = _train(rank, Path(out_dir, "run"), seed=1, resume=str(Path(out_dir, "run", "checkpoint-3")))
    return {"first": first, "resumed": resumed}


# ----------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("trainer-fsdp2")
    ranks = run_on_two_ranks(functools.partial(_story, out_dir=str(out)), out, JOIN_TIMEOUT_S)
    return {"out": out, "ranks": ranks}


def _whole(ranks: list[dict[str, Any]], step: int) -> dict[str, torch.Tensor]:
    masks = [r["masks"][str(step)] for r in ranks]  # JSON keys are text
    return {n: torch.cat([torch.tensor(m[n]) for m in masks]).bool() for n in masks[0]}


def test_the_masks_are_the_single_process_engines_and_fixed_through_the_s_phase(story) -> None:
    import dsd
    from dsd.integrations.transformers import default_selection
    from dsd.masks import pruned_count

    ranks = [r["first"] for r in story["ranks"]]
    assert all(r["fsdp"] for r in ranks), "Accelerate did not run FSDP2"
    model = tiny_llama()
    assert ranks[0]["selected"] == default_selection(model)
    weights = ranks[0]["weights_at_prune"]
    assert weights and weights == ranks[1]["weights_at_prune"]
    with torch.no_grad():
        for name, values in weights.items():
            model.get_parameter(name).copy_(torch.tensor(values))
    reference = dsd.DSD(model, torch.optim.AdamW(model.parameters()), include=list(weights))
    reference.prune(0.5)
    assert sorted(int(k) for k in ranks[0]["masks"]) == list(S_STEPS)
    for step in S_STEPS:
        masks = _whole(ranks, step)
        for name, mask in reference.masks.items():
            assert int((~masks[name]).sum()) == pruned_count(mask.numel(), 0.5), (step, name)
            assert torch.equal(masks[name], mask), (step, name)


def test_pruned_gradients_are_zero_before_the_step_and_weights_stay_zero(story) -> None:
    for rank, r in enumerate(story["ranks"]):
        seen = r["first"]
        assert sorted(map(int, seen["grads"])) == list(S_STEPS), f"rank {rank}"
        assert set(seen["grads"].values()) == {0.0}, f"rank {rank}: a pruned gradient reached the step"
        assert set(seen["weights"].values()) == {0.0}, f"rank {rank}: a pruned weight moved"


def test_logs_and_phase_change_back_to_dense(story) -> None:
    for rank, r in enumerate(story["ranks"]):
        seen = r["first"]
        assert [phase for _, phase, _ in seen["logs"]] == [0, 0, 1, 1, 1, 2, 2], f"rank {rank}"
        for step, phase, sparsity in seen["logs"]:
            if phase == 1:
                assert sparsity == pytest.approx(0.5, abs=1e-3), (rank, step)
        assert seen["restored"]["begin"] == 0.0, f"rank {rank}: restored weights did not start at 0"
        assert seen["restored"]["moved"] > 0.9, f"rank {rank}: restored weights did not learn"


def test_resume_mid_s_phase_restores_the_sharded_masks_and_ends_where_the_first_run_did(story) -> None:
    assert (story["out"] / "run" / "checkpoint-3" / "dsd_engine").is_dir()
    for rank, r in enumerate(story["ranks"]):
        first, resumed = r["first"], r["resumed"]
        assert resumed["begin"]["phase"] == "sparse", f"rank {rank}"
        assert resumed["begin"]["masks"] == first["masks"]["3"], f"rank {rank}: masks not restored"
        assert set(resumed["weights"].values()) == {0.0}
        assert resumed["final"] == first["final"], f"rank {rank}: the resumed run ended elsewhere"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_deepspeed_and_fsdp1_stay_refused_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: DeepSpeed raised ``NotImplementedError`` (not the suite's ``ConfigError``), and an
    FSDP1 model handed over without ``args.fsdp`` was not refused at all."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from dsd.errors import ConfigError
    from dsd.integrations.transformers import DSDCallback
    from tests.integrations.test_transformers import call_train_begin, tiny_bert

    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to=[])
    args.deepspeed = (
        "ds_config.json"  # what TrainingArguments(deepspeed=...) leaves, without deepspeed installed
    )
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(ConfigError, match=r"DeepSpeed.*FSDP2.*DDP"):
        DSDCallback(SCHEDULE).on_train_begin(
            args, TrainerState(), TrainerControl(), model=model, optimizer=optimizer, lr_scheduler=None
        )

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        wrapped = FullyShardedDataParallel(tiny_bert(), device_id=torch.device("cpu"), use_orig_params=True)
        with pytest.raises(ConfigError, match=r"FSDP1.*FSDP2.*DDP"):
            call_train_begin(DSDCallback(SCHEDULE), wrapped)
    finally:
        dist.destroy_process_group()
        os.environ.pop("MASTER_PORT", None)
