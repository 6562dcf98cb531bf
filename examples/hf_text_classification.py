"""DSD with the Hugging Face Trainer: a tiny BERT, built from a config, on generated reviews.

Three runs from the same seed, each a ``transformers.Trainer`` with ``DSDCallback``:

- ``baseline``: the dense first phase alone;
- ``dsd``: the whole schedule (dense, sparse, dense again at a lower rate);
- ``dense-control``: as long as ``dsd``, with the same learning-rate drops, never pruned.

Nothing is downloaded: the model is ``BertForSequenceClassification`` from a small ``BertConfig``
and the "tokenizer" is a word-level vocabulary built from the generated data. The data is a
stand-in (generated sentences, not a real corpus): short movie reviews whose label needs word
order (``"the plot was dull but the cast was great"`` is positive) and negation (``"not good"``).
At this size the three methods differ by little and within seed noise; the script shows the
mechanics, not the paper's gains.

    python examples/hf_text_classification.py            # about two minutes on 2 CPU cores
    python examples/hf_text_classification.py --quick    # seconds (what the tests run)
    python examples/hf_text_classification.py --seeds 0 1 2 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the hub; never try it
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from dsd.integrations.transformers import DSDCallback

DATASET_NAME = "generated reviews (stand-in)"
SUBJECTS = [
    "the movie",
    "the film",
    "the plot",
    "the cast",
    "the ending",
    "the music",
    "the script",
    "the story",
]
POSITIVE = ["good", "great", "fun", "clever", "moving", "superb", "charming", "gripping"]
NEGATIVE = ["bad", "dull", "boring", "weak", "awful", "messy", "bland", "tedious"]
INTENSIFIERS = ["", "very", "really", "quite", "truly"]
OPENERS = ["", "", "honestly", "overall", "i think", "frankly"]
PAD, CLS, UNK = "[PAD]", "[CLS]", "[UNK]"


@dataclass(frozen=True)
class Setup:
    """Sizes and schedule of one invocation (``--quick`` shrinks everything)."""

    train_size: int
    eval_size: int
    label_noise: float
    schedule: str
    hidden: int
    layers: int
    batch_size: int


FULL = Setup(800, 1000, 0.1, "D:4@1e-3 S50%:2@5e-4 D:2@1e-4", hidden=64, layers=2, batch_size=32)
QUICK = Setup(64, 64, 0.1, "D:1@2e-3 S50%:1@1e-3 D:1@2e-4", hidden=32, layers=1, batch_size=16)


# ----------------------------------------------------------------------------- data
def clause(rng: random.Random, positive: bool) -> str:
    """'<subject> was [not] [very] <adjective>' meaning ``positive``."""
    negated = rng.random() < 0.3
    adjective = rng.choice(POSITIVE if positive != negated else NEGATIVE)
    words = [rng.choice(SUBJECTS), "was", "not" if negated else "", rng.choice(INTENSIFIERS), adjective]
    return " ".join(w for w in words if w)


def review(rng: random.Random) -> tuple[str, int]:
    """A sentence and its label (1 = positive); the label is that of the last clause."""
    label = rng.random() < 0.5
    form = rng.choice(["single", "but", "and", "although"])
    if form == "single":
        text = clause(rng, label)
    elif form == "but":
        text = f"{clause(rng, not label)} but {clause(rng, label)}"
    elif form == "and":
        text = f"{clause(rng, label)} and {clause(rng, label)}"
    else:
        text = f"although {clause(rng, not label)} , {clause(rng, label)}"
    opener = rng.choice(OPENERS)
    return (f"{opener} {text}" if opener else text), int(label)


def make_split(size: int, seed: int, label_noise: float = 0.0) -> list[tuple[str, int]]:
    """``size`` reviews; a fraction ``label_noise`` of them (training only) get the wrong label."""
    rng = random.Random(seed)
    split = [review(rng) for _ in range(size)]
    return [(text, 1 - label if rng.random() < label_noise else label) for text, label in split]


class WordVocabulary:
    """Word-level ids built from the training sentences: the whole 'tokenizer' of this example."""

    def __init__(self, sentences: list[str]) -> None:
        words = sorted({w for s in sentences for w in s.split()})
        self.words = [PAD, CLS, UNK, *words]
        self.ids = {w: i for i, w in enumerate(self.words)}

    def encode(self, sentence: str, length: int) -> list[int]:
        ids = [self.ids[CLS]] + [self.ids.get(w, self.ids[UNK]) for w in sentence.split()]
        return (ids + [self.ids[PAD]] * length)[:length]


class EncodedReviews(torch.utils.data.Dataset):
    """Fixed-length ``input_ids`` / ``attention_mask`` / ``labels``, as the Trainer expects."""

    def __init__(self, split: list[tuple[str, int]], vocab: WordVocabulary, length: int) -> None:
        self.input_ids = torch.tensor([vocab.encode(s, length) for s, _ in split])
        self.attention_mask = (self.input_ids != vocab.ids[PAD]).long()
        self.labels = torch.tensor([y for _, y in split])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": self.attention_mask[i],
            "labels": self.labels[i],
        }


# ----------------------------------------------------------------------------- runs
def run(
    method: str, schedule: str, setup: Setup, seed: int, data: tuple, output_dir: str
) -> dict[str, float | str]:
    """Train one method with the Trainer + DSDCallback; return its eval accuracy and sparsity
    (the highest ``dsd/sparsity`` the callback logged, and the fraction of zeros at the end)."""
    train, evaluation, vocab, length = data
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab.words),
        hidden_size=setup.hidden,
        num_hidden_layers=setup.layers,
        num_attention_heads=4,
        intermediate_size=setup.hidden * 4,
        max_position_embeddings=length,
        num_labels=2,
        pad_token_id=vocab.ids[PAD],
    )
    model = BertForSequenceClassification(config)
    callback = DSDCallback(schedule)
    length = callback.schedule.total_length  # the Trainer runs exactly the schedule's length
    in_steps = callback.schedule.unit == "steps"
    args = TrainingArguments(
        output_dir=os.path.join(output_dir, f"{method}-seed{seed}"),
        use_cpu=True,
        report_to=[],
        seed=seed,
        num_train_epochs=1 if in_steps else length,
        max_steps=round(length) if in_steps else -1,
        per_device_train_batch_size=setup.batch_size,
        per_device_eval_batch_size=256,
        learning_rate=callback.schedule.phases[0].lr,
        lr_scheduler_type="constant",  # the schedule's rates as written (see the guide)
        weight_decay=0.01,
        logging_strategy="epoch",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
    trainer.train()
    logits = trainer.predict(evaluation).predictions
    accuracy = float((torch.as_tensor(logits).argmax(-1) == evaluation.labels).float().mean())
    sparsity_logged = [log["dsd/sparsity"] for log in trainer.state.log_history if "dsd/sparsity" in log]
    return {
        "method": method,
        "seed": seed,
        "schedule": schedule,
        "length": f"{length:g} {callback.schedule.unit}",
        "accuracy": accuracy,
        "peak_sparsity": max(sparsity_logged),
        "final_sparsity": callback.engine.sparsity_report().weight_sparsity,
    }


def methods(schedule: str) -> dict[str, str]:
    """The three methods' schedules, derived from the DSD schedule."""
    parsed = DSDCallback(schedule).schedule
    return {"baseline": str(parsed.head()), "dsd": str(parsed), "dense-control": str(parsed.dense_control())}


def table(rows: list[dict]) -> str:
    """Mean (± sample standard deviation over seeds) per method, as a markdown table."""
    lines = [
        f"Dataset: {DATASET_NAME}",
        "",
        "Sparsity: fraction of the pruned tensors' weights that are exactly 0 (logged once per epoch).",
        "",
        "| method | schedule | length | eval accuracy | peak sparsity | final sparsity |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        acc = [r["accuracy"] for r in mine]
        spread = f" ± {statistics.stdev(acc):.2%}" if len(acc) > 1 else ""
        lines.append(
            f"| {method} | `{mine[0]['schedule']}` | {mine[0]['length']} | "
            f"{statistics.mean(acc):.2%}{spread} (n={len(acc)}) | {mine[-1]['peak_sparsity']:.1%} | "
            f"{mine[-1]['final_sparsity']:.1%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and schedule (seconds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--schedule", help="DSD schedule in epochs (default depends on --quick)")
    parser.add_argument("--json", help="also write the per-run results to this JSON file")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: the model is too small to gain)"
    )
    options = parser.parse_args(argv)
    torch.set_num_threads(options.threads)
    setup = QUICK if options.quick else FULL
    schedule = options.schedule or setup.schedule

    train_split = make_split(setup.train_size, seed=1, label_noise=setup.label_noise)
    eval_split = make_split(setup.eval_size, seed=2)
    vocab = WordVocabulary([s for s, _ in train_split])
    length = 1 + max(len(s.split()) for s, _ in train_split + eval_split)
    data = (
        EncodedReviews(train_split, vocab, length),
        EncodedReviews(eval_split, vocab, length),
        vocab,
        length,
    )

    hf_logging.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dsd-hf-example-") as output_dir:
        for seed in options.seeds:
            for method, text in methods(schedule).items():
                rows.append(run(method, text, setup, seed, data, output_dir))
                print(f"seed {seed} {method:<13} accuracy {rows[-1]['accuracy']:.2%}", file=sys.stderr)
    print(table(rows))
    if options.json:
        folder = os.path.dirname(os.path.abspath(options.json))
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump({"dataset": DATASET_NAME, "runs": rows}, file, indent=2)
        os.replace(tmp, options.json)
    return rows


if __name__ == "__main__":
    main()
