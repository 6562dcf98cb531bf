"""dsd.engine: the mask held through every optimizer step, re-dense, state, resume, bad input."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import dsd

pytestmark = pytest.mark.usefixtures("single_thread")

# ----------------------------------------------------------------------------- helpers


class TinyNet(nn.Module):
    """A first conv (kept dense), a second conv, BatchNorm, dropout and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(x))
        x = torch.tanh(self.bn(self.conv2(x)))
        return self.fc(self.drop(x.flatten(1)))


PRUNED = ("conv2.weight", "fc.weight")


def make_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    """``steps`` SGD steps on random data drawn from the global RNG (so RNG state matters)."""
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 3, 8, 8)
        y = torch.randint(0, 5, (8,))
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def param_of(model: nn.Module, name: str) -> nn.Parameter:
    return model.get_parameter(name)


#: State an optimizer itself refills for zero gradients: Adamax's infinity norm becomes
#: max(b2 * u, |0| + eps) = eps, a harmless denominator (its first moment stays 0).
REFILLED_STATE = {"exp_inf"}


def assert_held(engine: dsd.DSD, optimizer: torch.optim.Optimizer) -> None:
    """Pruned weights exactly zero, and every per-element optimizer state of them zero."""
    for name, mask in engine.masks.items():
        p = engine.model.get_parameter(name)
        assert mask.dtype == torch.bool and mask.shape == p.shape
        assert (p.detach()[~mask] == 0).all(), f"{name}: a pruned weight was revived"
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value) and value.shape == p.shape and key not in REFILLED_STATE:
                assert (value[~mask] == 0).all(), f"{name}: optimizer state {key!r} of pruned entries"


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer, engine: dsd.DSD | None = None) -> dict:
    """A deep copy of everything a refused call must leave untouched."""
    buffer = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if engine is not None:
        state["engine"] = engine.state_dict()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_same(a, b, where: str = "") -> None:
    """Exact equality of nested states (NaN equal to NaN)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape, where
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=where)
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# ----------------------------------------------------------------------------- optimizers
def _optimizers() -> dict[str, callable]:
    o = torch.optim
    return {
        "sgd": lambda p: o.SGD(p, lr=0.1),
        "sgd-momentum": lambda p: o.SGD(p, lr=0.1, momentum=0.9),
        "sgd-nesterov-wd": lambda p: o.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
        "sgd-dampening-wd": lambda p: o.SGD(p, lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1),
        "sgd-foreach": lambda p: o.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2, foreach=True),
        "sgd-fused": lambda p: o.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2, fused=True),
        "adam": lambda p: o.Adam(p, lr=1e-2),
        "adam-amsgrad-wd": lambda p: o.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-2),
        "adam-foreach": lambda p: o.Adam(p, lr=1e-2, foreach=True),
        "adam-fused": lambda p: o.Adam(p, lr=1e-2, fused=True),
        "adamw": lambda p: o.AdamW(p, lr=1e-2, weight_decay=0.1),
        "adamw-foreach": lambda p: o.AdamW(p, lr=1e-2, weight_decay=0.1, foreach=True),
        "adamw-fused": lambda p: o.AdamW(p, lr=1e-2, weight_decay=0.1, fused=True),
        "rmsprop": lambda p: o.RMSprop(p, lr=1e-2),
        "rmsprop-centered-momentum": lambda p: o.RMSprop(
            p, lr=1e-2, centered=True, momentum=0.9, weight_decay=1e-2
        ),
        "rmsprop-foreach": lambda p: o.RMSprop(p, lr=1e-2, momentum=0.5, foreach=True),
        "adagrad": lambda p: o.Adagrad(p, lr=0.1, weight_decay=1e-2),
        "adagrad-foreach": lambda p: o.Adagrad(p, lr=0.1, foreach=True),
        "adagrad-fused": lambda p: o.Adagrad(p, lr=0.1, fused=True),
        "nadam": lambda p: o.NAdam(p, lr=1e-2, weight_decay=1e-2),
        "radam": lambda p: o.RAdam(p, lr=1e-2, decoupled_weight_decay=True, weight_decay=1e-2),
        "adamax": lambda p: o.Adamax(p, lr=1e-2),
    }


OPTIMIZERS = _optimizers()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_pruned_weights_and_their_state_stay_zero_then_revive_from_zero(name):
    model = make_net()
    optimizer = OPTIMIZERS[name](model.parameters())
    engine = dsd.DSD(model, optimizer)
    assert [t.name for t in engine.tensors] == list(PRUNED)
    train_steps(model, optimizer, 4)  # dense: optimizer state builds up
    engine.prune(0.5)
    masks = {k: v.clone() for k, v in engine.masks.items()}
    for name_, mask in masks.items():
        assert (~mask).sum().item() == round(mask.numel() * 0.5), name_
    assert_held(engine, optimizer)  # state zeroed at prune
    for n, mask in masks.items():  # all of it, the refilled kind too
        for value in optimizer.state.get(param_of(model, n), {}).values():
            if torch.is_tensor(value) and value.shape == mask.shape:
                assert (value[~mask] == 0).all()
    kept_before = {n: param_of(model, n).detach()[m].clone() for n, m in masks.items()}
    train_steps(model, optimizer, 25)
    assert_held(engine, optimizer)
    for n, mask in masks.items():
        assert torch.equal(engine.masks[n], mask), f"{n}: the mask changed inside the sparse phase"
        assert not torch.equal(param_of(model, n).detach()[mask], kept_before[n]), f"{n}: kept weights frozen"
    engine.redense()
    assert engine.masks == {} and engine.phase == "dense"
    for n, mask in masks.items():
        assert (param_of(model, n).detach()[~mask] == 0).all(), f"{n}: re-dense must start at exactly 0"
    train_steps(model, optimizer, 5)
    for n, mask in masks.items():
        revived = (param_of(model, n).detach()[~mask] != 0).float().mean().item()
        assert revived > 0.9, f"{n}: only {revived:.0%} of the re-densed weights moved"


def test_gradients_of_pruned_entries_are_zero_when_the_step_runs():
    model = make_net()
    seen = {}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.4)

    def spy(opt, args, kwargs):  # registered after the engine's hook, so it runs after it
        for n, mask in engine.masks.items():
            seen[n] = param_of(model, n).grad[~mask].abs().max().item()

    optimizer.register_step_pre_hook(spy)
    train_steps(model, optimizer, 1)
    assert seen == dict.fromkeys(PRUNED, 0.0)


def test_mask_gradients_before_clipping_then_a_skipped_step_or_accumulation():
    # A GradScaler skips optimizer.step() on inf gradients; gradient accumulation adds a second
    # backward after mask_gradients(). Either way the next step must mask again, or momentum of
    # the pruned entries fills up and revives them at re-dense.
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.5)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    engine.mask_gradients()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.zero_grad()  # the step was skipped; the next iteration starts
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    assert_held(engine, optimizer)
    nn.functional.cross_entropy(model(x), y).backward()
    engine.mask_gradients()
    nn.functional.cross_entropy(model(x), y).backward()  # accumulate a second micro-batch
    optimizer.step()
    assert_held(engine, optimizer)


def test_apply_masks_after_editing_weights_by_hand():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.5)
    with torch.no_grad():
        model.fc.weight.fill_(1.0)
    engine.apply_masks()
    assert (~engine.masks["fc.weight"]).sum().item() == (model.fc.weight == 0).sum().item()


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_an_empty_weight_among_the_selected_does_not_break_pruning():
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 0), nn.Linear(0, 3), nn.Linear(4, 3))
    for scope in ("layer", "global"):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        engine = dsd.DSD(model, optimizer)
        engine.prune(0.5, scope=scope)
        assert [m.shape for m in engine.masks.values()] == [(6, 4), (0, 6), (3, 0), (3, 4)]
        assert sum((~m).sum().item() for m in engine.masks.values()) == 18  # 12 + 6, or 36 / 2
        engine.redense()
        engine.remove()


# ----------------------------------------------------------------------------- identity and state
def test_same_parameter_objects_and_optimizer_references_through_prune_and_redense():
    model = make_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = dsd.DSD(model, optimizer)
    before = [id(p) for p in model.parameters()]
    in_optimizer = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert before == in_optimizer
    train_steps(model, optimizer, 2)
    engine.prune(0.5)
    assert [id(p) for p in model.parameters()] == before
    train_steps(model, optimizer, 2)
    engine.redense()
    assert [id(p) for p in model.parameters()] == before
    assert [id(p) for g in optimizer.param_groups for p in g["params"]] == before
    assert all(p.__class__ is nn.Parameter for p in model.parameters())


def test_model_state_dict_keeps_its_keys_and_loads_strictly_into_a_plain_model():
    model = make_net()
    keys = list(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    train_steps(model, optimizer, 2)
    engine.prune(0.6)
    train_steps(model, optimizer, 3)
    state = model.state_dict()
    assert list(state) == keys
    plain = make_net(seed=99)
    plain.load_state_dict(state, strict=True)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert (plain.fc.weight == 0).sum().item() == round(plain.fc.weight.numel() * 0.6)


def test_model_is_deepcopyable_and_picklable_while_sparse():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.5)
    train_steps(model, optimizer, 2)
    clone = copy.deepcopy(model)
    restored = pickle.loads(pickle.dumps(model))
    buffer = io.BytesIO()
    torch.save(model, buffer)  # the whole module, as some users save it
    for other in (clone, restored):
        assert not other._forward_pre_hooks and not other.fc._forward_pre_hooks
        for k, v in model.state_dict().items():
            assert torch.equal(v, other.state_dict()[k]), k
    x = torch.randn(2, 3, 8, 8)
    model.eval(), clone.eval()
    assert torch.equal(model(x), clone(x))


def test_iterative_dsd_recomputes_the_mask_each_sparse_phase():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    engine = dsd.DSD(model, optimizer)
    train_steps(model, optimizer, 3)
    engine.prune(0.3)
    first = {k: v.clone() for k, v in engine.masks.items()}
    train_steps(model, optimizer, 5)
    assert_held(engine, optimizer)
    engine.redense()
    train_steps(model, optimizer, 5)
    weights_then = {n: param_of(model, n).detach().clone() for n in PRUNED}
    report = engine.prune(0.5, scope="layer")
    second = engine.masks
    for n in PRUNED:
        assert (~second[n]).sum().item() == round(second[n].numel() * 0.5)
        assert not torch.equal(second[n], first[n])
        assert torch.equal(second[n], dsd.magnitude_masks([weights_then[n]], 0.5)[0]), n
    assert report.mask_sparsity == pytest.approx(0.5, abs=1e-3)
    train_steps(model, optimizer, 5)
    assert_held(engine, optimizer)
    engine.redense()
    train_steps(model, optimizer, 2)
    assert [h["event"] for h in engine.history] == ["prune", "redense", "prune", "redense"]
    assert engine.history[2] == {"event": "prune", "sparsity": 0.5, "scope": "layer"}


def test_second_prune_ranks_the_current_weights():
    # After re-dense the mask is computed afresh from the weights then, not reused.
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = dsd.DSD(model, optimizer)
    engine.prune(0.3)
    engine.redense()
    with torch.no_grad():
        model.fc.weight.copy_(
            torch.arange(model.fc.weight.numel(), dtype=torch.float32).view_as(model.fc.weight)
        )
    engine.prune(0.5)
    flat = engine.masks["fc.weight"].reshape(-1)
    n = flat.numel()
    assert torch.equal(flat, torch.arange(n) >= round(n * 0.5))


def test_global_scope_through_the_engine():
    model = make_net()
    with torch.no_grad():
        model.fc.weight.mul_(0.01)  # smaller weights: the global threshold takes more of them
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = dsd.DSD(model, optimizer)
    report = engine.prune(0.5, scope="global")
    total = sum(t.numel for t in engine.tensors)
    assert sum((~m).sum().item() for m in engine.masks.values()) == round(total * 0.5)
    per_tensor = {t.name: t.mask_sparsity for t in report.tensors}
    # fc's weights are 100x smaller: nearly all 348 pruned weights come from its 480
    assert per_tensor["fc.weight"] > 0.7 and per_tensor["conv2.weight"] < 0.02
    assert engine.state_dict()["scope"] == "global"


# ----------------------------------------------------------------------------- sparsity report
def test_sparsity_report_masks_and_weights_agree_after_training():
    model = make_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = dsd.DSD(model, optimizer)
    dense = engine.sparsity_report()
    assert dense.phase == "dense" and dense.mask_sparsity is None and dense.weight_sparsity < 0.01
    engine.prune(0.7)
    train_steps(model, optimizer, 10)
    report = engine.sparsity_report()
    assert report.phase == "sparse"
    for t in report.tensors:
        mask = engine.masks[t.name]
        weights_zero = param_of(model, t.name).detach() == 0
        assert torch.equal(weights_zero, ~mask), f"{t.name}: zeros of the weights != pruned entries"
        assert t.mask_zeros == t.weight_zeros == round(t.numel * 0.7)
    assert report.mask_sparsity == report.weight_sparsity
    assert report.numel == sum(t.numel for t in engine.tensors)
    as_dict = report.as_dict()
    assert set(as_dict["tensors"]) == set(PRUNED) and as_dict["phase"] == "sparse"
    text = str(report)
    assert "conv2.weight" in text and "overall" in text and "70.00%" in text


# ----------------------------------------------------------------------------- resume mid-S-phase
def _run(steps_dense: int, steps_sparse: int, steps_after: int, checkpoint: io.BytesIO | None = None):
    torch.manual_seed(0)
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    engine = dsd.DSD(model, optimizer)
    train_steps(model, optimizer, steps_dense)
    engine.prune(0.5)
    train_steps(model, optimizer, steps_sparse)
    if checkpoint is not None:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "engine": engine.state_dict(),
                "rng": torch.get_rng_state(),
            },
            checkpoint,
        )
    train_steps(model, optimizer, steps_after)
    return model, optimizer, engine


def test_resume_mid_sparse_phase_is_bit_identical_to_an_uninterrupted_run():
    reference, ref_optimizer, _ = _run(4, 3, 6)
    checkpoint = io.BytesIO()
    _run(4, 3, 6, checkpoint)  # the interrupted run's checkpoint, taken 3 steps into S
    # A fresh process state: other seed, new objects, nothing shared with the runs above.
    torch.manual_seed(12345)
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    engine = dsd.DSD(model, optimizer)
    checkpoint.seek(0)
    state = torch.load(checkpoint, weights_only=True)
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    engine.load_state_dict(state["engine"])
    torch.set_rng_state(state["rng"])
    assert engine.phase == "sparse" and engine.sparsity == 0.5
    train_steps(model, optimizer, 6)
    for (name, a), b in zip(reference.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"
    for p_ref, p in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.equal(
            ref_optimizer.state[p_ref]["momentum_buffer"], optimizer.state[p]["momentum_buffer"]
        )
    assert_held(engine, optimizer)


def test_engine_state_dict_round_trips_through_weights_only_load():
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = dsd.DSD(model, optimizer)
    dense_state = engine.state_dict()
    assert dense_state["phase"] == "dense" and dense_state["masks"] == {}
    engine.prune(0.4, scope="global")
    buffer = io.BytesIO()
    torch.save(engine.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    model2 = make_net(seed=5)
    engine2 = dsd.DSD(model2, torch.optim.SGD(model2.parameters(), lr=0.1))
    engine2.load_state_dict(state)
    assert engine2.phase == "sparse" and engine2.scope == "global" and engine2.sparsity == 0.4
    for n, mask in engine.masks.items():
        assert torch.equal(engine2.masks[n], mask)
        assert (param_of(model2, n).detach()[~mask] == 0).all(), "loading re-masks the weights"
    engine2.load_state_dict(dense_state)
    assert engine2.phase == "dense" and engine2.masks == {}


# ----------------------------------------------------------------------------- bad input
def _engine(optimizer_factory=None):
    model = make_net()
    optimizer = (optimizer_factory or (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)))(
        model.parameters()
    )
    engine = dsd.DSD(model, optimizer)
    train_steps(model, optimizer, 2)
    return model, optimizer, engine


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.3", None])
def test_bad_sparsity_is_refused_and_changes_nothing(bad):
    model, optimizer, engine = _engine()
    before = snapshot(model, optimizer, engine)
    with pytest.raises(ValueError, match="sparsity") as err:
        engine.prune(bad)
    assert repr(bad) in str(err.value)
    assert_same(before, snapshot(model, optimizer, engine))
    assert engine.phase == "dense"


def test_bad_scope_is_refused_and_changes_nothing():
    model, optimizer, engine = _engine()
    before = snapshot(model, optimizer, engine)
    with pytest.raises(ValueError, match="'per-channel'"):
        engine.prune(0.3, scope="per-channel")
    assert_same(before, snapshot(model, optimizer, engine))


def test_model_with_nothing_prunable_says_what_was_considered():
    model = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4))
    with pytest.raises(
        ValueError, match=r"(?s)nothing to prune.*0\.weight \(Embedding\): embedding.*1\.bias"
    ):
        dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_pruned_tensor_missing_from_the_optimizer_is_named():
    model = make_net()
    optimizer = torch.optim.SGD([p for n, p in model.named_parameters() if n != "fc.weight"], lr=0.1)
    with pytest.raises(ValueError, match=r"'fc\.weight' is selected for pruning but is not in the optimizer"):
        dsd.DSD(model, optimizer)
    # ...and if it leaves the optimizer after the engine was made, prune() refuses it.
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    optimizer.param_groups[0]["params"] = [
        p for p in optimizer.param_groups[0]["params"] if p is not model.fc.weight
    ]
    before = snapshot(model, optimizer, engine)
    with pytest.raises(ValueError, match=r"'fc\.weight'"):
        engine.prune(0.5)
    assert_same(before, snapshot(model, optimizer, engine))
    assert engine.phase == "dense"


def test_prune_while_sparse_is_refused_and_changes_nothing():
    model, optimizer, engine = _engine()
    engine.prune(0.3)
    train_steps(model, optimizer, 1)
    before = snapshot(model, optimizer, engine)
    with pytest.raises(RuntimeError, match=r"already sparse \(pruned at 30%\).*redense"):
        engine.prune(0.5)
    assert_same(before, snapshot(model, optimizer, engine))


def test_redense_while_dense_is_refused_and_changes_nothing():
    model, optimizer, engine = _engine()
    before = snapshot(model, optimizer, engine)
    with pytest.raises(RuntimeError, match=r"redense\(\) while dense"):
        engine.redense()
    assert_same(before, snapshot(model, optimizer, engine))


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_weight_at_prune_time_is_named_and_changes_nothing(bad_value):
    model, optimizer, engine = _engine(lambda p: torch.optim.Adam(p, lr=1e-2))
    with torch.no_grad():
        model.fc.weight[2, 7] = bad_value
    before = snapshot(model, optimizer, engine)
    with pytest.raises(ValueError, match=r"cannot prune 'fc\.weight': it holds 1\+ NaN/inf"):
        engine.prune(0.5)
    assert_same(before, snapshot(model, optimizer, engine))
    assert engine.phase == "dense"


def test_engine_state_from_another_model_is_refused_and_changes_nothing():
    other_model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 6, 3), nn.Flatten(), nn.Linear(96, 7))
    other = dsd.DSD(other_model, torch.optim.SGD(other_model.parameters(), lr=0.1))
    other.prune(0.5)
    model, optimizer, engine = _engine()
    engine.prune(0.3)
    before = snapshot(model, optimizer, engine)
    with pytest.raises(
        ValueError, match=r"another model.*missing tensors: \['conv2\.weight', 'fc\.weight'\]"
    ):
        engine.load_state_dict(other.state_dict())
    assert_same(before, snapshot(model, optimizer, engine))
    # the same names with another shape
    wide = make_net()
    wide.fc = nn.Linear(96, 9)
    other = dsd.DSD(wide, torch.optim.SGD(wide.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"other shapes: \['fc\.weight'\]"):
        engine.load_state_dict(other.state_dict())
    assert_same(before, snapshot(model, optimizer, engine))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda s: s["masks"].__setitem__("fc.weight", s["masks"]["fc.weight"].float()),
            r"'fc\.weight'.*float32",
        ),
        (
            lambda s: s["masks"].__setitem__("fc.weight", s["masks"]["fc.weight"].to(torch.uint8)),
            r"'fc\.weight'.*uint8",
        ),
        (
            lambda s: s["masks"].__setitem__("fc.weight", s["masks"]["fc.weight"][:2]),
            r"'fc\.weight' has shape \[2, 96\]",
        ),
        (lambda s: s["masks"].pop("conv2.weight"), r"no mask for 'conv2\.weight'"),
        (lambda s: s.pop("version"), r"not a DSD engine state"),
    ],
    ids=["float-mask", "uint8-mask", "wrong-shape", "missing-mask", "not-engine-state"],
)
def test_corrupt_engine_state_is_refused_and_changes_nothing(corrupt, message):
    model, optimizer, engine = _engine()
    engine.prune(0.5)
    state = engine.state_dict()
    corrupt(state)
    engine.redense()
    train_steps(model, optimizer, 1)
    before = snapshot(model, optimizer, engine)
    with pytest.raises(ValueError, match=message):
        engine.load_state_dict(state)
    assert_same(before, snapshot(model, optimizer, engine))
    assert engine.phase == "dense"
