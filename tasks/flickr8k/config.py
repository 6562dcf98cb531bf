"""The captioning task's settings: its command-line flags (``Flickr8kConfig``), the paper's and the
stand-in's recipes, and NeuralTalk's optimizer settings beside the stand-in's (with why they
differ). Kept apart from the adapter so that ``--help`` and the plan need nothing but these values.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsd.schedule import PAPER_RECIPES
from dsd.taskkit.adapter import TaskConfig
from dsd.taskkit.config import param
from tasks.flickr8k import corpus, features

#: The paper's phases; RMSprop at a constant rate inside each (NeuralTalk had no LR schedule).
PAPER_RECIPE = PAPER_RECIPES["neuraltalk"] + " decay=none"
#: The stand-in's: the paper's shape (LR / 10 per phase, 80 % sparsity) at a length and rate that
#: fit the 2-core time budget of ``make flickr8k-captioning``.
STANDIN_RECIPE = "D:6@1e-3 S80%:3@1e-4 D:2@1e-5 decay=none"
#: The stand-in's optimizer settings where NeuralTalk's do not fit its few hundred steps: with
#: RMSprop's average of squared gradients decaying at 0.999 from zero, the first updates are
#: ~30x the learning rate and the captioner collapses to a handful of captions that ignore the
#: image (3-8 distinct captions over 300 test images, measured); 0.99, batch 50 and standardized
#: features give ~130 distinct ones and BLEU-4 ~43 after the same 6 epochs.
STANDIN_BATCH, STANDIN_RMSPROP_ALPHA = 50, 0.99
NEURALTALK_BATCH, NEURALTALK_RMSPROP_ALPHA = 100, 0.999
FEATURE_NORMS = ("auto", "standardize", "none")
FLICKR8K_NAME, STANDIN_NAME = "Flickr-8K", "digits captions stand-in"  # in run hashes: never change
PRUNED = ("image_projection.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "output.weight")


@dataclass
class Flickr8kConfig(TaskConfig):
    """NeuralTalk's hyper-parameters (its ``driver.py`` defaults) and the data options."""

    batch_size: int = param(
        0, f"captions per batch; 0: NeuralTalk's {NEURALTALK_BATCH} (the stand-in: {STANDIN_BATCH})"
    )
    eval_batch_size: int = param(500, "images decoded at once (no effect on results)")
    grad_clip: float = param(5.0, "largest global gradient norm (NeuralTalk clipped each element at 5)")
    workers: int = param(0, "DataLoader workers; 0, as the features are in memory: workers add only start-up")
    embed_size: int = param(256, "width of the image projection and the word embedding", bounds=(1, None))
    hidden_size: int = param(256, "width of the LSTM", bounds=(1, None))
    dropout: float = param(0.5, "dropout on the LSTM's inputs and outputs", bounds=(0, 1))
    rmsprop_alpha: float = param(
        0.0,
        f"RMSprop's decay of its squared-gradient average; 0: NeuralTalk's {NEURALTALK_RMSPROP_ALPHA} "
        f"(the stand-in: {STANDIN_RMSPROP_ALPHA})",
    )
    rmsprop_eps: float = param(1e-8, "RMSprop's epsilon", bounds=(0, None))
    min_word_count: int = param(
        5, "vocabulary: words seen at least this often in the training captions", bounds=(1, None)
    )
    max_caption_length: int = param(20, "words; longer training captions are cut, decoding stops here")
    beam_size: int = param(1, "test-split decoding; 1: greedy, the paper's (val is always greedy)")
    encoder: str = param(
        "auto",
        "the frozen image encoder; auto: vgg16-fc7 on Flickr-8K, digits-cnn on the stand-in",
        choices=("auto", *features.ENCODERS),
    )
    feature_norm: str = param(
        "auto",
        "standardize: each feature to zero mean, unit variance over the training images; auto: none "
        "for vgg16-fc7 (NeuralTalk read fc7 as is), standardize for the other encoders",
        choices=FEATURE_NORMS,
    )
    annotations: str = param(
        "auto",
        "the captions' format; auto: Karpathy's JSON (the paper's split) when present, else the token file",
        choices=corpus.ANNOTATION_FORMATS,
    )
    skip_bad_data: bool = param(False, "count and skip bad caption lines and missing or broken images")
    annotations_file: str = param("", "the captions file; empty: found under --data", path=True)
    images_dir: str = param("", "the images folder; empty: found under --data", path=True)


def image_features(config: Flickr8kConfig, standin: bool) -> tuple[str, str]:
    """The encoder and the feature normalisation a run uses: the config's, or for ``auto``
    VGG-16's fc7 on Flickr-8K and the glyph CNN on the stand-in, standardized features for every
    encoder but VGG-16 (NeuralTalk read fc7 as is). The config keeps ``auto``, as the run's hash does."""
    encoder = config.encoder
    if encoder == "auto":
        encoder = "digits-cnn" if standin else "vgg16-fc7"
    norm = config.feature_norm
    if norm == "auto":
        norm = "none" if encoder == "vgg16-fc7" else "standardize"
    return encoder, norm
