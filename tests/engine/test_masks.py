"""dsd.masks: which tensors are prunable, and exact-k magnitude masks.

Every mask is checked against a brute-force reference (stable sort of all magnitudes, row-major,
tensor after tensor), which is the specification itself: the ``round(n * s)`` smallest
magnitudes are pruned, ties broken by position, earliest pruned first.
"""

from __future__ import annotations

from unittest import mock

import hypothesis.strategies as st
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from torch import nn

import dsd
from dsd import masks as masklib
from dsd.masks import magnitude_masks
from dsd.selection import select_prunable

pytestmark = pytest.mark.usefixtures("single_thread")


def reference_masks(tensors: list[torch.Tensor], sparsity: float, scope: str) -> list[torch.Tensor]:
    """The specification, brute force: concatenate, stable-sort, prune the first round(N*s)."""
    groups = [tensors] if scope == "global" else [[t] for t in tensors]
    out = []
    for group in groups:
        flat = torch.cat([t.detach().abs().double().reshape(-1) for t in group])
        k = round(flat.numel() * sparsity)
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        keep[torch.sort(flat, stable=True).indices[:k]] = False
        offset = 0
        for t in group:
            out.append(keep[offset : offset + t.numel()].reshape(t.shape))
            offset += t.numel()
    return out


def assert_masks_equal(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == torch.bool, f"mask {i} has dtype {g.dtype}"
        assert g.shape == w.shape, f"mask {i}: shape {g.shape} != {w.shape}"
        diff = (g != w).sum().item()
        assert diff == 0, f"mask {i} differs from the reference at {diff} positions"


@pytest.fixture
def small_limits():
    """Force the sampled, chunked paths on tensors of a few thousand values."""
    with (
        mock.patch.object(masklib, "DIRECT_LIMIT", 16),
        mock.patch.object(masklib, "SAMPLE_SIZE", 64),
        mock.patch.object(masklib, "CHUNK_ELEMENTS", 50),
    ):
        yield


# ----------------------------------------------------------------------------- exact k, layer scope
@pytest.mark.parametrize("shape", [(7,), (10, 13), (4, 3, 3, 3), (33, 1), (1, 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.3, 0.5, 0.25, 0.999])
def test_layer_scope_prunes_exactly_round_n_s(shape, sparsity):
    torch.manual_seed(0)
    w = torch.randn(shape)
    (mask,) = magnitude_masks([w], sparsity)
    assert mask.dtype == torch.bool and mask.shape == w.shape
    assert (~mask).sum().item() == round(w.numel() * sparsity)
    assert_masks_equal([mask], reference_masks([w], sparsity, "layer"))


def test_layer_scope_uses_pythons_round_half_to_even():
    w = torch.arange(1.0, 11.0)  # 10 weights: 10 * 0.25 = 2.5 -> round() gives 2
    (mask,) = magnitude_masks([w], 0.25)
    assert (~mask).sum().item() == 2
    w = torch.arange(1.0, 15.0)  # 14 * 0.25 = 3.5 -> 4
    (mask,) = magnitude_masks([w], 0.25)
    assert (~mask).sum().item() == 4


def test_each_tensor_gets_its_own_count_in_layer_scope():
    torch.manual_seed(1)
    tensors = [torch.randn(10, 10) * 100, torch.randn(3, 7) * 1e-3, torch.randn(5)]
    got = magnitude_masks(tensors, 0.3, scope="layer")
    assert [(~m).sum().item() for m in got] == [30, round(21 * 0.3), round(5 * 0.3)]
    assert_masks_equal(got, reference_masks(tensors, 0.3, "layer"))


def test_ties_break_row_major_earliest_pruned_first():
    w = torch.ones(4, 5)
    (mask,) = magnitude_masks([w], 0.5)
    expected = torch.ones(20, dtype=torch.bool)
    expected[:10] = False
    assert torch.equal(mask, expected.reshape(4, 5))


def test_ties_with_signs_count_as_equal_magnitudes():
    w = torch.tensor([[0.5, -0.5, 2.0], [0.5, -1.0, -0.5]])
    (mask,) = magnitude_masks([w], 0.5)  # 3 pruned: the first three of the four |0.5|
    expected = torch.tensor([[False, False, True], [False, True, True]])
    assert torch.equal(mask, expected)


def test_ties_straddling_the_threshold_on_a_realistic_tensor():
    torch.manual_seed(2)
    w = torch.randint(-3, 4, (64, 32)).float() / 4  # seven values, many ties
    for s in (0.1, 0.33, 0.5, 0.77):
        assert_masks_equal(magnitude_masks([w], s), reference_masks([w], s, "layer"))


def test_all_zero_tensor_prunes_the_first_k():
    w = torch.zeros(6, 6)
    (mask,) = magnitude_masks([w], 0.5)
    assert torch.equal(mask.reshape(-1), torch.arange(36) >= 18)


# ----------------------------------------------------------------------------- layouts and dtypes
def test_channels_last_weight_gets_a_mask_in_its_own_layout():
    torch.manual_seed(3)
    w = torch.randn(8, 4, 3, 3).to(memory_format=torch.channels_last)
    assert not w.is_contiguous()
    (mask,) = magnitude_masks([w], 0.4)
    assert mask.shape == w.shape
    assert mask.is_contiguous(memory_format=torch.channels_last)
    assert_masks_equal([mask], reference_masks([w], 0.4, "layer"))


@pytest.mark.parametrize(
    "make",
    [
        lambda w: w.t(),  # transposed view
        lambda w: w[:, ::2],  # strided slice
        lambda w: w.reshape(6, 5, 4).permute(2, 0, 1),  # permuted
    ],
    ids=["transposed", "strided", "permuted"],
)
def test_non_contiguous_views_rank_in_logical_row_major_order(make):
    torch.manual_seed(4)
    base = torch.randint(0, 5, (30, 4)).float()  # ties, so the order is visible
    w = make(base)
    assert not w.is_contiguous()
    for s in (0.3, 0.6):
        assert_masks_equal(magnitude_masks([w], s), reference_masks([w], s, "layer"))


def test_non_contiguous_and_channels_last_on_the_chunked_sampled_path(small_limits):
    torch.manual_seed(5)
    tensors = [
        torch.randn(16, 8, 3, 3).to(memory_format=torch.channels_last),
        torch.randint(0, 9, (40, 70)).float().t(),
        torch.randn(90, 40)[:, ::3],
    ]
    for scope in ("layer", "global"):
        assert_masks_equal(magnitude_masks(tensors, 0.35, scope), reference_masks(tensors, 0.35, scope))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_low_and_high_precision_weights(dtype, scope):
    torch.manual_seed(6)
    tensors = [torch.randn(20, 30).to(dtype), (torch.randn(7, 11) * 0.1).to(dtype)]
    got = magnitude_masks(tensors, 0.45, scope)
    assert all(m.dtype == torch.bool for m in got)
    assert_masks_equal(got, reference_masks(tensors, 0.45, scope))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_weights_on_the_sampled_path(dtype, small_limits):
    torch.manual_seed(7)
    tensors = [torch.randn(50, 60).to(dtype), torch.randn(300).to(dtype)]
    for scope in ("layer", "global"):
        assert_masks_equal(magnitude_masks(tensors, 0.3, scope), reference_masks(tensors, 0.3, scope))


def test_float64_magnitudes_that_round_to_one_float32_keep_their_order():
    # Distinct in float64, identical in float32: ranking in float32 would prune 1+1e-12 and
    # keep 1.0 (a larger magnitude pruned, a smaller one kept).
    w = torch.tensor([1.0 + 1e-12, 1.0, 1.0 + 2e-12, 0.5], dtype=torch.float64)
    (mask,) = magnitude_masks([w], 0.5)
    assert torch.equal(mask, torch.tensor([True, False, True, False]))


def test_float64_close_magnitudes_on_the_bisection_path(small_limits):
    # Many values within one float32 step of each other: the bisection must run in float64.
    torch.manual_seed(8)
    w = 1.0 + torch.rand(3000, dtype=torch.float64) * 1e-9
    with mock.patch.object(masklib, "_sample", lambda tensors, size, dtype: torch.zeros(8, dtype=dtype)):
        assert_masks_equal(
            magnitude_masks([w, w[:500] * 2], 0.4, "global"), reference_masks([w, w[:500] * 2], 0.4, "global")
        )


# ----------------------------------------------------------------------------- sampled and fallback paths
class _CallCounter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def test_sampled_path_is_exact():
    # Limits scaled down in proportion to the defaults: the sample's bracket holds ~12% of the
    # tensor, under the collection budget, so no fallback is needed.
    torch.manual_seed(9)
    w = torch.randn(60, 70)
    collect = _CallCounter(masklib._count_and_collect)
    bisect = _CallCounter(masklib._count_le)
    with (
        mock.patch.object(masklib, "DIRECT_LIMIT", 1000),
        mock.patch.object(masklib, "SAMPLE_SIZE", 2048),
        mock.patch.object(masklib, "CHUNK_ELEMENTS", 300),
        mock.patch.object(masklib, "_count_and_collect", collect),
        mock.patch.object(masklib, "_count_le", bisect),
    ):
        for s in (0.05, 0.3, 0.5, 0.9):
            assert_masks_equal(magnitude_masks([w], s), reference_masks([w], s, "layer"))
    assert collect.calls >= 4, "the sampled path was not taken"
    assert bisect.calls == 0, "a good sample should not need the bisection fallback"


def test_bisection_fallback_when_the_sample_misses(small_limits):
    torch.manual_seed(10)
    tensors = [torch.randn(40, 50), torch.randn(700)]
    bisect = _CallCounter(masklib._count_le)
    misleading = lambda tensors, size, dtype: torch.full((64,), 1e-6, dtype=dtype)  # noqa: E731
    with mock.patch.object(masklib, "_sample", misleading), mock.patch.object(masklib, "_count_le", bisect):
        for scope in ("layer", "global"):
            got = magnitude_masks(tensors, 0.6, scope)
            assert_masks_equal(got, reference_masks(tensors, 0.6, scope))
    assert bisect.calls > 0, "the bisection fallback was not taken"


def test_bisection_fallback_with_most_weights_equal(small_limits):
    # 90% of the weights share one magnitude: no bracket around the threshold can be collected
    # under the budget, so the bisection narrows to that single value and breaks ties by position.
    torch.manual_seed(11)
    w = torch.full((60, 50), 0.25)
    w.view(-1)[torch.randperm(3000)[:300]] = torch.rand(300)
    w = w * torch.where(torch.rand_like(w) < 0.5, -1.0, 1.0)
    bisect = _CallCounter(masklib._count_le)
    with mock.patch.object(masklib, "_count_le", bisect):
        for s in (0.2, 0.5, 0.95):
            assert_masks_equal(magnitude_masks([w], s), reference_masks([w], s, "layer"))
        tensors = [w, w[:10].clone(), torch.full((400,), 0.25)]
        assert_masks_equal(magnitude_masks(tensors, 0.5, "global"), reference_masks(tensors, 0.5, "global"))
    assert bisect.calls > 0, "the many-ties case should go through the bisection"


# ----------------------------------------------------------------------------- global scope
def _small_cnn_lstm() -> nn.Module:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3)
            self.conv2 = nn.Conv2d(8, 16, 3)
            self.lstm = nn.LSTM(16, 12, num_layers=2)
            self.fc = nn.Linear(12, 5)

    torch.manual_seed(12)
    model = Model()
    with torch.no_grad():  # different scales per tensor, so global differs from layer
        model.fc.weight.mul_(10)
        model.lstm.weight_hh_l1.mul_(0.01)
    return model


@pytest.mark.parametrize("forced_sampling", [False, True])
def test_global_scope_matches_a_brute_force_concat_and_sort(forced_sampling):
    params = [t.param for t in select_prunable(_small_cnn_lstm())]
    limits = (16, 64, 50) if forced_sampling else (masklib.DIRECT_LIMIT, masklib.SAMPLE_SIZE, 1 << 22)
    with (
        mock.patch.object(masklib, "DIRECT_LIMIT", limits[0]),
        mock.patch.object(masklib, "SAMPLE_SIZE", limits[1]),
        mock.patch.object(masklib, "CHUNK_ELEMENTS", limits[2]),
    ):
        for s in (0.3, 0.5, 0.8):
            got = magnitude_masks(params, s, scope="global")
            assert_masks_equal(got, reference_masks(params, s, "global"))
            total = sum(p.numel() for p in params)
            assert sum((~m).sum().item() for m in got) == round(total * s)
            kept = torch.cat([p.detach().abs()[m] for p, m in zip(params, got, strict=True)])
            pruned = torch.cat([p.detach().abs()[~m] for p, m in zip(params, got, strict=True)])
            assert kept.min() >= pruned.max(), "one threshold: no kept magnitude below a pruned one"
            per_tensor = [(~m).float().mean().item() for m in got]
            assert max(per_tensor) - min(per_tensor) > 0.2, "global scope should prune unevenly"


def test_global_scope_on_a_torchvision_model_matches_the_reference():
    torch.manual_seed(13)
    model = torchvision.models.mobilenet_v3_small(weights=None)  # 2.5 M weights, 52 tensors
    params = [t.param for t in select_prunable(model)]
    got = magnitude_masks(params, 0.3, scope="global")
    assert_masks_equal(got, reference_masks(params, 0.3, "global"))


def test_single_tensor_global_equals_layer():
    torch.manual_seed(14)
    w = torch.randint(0, 6, (40, 40)).float()
    assert_masks_equal(magnitude_masks([w], 0.42, "global"), magnitude_masks([w], 0.42, "layer"))


def test_masks_do_not_modify_the_weights():
    torch.manual_seed(15)
    tensors = [torch.randn(30, 30), torch.randn(50)]
    before = [t.clone() for t in tensors]
    magnitude_masks(tensors, 0.5, "global")
    magnitude_masks(tensors, 0.5, "layer")
    assert all(torch.equal(a, b) for a, b in zip(tensors, before, strict=True))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.3", None])
def test_bad_sparsity_is_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match=r"sparsity must be") as err:
        magnitude_masks([torch.randn(4)], bad)
    assert repr(bad) in str(err.value)


def test_bad_scope_is_refused_naming_the_value():
    with pytest.raises(ValueError, match=r"'local'"):
        magnitude_masks([torch.randn(4)], 0.3, scope="local")


# ----------------------------------------------------------------------------- default selection
def _names(model: nn.Module, **kwargs) -> list[str]:
    return [t.name for t in select_prunable(model, **kwargs)]


def test_default_selection_on_torchvision_resnet18():
    model = torchvision.models.resnet18(weights=None)
    chosen = _names(model)
    convs = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs[0] == "conv1.weight"
    assert chosen == [*convs[1:], "fc.weight"], "every conv but the first, then fc"
    assert "layer2.0.downsample.0.weight" in chosen
    assert not any(n.startswith("bn") or ".bn" in n or n.endswith(".bias") for n in chosen)
    assert "fc.bias" not in chosen and "conv1.weight" not in chosen
    assert _names(model, skip_first_conv=False)[0] == "conv1.weight"


def test_default_selection_on_torchvision_squeezenet_and_mobilenet():
    squeezenet = torchvision.models.squeezenet1_1(weights=None)
    chosen = _names(squeezenet)
    assert "features.0.weight" not in chosen and "features.3.squeeze.weight" in chosen
    assert chosen[-1] == "classifier.1.weight"  # its classifier is a conv
    assert not any(n.endswith(".bias") for n in chosen)
    mobilenet = torchvision.models.mobilenet_v3_small(weights=None)
    chosen = _names(mobilenet)
    assert "features.0.0.weight" not in chosen  # the stem conv
    assert not any(".1.weight" in n and "features.0" in n for n in chosen)  # its BatchNorm


def test_default_selection_on_a_bidirectional_two_layer_lstm():
    class Captioner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True)
            self.norm = nn.LayerNorm(32)
            self.out = nn.Linear(32, 50)

    chosen = _names(Captioner())
    assert chosen == [
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l0",
        "lstm.weight_ih_l0_reverse",
        "lstm.weight_hh_l0_reverse",
        "lstm.weight_ih_l1",
        "lstm.weight_hh_l1",
        "lstm.weight_ih_l1_reverse",
        "lstm.weight_hh_l1_reverse",
        "out.weight",
    ]


def test_default_selection_on_gru_rnn_cells_and_projections():
    model = nn.ModuleDict(
        {
            "gru": nn.GRU(4, 6, num_layers=2),
            "rnn": nn.RNN(4, 6, bidirectional=True),
            "lstm_proj": nn.LSTM(4, 8, proj_size=3),
            "lstm_cell": nn.LSTMCell(4, 5),
            "gru_cell": nn.GRUCell(4, 5),
            "rnn_cell": nn.RNNCell(4, 5),
        }
    )
    chosen = set(_names(model))
    assert chosen == {
        "gru.weight_ih_l0", "gru.weight_hh_l0", "gru.weight_ih_l1", "gru.weight_hh_l1",
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l0_reverse", "rnn.weight_hh_l0_reverse",
        "lstm_proj.weight_ih_l0", "lstm_proj.weight_hh_l0", "lstm_proj.weight_hr_l0",
        "lstm_cell.weight_ih", "lstm_cell.weight_hh",
        "gru_cell.weight_ih", "gru_cell.weight_hh",
        "rnn_cell.weight_ih", "rnn_cell.weight_hh",
    }  # fmt: skip


def test_selection_sees_through_data_parallel_and_compiled_wrappers():
    model = torchvision.models.resnet18(weights=None)
    assert _names(nn.DataParallel(model)) == _names(model)

    class Compiled(nn.Module):  # what torch.compile returns: the model kept as ``_orig_mod``
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    assert _names(Compiled(nn.DataParallel(model))) == _names(model)


def test_include_by_name_glob_and_predicate():
    model = torchvision.models.resnet18(weights=None)
    assert _names(model, include="fc.weight") == ["fc.weight"]
    assert _names(model, include="layer4.*.conv?.weight") == [
        "layer4.0.conv1.weight",
        "layer4.0.conv2.weight",
        "layer4.1.conv1.weight",
        "layer4.1.conv2.weight",
    ]
    big = _names(model, include=lambda name, p: p.dim() == 4 and p.numel() > 500_000)
    assert big and all(model.get_parameter(n).numel() > 500_000 for n in big)
    # include overrides the paper's rule: the first conv and even a bias can be chosen
    assert _names(model, include=["conv1.weight", "fc.bias"]) == ["conv1.weight", "fc.bias"]


def test_exclude_by_name_glob_and_predicate():
    model = torchvision.models.resnet18(weights=None)
    default = _names(model)
    assert _names(model, exclude="fc.weight") == default[:-1]
    no_layer1 = _names(model, exclude="layer1.*")
    assert no_layer1 == [n for n in default if not n.startswith("layer1.")]
    no_1x1 = _names(model, exclude=lambda name, p: p.dim() == 4 and p.shape[-1] == 1)
    assert not any("downsample" in n for n in no_1x1) and len(no_1x1) == len(default) - 3
    assert _names(model, include="layer4.*", exclude="*.bias") == [
        n for n in _names(model, include="layer4.*") if not n.endswith("bias")
    ]


def test_include_that_matches_nothing_is_an_error_listing_parameters():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match=r"include='fc\.weights' matches no parameter.*conv1\.weight"):
        select_prunable(model, include="fc.weights")


def test_tied_weights_are_selected_once():
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Linear(6, 6)
            self.decoder = nn.Linear(6, 6)
            self.decoder.weight = self.encoder.weight

    model = Tied()
    chosen = select_prunable(model)
    assert [t.name for t in chosen] == ["encoder.weight"]
    masks = magnitude_masks([t.param for t in chosen], 0.5)
    assert (~masks[0]).sum().item() == 18


def test_nothing_prunable_lists_what_was_considered():
    model = nn.ModuleDict({"embed": nn.Embedding(10, 4), "norm": nn.LayerNorm(4)})
    with pytest.raises(ValueError, match="nothing to prune") as err:
        select_prunable(model)
    message = str(err.value)
    assert "embed.weight (Embedding): embedding" in message
    assert "norm.weight (LayerNorm): normalization" in message
    assert "norm.bias" in message and "include=" in message


def test_integer_parameter_chosen_by_include_is_refused():
    model = nn.Module()
    model.steps = nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)
    with pytest.raises(ValueError, match=r"'steps'.*torch.int64"):
        select_prunable(model, include="steps")


def test_summary_prints_the_chosen_list_with_shapes_and_counts():
    model = torchvision.models.resnet18(weights=None)
    engine = dsd.DSD(model, torch.optim.SGD(model.parameters(), lr=0.1))
    text = engine.summary()
    n = sum(t.numel for t in engine.tensors)
    assert f"DSD prunes {len(engine.tensors)} tensors, {n:,} weights" in text
    assert "fc.weight" in text and "[1000, 512]" in text and "512,000" in text
    assert "layer4.1.conv2.weight" in text and "[512, 512, 3, 3]" in text and "2,359,296" in text
    left = text.split("left dense")[1]
    assert "conv1.weight" in left and "first conv" in left and "bn1.weight" in left


# ----------------------------------------------------------------------------- properties (hypothesis)
_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@st.composite
def _weights(draw) -> torch.Tensor:
    shape = draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    numel = 1
    for d in shape:
        numel *= d
    dtype = draw(st.sampled_from(_DTYPES))
    if draw(st.booleans()):  # few distinct values: many ties
        values = draw(
            st.lists(st.sampled_from([0.0, 0.5, -0.5, 1.0, -2.0, 3.0]), min_size=numel, max_size=numel)
        )
        w = torch.tensor(values, dtype=torch.float64)
    else:
        seed = draw(st.integers(0, 2**31 - 1))
        w = torch.randn(numel, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = w.reshape(shape).to(dtype)
    if len(shape) >= 2 and draw(st.booleans()):
        w = w.transpose(0, -1)  # a non-contiguous view
    return w


_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    tensors=st.lists(_weights(), min_size=1, max_size=3),
    sparsity=st.floats(0.0, 0.999, allow_nan=False),
    scope=st.sampled_from(["layer", "global"]),
    path=st.sampled_from(["direct", "sampled", "bisection"]),
)
def test_property_mask_invariants(tensors, sparsity, scope, path):
    limits = {
        "direct": (masklib.DIRECT_LIMIT, masklib.SAMPLE_SIZE, 1 << 22),
        "sampled": (4, 4096, 6),  # a dense sample: its bracket usually fits the budget
        "bisection": (4, 8, 6),  # a sparse sample: the bracket is too wide, bisection decides
    }[path]
    with (
        mock.patch.object(masklib, "DIRECT_LIMIT", limits[0]),
        mock.patch.object(masklib, "SAMPLE_SIZE", limits[1]),
        mock.patch.object(masklib, "CHUNK_ELEMENTS", limits[2]),
    ):
        got = magnitude_masks(tensors, sparsity, scope)
        again = magnitude_masks(tensors, sparsity, scope)
    for t, m in zip(tensors, got, strict=True):
        assert m.dtype == torch.bool and m.shape == t.shape
    assert all(torch.equal(a, b) for a, b in zip(got, again, strict=True)), "not deterministic"
    groups = [list(range(len(tensors)))] if scope == "global" else [[i] for i in range(len(tensors))]
    for group in groups:
        n = sum(tensors[i].numel() for i in group)
        assert sum((~got[i]).sum().item() for i in group) == round(n * sparsity)
        kept = [tensors[i].double().abs()[got[i]] for i in group]
        pruned = [tensors[i].double().abs()[~got[i]] for i in group]
        kept, pruned = torch.cat(kept), torch.cat(pruned)
        if kept.numel() and pruned.numel():
            assert kept.min() >= pruned.max()
    assert_masks_equal(got, reference_masks(tensors, sparsity, scope))


@_SETTINGS
@given(tensor=_weights(), sparsity=st.floats(0.0, 0.999, allow_nan=False))
def test_property_single_tensor_global_equals_layer(tensor, sparsity):
    assert_masks_equal(
        magnitude_masks([tensor], sparsity, "global"), magnitude_masks([tensor], sparsity, "layer")
    )


def test_an_exclude_name_matching_nothing_is_refused_like_include() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"exclude='2.weight' matches no parameter"):
        select_prunable(model, exclude="2.weight")


def test_numpy_sparsities_are_numbers() -> None:
    import numpy as np

    assert masklib.check_sparsity(np.float32(0.25)) == 0.25
    with pytest.raises(ValueError, match="sparsity must be"):
        masklib.check_sparsity(np.float64(1.0))
