"""BLEU-1..4 as sacrebleu's own command line computes it, on the same captions and references."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.flickr8k.bleu import corpus_bleu, reference_streams

WORDS = ("a", "the", "dog", "man", "girl", "runs", "sits", "on", "in", "grass", "water", "red", "blue", "two")
VERBOSE = re.compile(
    r"(?P<precisions>[0-9./]+) \(BP = [0-9.]+ ratio = [0-9.]+ "
    r"hyp_len = (?P<hyp_len>\d+) ref_len = (?P<ref_len>\d+)\)"
)


def captions(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(count)]


def sacrebleu_cli(tmp: Path, hypotheses: list[str], references: list[list[str]]) -> dict:
    """Run the venv's ``sacrebleu`` executable the way the paper's multi-bleu is emulated."""
    exe = Path(sys.executable).with_name("sacrebleu")
    assert exe.exists(), f"sacrebleu's command line is not installed beside {sys.executable}"
    (tmp / "hyp.txt").write_text("\n".join(hypotheses) + "\n")
    ref_files = []
    for k in range(len(references[0])):
        path = tmp / f"ref{k}.txt"
        path.write_text("\n".join(refs[k] for refs in references) + "\n")
        ref_files.append(str(path))
    command = [str(exe), *ref_files, "-i", str(tmp / "hyp.txt"), "-tok", "none", "-s", "none", "-w", "6"]
    out = subprocess.run([*command, "-f", "json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("seed", [0, 1])
def test_bleu_equals_the_sacrebleu_command_line(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    references = [captions(rng, 5) for _ in range(40)]
    # hypotheses that share n-grams with their references, as a trained captioner's do
    hypotheses = [" ".join(refs[rng.randrange(5)].split()[: rng.randint(3, 9)]) + " " + captions(rng, 1)[0]
                  for refs in references]  # fmt: skip
    ours = corpus_bleu(hypotheses, references)
    cli = sacrebleu_cli(tmp_path, hypotheses, references)
    assert cli["nrefs"] == "5" and cli["tok"] == "none" and cli["smooth"] == "none"
    assert ours["bleu4"] == pytest.approx(cli["score"], abs=1e-5)
    # BLEU-1..3 from the command line's n-gram precisions (printed to 0.1) and exact lengths
    match = VERBOSE.match(cli["verbose_score"])
    assert match, cli["verbose_score"]
    precisions = [float(p) for p in match["precisions"].split("/")]
    hyp_len, ref_len = int(match["hyp_len"]), int(match["ref_len"])
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    for n in (1, 2, 3):
        expected = bp * math.exp(sum(math.log(p) for p in precisions[:n]) / n)
        # each printed precision is off by at most 0.05: a relative error of at most 0.05 / p
        tolerance = expected * sum(0.05 / p for p in precisions[:n]) / n + 1e-6
        assert ours[f"bleu{n}"] == pytest.approx(expected, abs=tolerance)
    assert ours["bleu1"] >= ours["bleu2"] >= ours["bleu3"] >= ours["bleu4"]


def test_perfect_and_disjoint_captions() -> None:
    refs = [["a dog runs on the grass", "the dog is running"], ["two men sit near the water", "men sitting"]]
    assert corpus_bleu([r[0] for r in refs], refs) == {f"bleu{n}": pytest.approx(100.0) for n in range(1, 5)}
    assert corpus_bleu(["zebra zebra zebra zebra", "xylophone"], refs)["bleu1"] == 0.0


def test_images_with_fewer_references() -> None:
    refs = [["a b c d e"], ["f g h i j", "k l m n o"]]
    assert reference_streams(refs) == [["a b c d e", "f g h i j"], [None, "k l m n o"]]
    # the missing reference is skipped, not scored as an empty sentence
    assert corpus_bleu(["a b c d e", "k l m n o"], refs)["bleu4"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        corpus_bleu(["a", "b"], [["a"]])
