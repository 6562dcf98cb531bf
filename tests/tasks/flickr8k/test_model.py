"""NeuralTalk on a small digits stand-in: training, greedy and beam decoding, 80 % pruning."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import dsd
from tasks.flickr8k import standin
from tasks.flickr8k.adapter import PRUNED, Flickr8kConfig, Flickr8kTask
from tasks.flickr8k.model import NeuralTalk, beam_search, greedy, sequence_logprob
from tasks.flickr8k.text import END_ID, PAD_ID, START_ID

SMALL = {"train": 160, "val": 40, "test": 60}


@pytest.fixture(scope="module")
def small_task(tmp_path_factory: pytest.TempPathFactory) -> Flickr8kTask:
    """A 400-picture stand-in, read from its files like Flickr-8K, with raw-pixel features
    (no encoder to train: the stand-in's CNN is tested apart)."""
    root = tmp_path_factory.mktemp("standin")
    standin.write_standin(root, SMALL)
    return Flickr8kTask(Flickr8kConfig(encoder="pixels"), root, tmp_path_factory.mktemp("cache"))


def train(task: Flickr8kTask, epochs: int, lr: float = 3e-3) -> NeuralTalk:
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = task.build_optimizer(model, lr)
    loader = DataLoader(task.train_dataset(), batch_size=50, shuffle=True, collate_fn=task.collate_fn())
    for _ in range(epochs):
        for batch in loader:
            optimizer.zero_grad()
            task.training_loss(model, batch).backward()
            optimizer.step()
    return model.eval()


def evaluate(task: Flickr8kTask, model: NeuralTalk, split: str = "test") -> dict[str, float]:
    batch = task.collate_fn()([task.eval_datasets()[split][i] for i in range(len(task.split_images(split)))])
    with torch.no_grad():
        return task.compute_metrics(split, task.eval_batch(model, batch, split))


@pytest.fixture(scope="module")
def trained(small_task: Flickr8kTask) -> NeuralTalk:
    return train(small_task, epochs=4)


def test_training_learns_to_caption(small_task: Flickr8kTask, trained: NeuralTalk) -> None:
    torch.manual_seed(0)
    untrained = evaluate(small_task, small_task.build_model().eval())
    scores = evaluate(small_task, trained)
    assert scores["bleu1"] > untrained["bleu1"] + 20
    assert scores["bleu4"] > untrained["bleu4"] + 10
    assert set(scores) == {"bleu1", "bleu2", "bleu3", "bleu4"}


def test_greedy_and_beam_decoding(small_task: Flickr8kTask, trained: NeuralTalk) -> None:
    feats = torch.stack([small_task.eval_datasets()["test"][i][0] for i in range(60)])
    ids, score = greedy(trained, feats, max_length=20)
    # the returned score is the model's log-probability of the returned caption
    torch.testing.assert_close(score, sequence_logprob(trained, feats, ids), rtol=1e-4, atol=1e-4)
    assert ((ids == END_ID).sum(1) <= 1).all() and not (ids == START_ID).any()
    beam1_ids, beam1_score = beam_search(trained, feats, max_length=20, beam=1)
    assert torch.equal(beam1_ids, ids)
    torch.testing.assert_close(beam1_score, score)
    beam_ids, beam_score = beam_search(trained, feats, max_length=20, beam=4)
    torch.testing.assert_close(beam_score, sequence_logprob(trained, feats, beam_ids), rtol=1e-4, atol=1e-4)
    # beam search may drop the greedy path (no guarantee per caption), but finds likelier ones
    assert beam_score.mean() > score.mean()


def test_beam_search_finds_the_exhaustive_optimum() -> None:
    """With a beam wider than all partial captions, beam search is exhaustive search."""
    torch.manual_seed(3)
    model = NeuralTalk(feature_dim=5, vocab_size=6, embed_size=8, hidden_size=8, dropout=0.0).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1.0)
    feats = torch.randn(7, 5)
    length = 3
    words = [w for w in range(6) if w not in (PAD_ID, START_ID)]  # 4 choices per step
    captions = []
    for n in range(1, length + 1):
        for prefix in itertools.product(words, repeat=n):
            if END_ID in prefix[:-1]:
                continue
            if n < length and prefix[-1] != END_ID:
                continue  # shorter than max_length only when ended
            captions.append(list(prefix) + [PAD_ID] * (length - n))
    table = torch.tensor(captions)
    scores = torch.stack(
        [sequence_logprob(model, feats, table[i].expand(7, -1)) for i in range(len(table))], 1
    )
    best = scores.max(dim=1).values
    _, beam_score = beam_search(model, feats, max_length=length, beam=4**length)
    torch.testing.assert_close(beam_score, best, rtol=1e-5, atol=1e-5)


def test_pruning_leaves_the_embedding_dense_and_the_rest_at_80_percent(small_task: Flickr8kTask) -> None:
    model = small_task.build_model()
    engine = dsd.DSD(model, small_task.build_optimizer(model, 1e-3), **small_task.prune_selection())
    assert [t.name for t in engine.tensors] == list(PRUNED)
    params = dict(model.named_parameters())
    biases = {n: p.detach().clone() for n, p in params.items() if "bias" in n}
    engine.prune(0.8)
    for name in PRUNED:
        assert int((params[name] == 0).sum()) == round(0.8 * params[name].numel()), name
    assert not (params["embedding.weight"] == 0).any()
    for name, before in biases.items():  # biases stay dense
        assert torch.equal(params[name], before), name


def test_adapter_wiring(small_task: Flickr8kTask, tmp_path: Path) -> None:
    assert small_task.name == "flickr8k" and small_task.model_name == "neuraltalk"
    assert small_task.paper_key == "flickr8k/neuraltalk"
    assert small_task.dataset_name == "Flickr-8K"  # read from a data_dir: the real loader's path
    assert Flickr8kTask(Flickr8kConfig(), None, tmp_path).dataset_name == "digits captions stand-in"
    assert dsd.Schedule.parse(small_task.default_recipe).phases[1].sparsity == 0.8
    description = small_task.description
    assert description["encoder"] == "pixels" and "sacrebleu" in description["bleu"]
    assert description["images"] == SMALL
    train = small_task.train_dataset()
    assert len(train) == 5 * SMALL["train"]
    batch = small_task.collate_fn()([train[0], train[1]])
    assert batch["inputs"][:, 0].eq(START_ID).all()
    for row in range(2):
        n = len(train[row][1])
        assert batch["targets"][row, n] == END_ID and torch.equal(
            batch["inputs"][row, 1 : n + 1], train[row][1]
        )
    records = [(1, "a two"), (0, "a one")]
    path = tmp_path / "predictions" / "test.txt"
    small_task.write_predictions("test", records, path)
    names = small_task.split_images("test")
    assert path.read_text().splitlines()[:2] == [f"{names[0]}\ta one", f"{names[1]}\ta two"]
    with pytest.raises(ValueError, match="--beam-size"):
        Flickr8kTask(Flickr8kConfig(beam_size=0), None, tmp_path)
    with pytest.raises(ValueError, match="encoder"):
        Flickr8kTask(Flickr8kConfig(encoder="resnet"), None, tmp_path)
