"""WSJ speech task: DeepSpeech 1 and 2 build, prune only FC / recurrent weights, take a step."""

from __future__ import annotations

import pytest
import torch

import dsd
from dsd.masks import pruned_count
from tasks.wsj.adapter import Config, SpeechTask
from tasks.wsj.ctc import ctc_loss
from tasks.wsj.models import DeepSpeech1, DeepSpeech2, frame_mask, parameter_count
from tasks.wsj.text import NUM_CLASSES

pytestmark = pytest.mark.usefixtures("single_thread")


def batch(lengths: list[int], bins: int = 161, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features zero-padded past each length, as ``tasks.wsj.data.collate`` pads them."""
    generator = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    features = torch.randn(len(lengths), max(lengths), bins, generator=generator)
    return features * frame_mask(lengths_t, max(lengths))[..., None], lengths_t


def test_paper_sizes_match_the_papers_parameter_counts():
    assert parameter_count(DeepSpeech1(hidden=1024)) == pytest.approx(8.1e6, rel=0.01)  # DSD paper: 8.1 M
    ds2 = DeepSpeech2(hidden=1760, rnn_layers=7, rnn="rnn", conv_channels=32)
    assert parameter_count(ds2) == pytest.approx(67.7e6, rel=0.001)  # DSD paper: 67.7 M


@pytest.mark.parametrize(
    "model",
    [
        DeepSpeech1(hidden=32, stride=2),
        DeepSpeech2(hidden=24, rnn_layers=2, rnn="gru", conv_channels=2),
        DeepSpeech2(hidden=24, rnn_layers=2, rnn="rnn", conv_channels=2),
        DeepSpeech2(hidden=24, rnn_layers=1, rnn="rnn", conv_channels=3, conv_kernels=((11, 5), (7, 3))),
    ],
    ids=["ds1", "ds2-gru", "ds2-rnn", "ds2-small-kernels"],
)
def test_output_shapes_and_padding_does_not_leak(model):
    model.eval()
    features, lengths = batch([40, 23, 9])
    logits, out_lengths = model(features, lengths)
    assert out_lengths.tolist() == [20, 12, 5]
    assert logits.shape == (3, 20, NUM_CLASSES)
    # each utterance alone gives what it gives inside the padded batch (both RNN directions,
    # the convolutions and the BatchNorms see only its real frames)
    for i, n in enumerate(lengths.tolist()):
        alone, _ = model(features[i : i + 1, :n], lengths[i : i + 1])
        assert torch.allclose(alone[0], logits[i, : out_lengths[i]], atol=1e-5)


@pytest.mark.parametrize(
    ("arch", "rnn", "optimizer"),
    [("deepspeech", "rnn", "nesterov"), ("deepspeech2", "rnn", ""), ("deepspeech2", "gru", "")],
)
def test_pruning_takes_only_fc_and_recurrent_weights_and_holds_through_a_step(arch, rnn, optimizer, tmp_path):
    torch.manual_seed(0)
    sizes = {"hidden": 32, "rnn_layers": 2, "conv_channels": 2, "stride": 2}
    config = Config(arch=arch, rnn=rnn, optimizer=optimizer, **sizes)
    task = SpeechTask(config, None, tmp_path)  # the stand-in's adapter; the model side needs no data
    model = task.build_model()
    optimizer = task.build_optimizer(model, lr=1e-3)
    if config.optimizer == "nesterov":  # the paper's
        assert isinstance(optimizer, torch.optim.SGD)
        assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.99
    else:  # the stand-in's default
        assert isinstance(optimizer, torch.optim.Adam)
    engine = dsd.DSD(model, optimizer, **task.prune_selection())
    names = {t.name for t in engine.tensors}
    modules = dict(model.named_modules())
    for name, _ in model.named_parameters():
        owner_name, leaf = name.rsplit(".", 1)
        matrix_owner = isinstance(modules[owner_name], (torch.nn.Linear, torch.nn.GRU))
        is_matrix = matrix_owner and leaf.startswith("weight")
        assert (name in names) == is_matrix, name
    assert not any(n.startswith("conv.") for n in names)
    if arch == "deepspeech2" and rnn == "gru":
        assert {"rnns.0.forward_gru.weight_hh_l0", "rnns.1.backward_gru.weight_ih_l0"} <= names
    elif arch == "deepspeech2":
        assert {"rnns.0.input.weight", "rnns.1.backward_hh.weight", "fc.weight", "out.weight"} <= names
    else:
        assert {"fc1.weight", "rnn.forward_hh.weight", "rnn.backward_hh.weight", "out.weight"} <= names

    report = engine.prune(0.5)
    for tensor in report.tensors:
        assert tensor.mask_zeros == pruned_count(tensor.numel, 0.5)  # exactly half, per layer
    features, lengths = batch([30, 22])
    targets, target_lengths = torch.tensor([3, 4, 5, 6, 7, 8]), torch.tensor([4, 2])
    logits, out_lengths = model(features, lengths)
    loss = ctc_loss(logits, out_lengths, targets, target_lengths)
    assert torch.isfinite(loss)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for tensor in engine.tensors:
        mask = engine.masks[tensor.name]
        assert torch.all(tensor.param[~mask] == 0), tensor.name
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "out.bias" in moved and any(n in names for n in moved)
