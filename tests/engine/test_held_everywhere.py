"""The engine's contract where users take it: compiled optimizer steps, non-finite gradients, tied
weights, optimizers whose state does not start at zero, closures, replaced or wrapped optimizers,
loaded state, sharded parameters, heavy ties; then every ``torch.optim`` optimizer through a whole
dense-sparse-dense cycle, and the two ablations (``criterion="random"``, ``restart="reinit"``).

Each test of the first group failed on the engine before this contract was written (commit
485749c): the failure is named in its docstring.
"""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn

import dsd
import dsd.masks as masklib
from dsd.engine import MaskLapsedError
from dsd.errors import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread")


class SmallNet(nn.Module):
    """A first conv (kept dense by the paper's rule), a second conv and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv2(torch.tanh(self.conv1(x))))
        return self.fc(x.flatten(1))


def make_net(seed: int = 0) -> SmallNet:
    torch.manual_seed(seed)
    return SmallNet()


def loss_of(model: nn.Module, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 8, 8, generator=gen)
    y = torch.randint(0, 5, (8,), generator=gen)
    return nn.functional.cross_entropy(model(x), y)


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, start: int = 0) -> None:
    for step in range(start, start + steps):
        optimizer.zero_grad(set_to_none=True)
        loss_of(model, step).backward()
        optimizer.step()


def pruned_values(engine: dsd.DSD, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([engine.model.get_parameter(n).detach()[~m] for n, m in masks.items()])


def assert_pruned_zero(engine: dsd.DSD, masks: dict[str, torch.Tensor] | None = None) -> None:
    masks = masks or engine.masks
    values = pruned_values(engine, masks)
    assert values.numel() > 0
    assert torch.equal(values, torch.zeros_like(values)), "a pruned weight is not exactly 0"


def frozen(masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: mask.clone() for name, mask in masks.items()}


# ----------------------------------------------------------------------------- 1. compiled step
def test_a_compiled_optimizer_step_keeps_pruned_weights_at_zero() -> None:
    """Before: the first sparse step failed inside Inductor (``torch.bool is not supported by
    torch.iinfo``), Dynamo having traced the hook's CPU masking path into the compiled step."""
    torch._dynamo.reset()
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    engine = dsd.DSD(model, optimizer)
    step = torch.compile(optimizer.step)
    for i in range(2):
        optimizer.zero_grad(set_to_none=True)
        loss_of(model, i).backward()
        step()
    engine.prune(0.5)
    masks = frozen(engine.masks)
    for i in range(2, 5):
        optimizer.zero_grad(set_to_none=True)
        loss_of(model, i).backward()
        step()
    assert_pruned_zero(engine, masks)
    torch._dynamo.reset()


# ----------------------------------------------------------------------------- 2. inf and NaN
@pytest.mark.parametrize("make", [lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), torch.optim.Adam])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_non_finite_gradient_of_a_pruned_entry_leaves_it_at_zero(make, bad: float) -> None:
    """Before: masking multiplied the gradient by the mask, and 0 x inf is NaN: the pruned
    weight became NaN at the next step."""
    model = make_net()
    optimizer = make(model.parameters())
    engine = dsd.DSD(model, optimizer)
    train(model, optimizer, 2)
    engine.prune(0.5)
    masks = frozen(engine.masks)
    weight = model.fc.weight
    first_pruned = (~masks["fc.weight"]).nonzero()[0].tolist()
    optimizer.zero_grad(set_to_none=True)
    loss_of(model, 7).backward()
    weight.grad[tuple(first_pruned)] = bad
    optimizer.step()
    assert weight.detach()[tuple(first_pruned)].item() == 0.0
    assert_pruned_zero(engine, masks)
    assert torch.isfinite(weight.detach()).all()


# ----------------------------------------------------------------------------- 3. tied weights
class TiedLM(nn.Module):
    """A language model whose output layer is registered before the embedding it shares its
    weight with: the tied tensor's first name is the output layer's."""

    def __init__(self, vocab: int = 40, width: int = 20) -> None:
        super().__init__()
        self.output = nn.Linear(width, vocab, bias=False)
        self.embedding = nn.Embedding(vocab, width)
        self.output.weight = self.embedding.weight
        self.hidden = nn.Linear(width, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.output(torch.tanh(self.hidden(self.embedding(tokens))))


def test_a_tied_embedding_is_never_pruned_by_default_and_either_alias_can_be_included() -> None:
    """Before: the default selection pruned the embedding table through its output-layer alias
    (400 of 800 entries), and ``include=`` naming the embedding's key was refused as a typo."""
    torch.manual_seed(0)
    model = TiedLM()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = dsd.DSD(model, optimizer)
    assert [t.name for t in engine.tensors] == ["hidden.weight"]
    engine.prune(0.5)
    assert int((model.embedding.weight == 0).sum()) == 0
    for alias in ("embedding.weight", "output.weight"):
        torch.manual_seed(0)
        model = TiedLM()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        engine = dsd.DSD(model, optimizer, include=[alias])
        assert len(engine.tensors) == 1 and engine.tensors[0].param is model.embedding.weight
        engine.prune(0.5)
        assert int((model.embedding.weight == 0).sum()) == model.embedding.weight.numel() // 2


# ----------------------------------------------------------------------------- 4. fresh state
def _through_redense(make) -> tuple[SmallNet, torch.optim.Optimizer, dsd.DSD, dict[str, torch.Tensor]]:
    """Dense steps, prune at 50 %, sparse steps, re-dense: what the optimizer holds after."""
    model = make_net()
    optimizer = make(model.parameters())
    engine = dsd.DSD(model, optimizer)
    train(model, optimizer, 3)
    engine.prune(0.5)
    masks = frozen(engine.masks)
    train(model, optimizer, 3, start=3)
    engine.redense()
    return model, optimizer, engine, masks


def test_rprop_restored_entries_restart_from_its_initial_step_size() -> None:
    """Before: re-dense left Rprop's ``step_size`` of restored entries at 0, which Rprop clamps to
    ``step_size_min``: they moved 10^4 times less than a fresh parameter would."""
    model, optimizer, engine, masks = _through_redense(lambda p: torch.optim.Rprop(p, lr=0.01))
    for name, mask in masks.items():
        step_size = optimizer.state[model.get_parameter(name)]["step_size"]
        assert torch.equal(step_size[~mask], torch.full_like(step_size[~mask], 0.01)), name
    train(model, optimizer, 1, start=6)
    moved = pruned_values(engine, masks).abs()
    assert moved.median().item() > 1e-3, "restored entries barely moved: their step size is not fresh"


def test_adagrad_restored_entries_restart_from_its_initial_accumulator() -> None:
    """Before: Adagrad's ``sum`` of restored entries restarted from 0, not from the optimizer's
    ``initial_accumulator_value``."""
    model, optimizer, _, masks = _through_redense(
        lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.5)
    )
    for name, mask in masks.items():
        total = optimizer.state[model.get_parameter(name)]["sum"]
        assert torch.equal(total[~mask], torch.full_like(total[~mask], 0.5)), name


# ----------------------------------------------------------------------------- 6. closures
#: LBFGS as users run it: plain, and with a dense history from the dense phase and the strong-Wolfe
#: line search (its curvature pairs give the first sparse directions entries at pruned positions,
#: and the line search evaluates the closure at trial points along them).
LBFGS_SETTINGS = {
    "plain": ({"lr": 0.5, "max_iter": 6, "history_size": 4}, 0),
    "dense-history-line-search": (
        {"lr": 1.0, "max_iter": 4, "history_size": 6, "line_search_fn": "strong_wolfe"},
        2,
    ),
}


@pytest.mark.parametrize("setting", list(LBFGS_SETTINGS))
def test_lbfgs_inner_iterations_keep_pruned_weights_at_zero(setting: str) -> None:
    """Before: only the first closure evaluation saw masked gradients; LBFGS's inner iterations
    moved the pruned weights, and the closure evaluated the loss at a dense point (the weights
    were masked again only after the step)."""
    kwargs, dense_steps = LBFGS_SETTINGS[setting]
    model = make_net()
    optimizer = torch.optim.LBFGS(model.parameters(), **kwargs)
    engine = dsd.DSD(model, optimizer)
    for i in range(dense_steps):
        _step(model, optimizer, i)
    engine.prune(0.5)
    masks = frozen(engine.masks)
    kept_before = torch.cat([model.get_parameter(n).detach()[m] for n, m in masks.items()])
    seen: list[float] = []  # the largest pruned |w| at each evaluation of the closure
    for i in range(dense_steps, dense_steps + 3):

        def closure(i: int = i) -> torch.Tensor:
            seen.append(pruned_values(engine, masks).abs().max().item())
            optimizer.zero_grad()
            loss = loss_of(model, i)
            loss.backward()
            return loss

        optimizer.step(closure)
    assert len(seen) > 3, "LBFGS evaluated the closure once per step: no inner iterations to test"
    assert seen == [0.0] * len(seen), f"the closure saw pruned weights up to {max(seen):.3g}"
    assert_pruned_zero(engine, masks)
    kept = torch.cat([model.get_parameter(n).detach()[m] for n, m in masks.items()])
    assert (kept != 0).all()
    assert not torch.equal(kept, kept_before), "the sparse steps did not train"


# ----------------------------------------------------------------------------- 7. replaced optimizer
def test_an_optimizer_built_after_the_engine_is_caught_at_redense() -> None:
    """Before: a sparse phase trained by a new optimizer lost the mask silently (weights 10 %
    sparse against a 50 % mask) and ``redense()`` said nothing."""
    model = make_net()
    engine = dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
    engine.prune(0.5)
    replacement = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, replacement, 3)
    with pytest.raises(MaskLapsedError, match=r"no longer 0.*optimizer built after DSD"):
        engine.redense()


# ----------------------------------------------------------------------------- 8. loaded state
def test_loading_a_sparse_state_zeroes_the_adam_moments_of_pruned_entries() -> None:
    """Before: ``load_state_dict`` zeroed the pruned weights but left the Adam moments they had
    built up, so they moved again at the first step."""
    donor_model = make_net()
    donor_opt = torch.optim.Adam(donor_model.parameters(), lr=1e-2)
    donor = dsd.DSD(donor_model, donor_opt)
    donor.prune(0.5)
    state = donor.state_dict()

    model = make_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    engine = dsd.DSD(model, optimizer)
    train(model, optimizer, 3)  # dense Adam state everywhere
    engine.load_state_dict(state)
    for name, mask in engine.masks.items():
        for key in ("exp_avg", "exp_avg_sq"):
            moment = optimizer.state[model.get_parameter(name)][key]
            assert torch.equal(moment[~mask], torch.zeros_like(moment[~mask])), f"{name}.{key}"
    masks = frozen(engine.masks)
    train(model, optimizer, 2, start=3)
    assert_pruned_zero(engine, masks)


# ----------------------------------------------------------------------------- 9. FSDP2 / DTensor
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fully_shard_on_one_rank_prunes_and_holds_the_masks_of_the_plain_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FSDP2 on a one-rank mesh: the same masks as the plain model's, held through the steps.
    Before: refused at construction (``ConfigError: DSD does not support FSDP2``); before that,
    ``prune`` failed inside DTensor dispatch (``aten.kthvalue.default`` has no sharding strategy).
    Two ranks: ``tests/engine/test_fsdp2.py``."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        plain = make_net()
        plain_engine = dsd.DSD(plain, torch.optim.SGD(plain.parameters(), lr=0.1))
        model = make_net()
        fully_shard(model, mesh=init_device_mesh("cpu", (1,)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        engine = dsd.DSD(model, optimizer)
        engine.prune(0.5)
        plain_engine.prune(0.5)
        assert engine.masks.keys() == plain_engine.masks.keys() == {"conv2.weight", "fc.weight"}
        for name, mask in plain_engine.masks.items():
            assert torch.equal(engine.masks[name], mask), name
        train(model, optimizer, 2)
        for name, mask in engine.masks.items():
            pruned = model.get_parameter(name).to_local().detach()[~mask]
            assert torch.equal(pruned, torch.zeros_like(pruned)), name
    finally:
        dist.destroy_process_group()
        os.environ.pop("MASTER_PORT", None)


# ----------------------------------------------------------------------------- 11. wrapped optimizer
def test_accelerate_wrapped_optimizer_is_seen_through() -> None:
    """Before: ``AttributeError: ... no attribute '_optimizer_step_pre_hooks'``."""
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer
    from accelerate.state import AcceleratorState

    try:
        accelerator = Accelerator(cpu=True)
        model = make_net()
        wrapped = accelerator.prepare_optimizer(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        assert isinstance(wrapped, AcceleratedOptimizer)
        engine = dsd.DSD(model, wrapped)
        assert engine.optimizer is wrapped.optimizer
        engine.prune(0.5)
        masks = frozen(engine.masks)
        train(model, wrapped, 3)
        assert_pruned_zero(engine, masks)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def test_an_object_without_an_optimizer_inside_is_refused_naming_what_to_pass() -> None:
    class NotAnOptimizer:
        pass

    with pytest.raises(ConfigError, match=r"NotAnOptimizer.*\.optimizer"):
        dsd.DSD(make_net(), NotAnOptimizer())


# ----------------------------------------------------------------------------- 12. heavy ties
def _passes_over(monkeypatch: pytest.MonkeyPatch, tensors: list[torch.Tensor]) -> list[int]:
    """Count the chunks ``dsd.masks`` reads while ranking (``_abs_float`` is its one reader)."""
    calls = [0]
    real = masklib._abs_float

    def counting(chunk: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        calls[0] += 1
        return real(chunk, dtype)

    monkeypatch.setattr(masklib, "_abs_float", counting)
    return calls


@pytest.mark.parametrize("values", [(0.5,), (0.25, 0.5, 1.0)], ids=["all-equal", "three-values"])
def test_heavy_ties_are_pruned_exactly_in_a_few_passes(monkeypatch: pytest.MonkeyPatch, values) -> None:
    """Before: some thirty rounds of bisection over the whole tensor (6-7 s on 20 M weights
    against 0.3 s for random ones). Counted in passes over the data, not timed."""
    gen = torch.Generator().manual_seed(0)
    choice = torch.randint(len(values), (1 << 21,), generator=gen)
    weight = torch.tensor(values)[choice].reshape(1 << 11, 1 << 10)
    chunks = sum(1 for _ in masklib._slices(weight))
    calls = _passes_over(monkeypatch, [weight])
    for sparsity in (0.3, 0.5):
        calls[0] = 0
        (mask,) = masklib.magnitude_masks([weight], sparsity)
        assert int((~mask).sum()) == masklib.pruned_count(weight.numel(), sparsity)
        kept_min = weight[mask].abs().min()
        assert weight[~mask].abs().max() <= kept_min  # magnitude order holds through the ties
        assert calls[0] <= 5 * chunks, f"{calls[0] / chunks:.0f} passes over the tensor"


# ----------------------------------------------------------------------------- every torch.optim class
def _every_optimizer() -> dict[str, type[torch.optim.Optimizer]]:
    found = {
        name: cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type)
        and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
    }
    return dict(sorted(found.items()))


EVERY_OPTIMIZER = _every_optimizer()
#: Learning rates at which each class moves a small net visibly in a few steps.
LEARNING_RATES = {"Adadelta": 1.0, "LBFGS": 0.5, "SGD": 0.1, "ASGD": 0.1, "Rprop": 0.01, "Adagrad": 0.1}
#: Optimizers of 2-D weights only (Muon orthogonalises each update matrix: a pruned entry's update
#: is not 0 even with a zero gradient, so the engine's post-step guard is what holds the mask).
MATRICES_ONLY = {"Muon"}
FRESH = {("Rprop", "step_size"): lambda lr: lr, ("Adagrad", "sum"): lambda lr: 0.0}


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, i: int) -> None:
    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_of(model, i)
        loss.backward()
        return loss

    if isinstance(optimizer, torch.optim.LBFGS):
        optimizer.step(closure)
    else:
        closure()
        optimizer.step()


@pytest.mark.parametrize("name", list(EVERY_OPTIMIZER))
def test_every_torch_optimizer_holds_the_mask_and_restarts_fresh_at_redense(name: str) -> None:
    if name == "SparseAdam":
        pytest.skip("SparseAdam takes sparse gradients only (nn.Embedding(sparse=True)), never pruned")
    assert "SGD" in EVERY_OPTIMIZER and "Adam" in EVERY_OPTIMIZER and len(EVERY_OPTIMIZER) >= 13
    lr = LEARNING_RATES.get(name, 1e-2)
    if name in MATRICES_ONLY:  # an MLP, its weight matrices in the optimizer (biases stay put)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.Tanh(), nn.Linear(32, 5))
        optimizer = EVERY_OPTIMIZER[name]([p for p in model.parameters() if p.dim() == 2], lr=lr)
    else:
        model = make_net()
        optimizer = EVERY_OPTIMIZER[name](model.parameters(), lr=lr)
    engine = dsd.DSD(model, optimizer)
    for i in range(3):
        _step(model, optimizer, i)
    engine.prune(0.5)
    masks = frozen(engine.masks)
    for i in range(3, 7):
        _step(model, optimizer, i)
    assert_pruned_zero(engine, masks)
    engine.redense()
    assert_pruned_zero(engine, masks)  # restart from exactly 0
    for mask_name, mask in masks.items():
        for key, value in optimizer.state.get(model.get_parameter(mask_name), {}).items():
            if torch.is_tensor(value) and value.shape == mask.shape:
                fresh = FRESH.get((name, key), lambda _: 0.0)(lr)
                if name == "Adagrad" and key == "sum":
                    fresh = optimizer.param_groups[0]["initial_accumulator_value"]
                restored = value[~mask]
                assert torch.equal(restored, torch.full_like(restored, fresh)), f"{name} {key}"
    for i in range(7, 10):
        _step(model, optimizer, i)
    moved = (pruned_values(engine, masks) != 0).float().mean().item()
    assert moved > 0.9, f"{name}: only {moved:.0%} of the re-densed weights moved"


# ----------------------------------------------------------------------------- ablations
def test_random_masks_prune_the_exact_count_per_tensor_deterministically_and_not_by_magnitude() -> None:
    def pruned(seed: int) -> dict[str, torch.Tensor]:
        model = make_net()
        engine = dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
        engine.prune(0.5, criterion="random", generator=torch.Generator().manual_seed(seed))
        for name, mask in engine.masks.items():
            assert int((~mask).sum()) == masklib.pruned_count(mask.numel(), 0.5), name
        assert_pruned_zero(engine)
        assert engine.history[-1]["criterion"] == "random"
        return frozen(engine.masks)

    first, again, other = pruned(1), pruned(1), pruned(2)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert any(not torch.equal(first[n], other[n]) for n in first)
    model = make_net()
    by_magnitude = dsd.magnitude_masks([model.fc.weight], 0.5)[0]
    overlap = (first["fc.weight"] == by_magnitude).float().mean().item()
    assert 0.3 < overlap < 0.7, f"a random mask agrees with the magnitude mask on {overlap:.0%}"


@pytest.mark.parametrize("bad", [{}, {"scope": "global"}])
def test_random_masks_need_a_generator_and_layer_scope(bad: dict) -> None:
    model = make_net()
    engine = dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
    generator = None if not bad else torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="generator= and scope='layer'"):
        engine.prune(0.5, criterion="random", generator=generator, **bad)
    assert engine.phase == "dense"


def test_reinit_draws_pruned_weights_from_the_layers_init_and_restarts_their_state() -> None:
    def redensed(seed: int) -> tuple[SmallNet, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        model = make_net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        engine = dsd.DSD(model, optimizer)
        train(model, optimizer, 3)
        engine.prune(0.5)
        masks = frozen(engine.masks)
        train(model, optimizer, 3, start=3)
        before = {n: model.get_parameter(n).detach().clone() for n in masks}
        engine.redense(restart="reinit", generator=torch.Generator().manual_seed(seed))
        assert engine.history[-1] == {"event": "redense", "restart": "reinit"}
        for name, mask in masks.items():
            now = model.get_parameter(name).detach()
            assert torch.equal(now[mask], before[name][mask]), f"{name}: kept weights changed"
            momentum = optimizer.state[model.get_parameter(name)]["momentum_buffer"]
            assert torch.equal(momentum[~mask], torch.zeros_like(momentum[~mask])), name
        return model, masks, {n: model.get_parameter(n).detach()[~m].clone() for n, m in masks.items()}

    model, masks, first = redensed(5)
    _, _, again = redensed(5)
    _, _, other = redensed(6)
    for name in masks:
        assert torch.equal(first[name], again[name]), f"{name}: not deterministic under a seed"
        assert not torch.equal(first[name], other[name]), f"{name}: the seed is ignored"
        # nn.Conv2d and nn.Linear draw Kaiming-uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        weight = model.get_parameter(name)
        bound = 1 / math.sqrt(weight[0].numel())
        values = first[name]
        assert (values != 0).all() and values.abs().max() <= bound, name
        spread = values.std().item()
        assert abs(spread - bound / math.sqrt(3)) < 0.2 * bound, f"{name}: not the layer's uniform draw"


def test_reinit_needs_a_generator_and_a_known_restart() -> None:
    model = make_net()
    engine = dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
    engine.prune(0.5)
    with pytest.raises(ValueError, match="needs a generator"):
        engine.redense(restart="reinit")
    with pytest.raises(ValueError, match="restart must be one of"):
        engine.redense(restart="random")
    assert engine.phase == "sparse"
