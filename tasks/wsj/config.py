"""The speech task's settings: its command-line flags (``Config``) and what their defaults mean.

The paper's DeepSpeech sizes, decay and recipes on real data; small models, Adam and compressed
recipes on the eSpeak stand-in, which must train in minutes on two CPU cores (the reasons and
measurements are in ``tasks.wsj.adapter``'s docstring and beside each constant here). Kept apart
from the adapter so that ``--help`` and the plan need nothing but these values.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsd.taskkit.adapter import TaskConfig
from dsd.taskkit.config import param
from tasks.wsj import prepare as preparation

ARCHS = ("deepspeech", "deepspeech2")
OPTIMIZERS = ("", "nesterov", "adam")
CORPUS_CHOICES = ("auto", *preparation.CORPORA)
STANDIN = "espeak stand-in"
SPLITS = {  # corpus -> (training split, evaluation splits with the per-epoch one first)
    "wsj": ("train-si284", ("dev93", "eval92")),
    "librispeech": ("train-clean-100", ("dev-clean", "test-clean")),
    STANDIN: ("train", ("test",)),
}
DATASET_NAMES = {"wsj": "WSJ", "librispeech": "LibriSpeech", STANDIN: STANDIN}
PAPER_DECAY = {"deepspeech": "exp:0.93", "deepspeech2": "exp:0.8333"}
#: The stand-in's iterated recipes (D S D S D, the paper's sparsities and LR ratios), sized so
#: that stand-in build + baseline + DSD + dense control fit in 8 minutes on two CPU cores. Measured
#: (baseline only, seed 0, test WER): DS1 at 1e-3, batch 32, 250 words 67 % after 5 epochs; at
#: 3e-3, batch 16, 100 words 18 %. DS2 at 1e-3, batch 16, 100 words 33 % after 3 epochs (20 % after
#: 5, but 13 epochs of DS2 take 9 minutes); at 2e-3 19 % after 3.
STANDIN_RECIPES = {
    "deepspeech": "D:5@3e-3 S50%:1@1.875e-3 D:1@1.125e-3 S25%:1@3.75e-4 D:1@1.125e-4 decay=exp:0.8",
    "deepspeech2": "D:3@2e-3 S50%:0.75@2e-3 D:0.75@2e-4 S25%:0.75@2e-4 D:0.75@4e-5 decay=exp:0.8",
}
#: Utterances per batch and process (0 in ``--batch-size``): real data, the stand-in. The
#: stand-in's 3,000 short sentences make 94 steps an epoch at 32; 16 doubles the updates.
REAL_BATCH, STANDIN_BATCH = 32, 16
#: arch -> (real data, stand-in) model sizes for the fields left at 0.
AUTO_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "deepspeech": {"hidden": (1024, 256), "stride": (1, 2)},
    "deepspeech2": {"hidden": (1760, 192), "rnn_layers": (7, 2), "conv_channels": (32, 4)},
}


def _auto(name: str) -> str:
    """What 0 means for the model size ``name``: ``0: 1024 deepspeech on real data; 256 ...``."""
    archs = {arch: sizes[name] for arch, sizes in AUTO_SIZES.items() if name in sizes}
    real = ", ".join(f"{real} {arch}" for arch, (real, _) in archs.items())
    small = ", ".join(f"{small} {arch}" for arch, (_, small) in archs.items())
    return f"0: {real} on real data (the paper's), {small} on the stand-in"


@dataclass
class Config(TaskConfig):
    """The speech task's hyper-parameters (0 = the paper's size on real data, the stand-in's
    on the stand-in; see ``AUTO_SIZES``)."""

    arch: str = param(
        "deepspeech", "deepspeech: DeepSpeech 1; deepspeech2: DeepSpeech 2 style", choices=ARCHS
    )
    corpus: str = param("auto", "what --data holds; auto: detected from its layout", choices=CORPUS_CHOICES)
    batch_size: int = param(
        0, f"utterances per batch, per process; 0: {REAL_BATCH} on real data, {STANDIN_BATCH} on the stand-in"
    )
    hidden: int = param(0, f"fully connected / recurrent width; {_auto('hidden')}", bounds=(0, None))
    context: int = param(
        5, "DS1: frames of context on each side (the paper's 5: an 11-frame window)", bounds=(0, None)
    )
    stride: int = param(0, f"DS1: keep every stride-th window; {_auto('stride')}", bounds=(0, None))
    rnn_layers: int = param(
        0, f"DS2: bidirectional recurrent layers; {_auto('rnn_layers')}", bounds=(0, None)
    )
    rnn: str = param(
        "rnn",
        "DS2's recurrent cell: rnn (DS2's clipped ReLU: 67.7 M parameters at 7 x 1760, the paper's) or gru",
        choices=("rnn", "gru"),
    )
    conv_channels: int = param(
        0, f"DS2: channels of both conv layers; {_auto('conv_channels')}", bounds=(0, None)
    )
    clip: float = param(20.0, "clipped ReLU ceiling", bounds=(0, None))
    dropout: float = param(0.0, "dropout on the fully connected layers (DS1 used 5-10 %)", bounds=(0, 1))
    optimizer: str = param(
        "",
        "nesterov (SGD, the paper's) or adam; empty: nesterov on real data, adam on the stand-in",
        choices=OPTIMIZERS,
    )
    momentum: float = param(0.99, "Nesterov SGD's momentum (the paper's 0.99)", bounds=(0, 1))
    weight_decay: float = param(0.0, "weight decay", bounds=(0, None))
    grad_clip: float = param(400.0, "largest global gradient norm (deepspeech.pytorch's); 0: no clipping")
    standin_train: int = param(3000, "stand-in utterances spoken by the training voices", bounds=(0, None))
    standin_test: int = param(400, "stand-in utterances spoken by the held-out test voices", bounds=(0, None))
    standin_vocabulary: int = param(100, "words the stand-in's sentences are drawn from")
    prepared_dir: str = param(
        "",
        "where a raw --data is prepared (manifests, WSJ's converted WAVs); empty: the cache folder",
        path=True,
    )
