"""The ImageNet architectures (torchvision's, unchanged), their recipes and their published weights.

Every model is ``torchvision.models.get_model(arch, weights=None, num_classes=...)``: the
architecture a reader knows, never a variant tuned for the stand-in. Per architecture this module
holds the facts the adapter needs: the paper's DSD recipe with the in-phase LR decay of the
architecture's conventional training, its original weight decay, the smallest input it accepts,
and where torchvision's pretrained weights live in the torch hub cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from dsd.errors import CheckpointError, ConfigError, MissingFileError
from dsd.schedule import PAPER_RECIPES
from tasks.imagenet import modern


@dataclass(frozen=True)
class ArchSpec:
    """What the suite knows about one architecture.

    recipe: the ImageNet schedule (phases and in-phase decay); why each was chosen is in
        ``RECIPE_NOTES``.
    weight_decay: the architecture's original training value.
    min_size: the smallest input (pixels) torchvision's architecture accepts.
    standin_recipe: the stand-in's short schedule (minutes on two CPU cores for ResNet-18).
    optimizer: ``sgd`` (the paper's CNNs) or ``adamw`` (ViT, ConvNeXt: ``tasks.imagenet.modern``).
    label_smoothing, grad_clip: the recipe's (0: none).
    batch_size: per process on ImageNet, 8 processes making the recipe's batch (0: the suite's 32).
    """

    recipe: str
    weight_decay: float
    min_size: int
    standin_recipe: str
    optimizer: str = "sgd"
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    batch_size: int = 0

    @property
    def standin_size(self) -> int:
        """The stand-in's crop: 28 px (its 32 px canvases at the reference's 224/256 ratio), or
        the architecture's minimum when that is larger (rounded up to a multiple of 8)."""
        return max(28, -(-self.min_size // 8) * 8)


# The stand-in recipes keep the paper's shape (dense, then S at 30 %, then dense again, each phase
# starting at 1/10 of the previous LR) at a few epochs of the 2,394 stand-in training images.
# Tuned for ResNet-18 (tasks/imagenet/README.md has the measurements: at lr 0.05 and above it
# barely trains at 28 px; 0.005-0.01 work); the others are untuned: the same lengths, and the
# architectures without BatchNorm at half the LR.
_STANDIN_BN = "D:4@0.01 S30%:1@0.001 D:1@0.0001 decay=cosine"
_STANDIN_PLAIN = "D:4@0.005 S30%:1@0.0005 D:1@5e-05 decay=cosine"
# AdamW's usual 1e-3 for the reduced ViT and ConvNeXt (untuned), the same shape and lengths.
_STANDIN_ADAMW = "D:4@0.001 S30%:1@0.0001 D:1@1e-05 decay=cosine"

ARCHS: dict[str, ArchSpec] = {
    # fb.resnet.torch (the paper's ResNet baselines): SGD 0.1, x0.1 every 30 epochs, wd 1e-4.
    "resnet18": ArchSpec(PAPER_RECIPES["resnet18"] + " decay=step:30:0.1", 1e-4, 1, _STANDIN_BN),
    "resnet50": ArchSpec(PAPER_RECIPES["resnet50"] + " decay=step:30:0.1", 1e-4, 1, _STANDIN_BN),
    # Simonyan & Zisserman: 74 epochs, LR / 10 three times (on plateaus), wd 5e-4. A fixed step
    # every 18.5 epochs puts the three drops evenly; the short S (1.25) and D (18) phases then
    # keep the paper's constant 1e-4 and 1e-5.
    "vgg16": ArchSpec(
        PAPER_RECIPES["vgg16"] + " decay=step:18.5:0.1",
        5e-4,
        32,
        _STANDIN_PLAIN,
    ),
    # Szegedy et al.: "decreasing the learning rate by 4% every 8 epochs"; wd 2e-4 as the Caffe
    # bvlc_googlenet solver the paper's baseline came from.
    "googlenet": ArchSpec(PAPER_RECIPES["googlenet"] + " decay=step:8:0.96", 2e-4, 15, _STANDIN_BN),
    # Not in the paper (model-zoo extras). AlexNet: Caffe's bvlc_alexnet solver (0.01, x0.1 every
    # 20 epochs, 90 epochs, wd 5e-4) with the paper's ResNet proportions (S and D half the
    # dense phase each, each at 1/10 of the previous LR).
    "alexnet": ArchSpec(
        "D:90@1e-2 S30%:45@1e-3 D:45@1e-4 decay=step:20:0.1",
        5e-4,
        63,
        _STANDIN_PLAIN,
    ),
    # SqueezeNet v1.0's solver: 68 epochs at 0.04 for a batch of 512 (0.02 for 256), LR falling
    # linearly to zero (cosine is our closest rule), wd 2e-4; the re-dense phase as the authors'
    # SqueezeNet-DSD-Training note: 20 epochs at 1e-4. Sparsity stays the paper's CNN 30 %.
    "squeezenet1_0": ArchSpec(
        "D:68@0.02 S30%:20@1e-3 D:20@1e-4 decay=cosine",
        2e-4,
        21,
        _STANDIN_PLAIN,
    ),
    # Not in the paper: today's architectures (tasks.imagenet.modern), torchvision's reference
    # recipes as the baseline (ViT-B/16: 300 epochs of AdamW at 3e-3, batch 4096, wd 0.3, label
    # smoothing 0.11, clip 1; ConvNeXt-Tiny: 600 epochs at 1e-3, batch 1024, wd 0.05, norms 0,
    # smoothing 0.1), cosine, then the paper's ResNet proportions for S and D (half the baseline's
    # length each, each at 1/10 of the previous rate). Min size 32: two ViT patches a side; ConvNeXt's.
    "vit_b_16": ArchSpec(
        "D:300@3e-3 S30%:150@3e-4 D:150@3e-5 decay=cosine", 0.3, 32, _STANDIN_ADAMW,
        optimizer="adamw", label_smoothing=0.11, grad_clip=1.0, batch_size=512,
    ),
    "convnext_tiny": ArchSpec(
        "D:600@1e-3 S30%:300@1e-4 D:300@1e-5 decay=cosine", 0.05, 32, _STANDIN_ADAMW,
        optimizer="adamw", label_smoothing=0.1, batch_size=128,
    ),
}  # fmt: skip


def arch_spec(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    return ARCHS[arch]


def build_model(
    arch: str, num_classes: int, aux_loss_weight: float = 0.0, image_size: int = 224, reduced: bool = False
) -> nn.Module:
    """torchvision's ``arch`` with fresh weights and ``num_classes`` outputs.

    GoogLeNet keeps its two auxiliary classifiers when ``aux_loss_weight > 0`` (they then add to
    the training loss, as in the original GoogLeNet; eval mode returns the main logits only), and
    always ``transform_input=True``, the setting torchvision's pretrained weights expect. ViT-B/16
    is built for ``image_size`` (a multiple of its patch); ``reduced``: the stand-in's reduced
    configuration of ViT-B/16 or ConvNeXt-Tiny (``tasks.imagenet.modern``; the others are never
    reduced).
    """
    arch_spec(arch)
    if arch in modern.MODERN:
        patch = modern.patch_size(arch, reduced)
        if image_size % patch:
            raise ConfigError(
                f"--image-size {image_size}: --arch {arch} takes multiples of {patch} px (its patch)"
            )
        return modern.build(arch, num_classes, image_size, reduced)
    kwargs: dict = {}
    if arch == "googlenet":
        kwargs = {"aux_logits": aux_loss_weight > 0, "transform_input": True, "init_weights": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)


def build_optimizer(
    arch: str, model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The architecture's optimizer over the trainable parameters: SGD with momentum (the paper's
    CNNs) or AdamW with its recipe's weight-decay exclusions (``modern.adamw``)."""
    if arch_spec(arch).optimizer == "adamw":
        return modern.adamw(model, lr, weight_decay, arch)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def prune_selection(arch: str) -> dict:
    """The engine's selection: every conv and linear weight but the first conv (the paper's rule),
    and ViT's attention in-projection (``modern.prune_selection``)."""
    return modern.prune_selection(arch) if arch in modern.MODERN else {"skip_first_conv": True}


# ---------------------------------------------------------------------- published weights
def weights_entry(arch: str, name: str) -> torchvision.models.WeightsEnum:
    """torchvision's weights enum member, e.g. ``ResNet18_Weights.IMAGENET1K_V1``."""
    enum = torchvision.models.get_model_weights(arch)
    try:
        return enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        valid = ", ".join(["DEFAULT", *enum.__members__])
        raise ConfigError(f"{enum.__name__} has no weights {name!r}; valid: {valid}") from None


def hub_checkpoint_path(url: str) -> Path:
    """Where ``torch.hub`` caches the file of ``url``: ``<hub dir>/checkpoints/<file name>``
    (the hub dir is ``$TORCH_HOME/hub``, ``~/.cache/torch/hub`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def load_published_weights(arch: str, name: str) -> dict[str, torch.Tensor]:
    """torchvision's pretrained state_dict of ``arch`` (``name``: e.g. ``IMAGENET1K_V1``), read
    from the torch hub cache only (see ``read_cached_weights``)."""
    entry = weights_entry(arch, name)
    return read_cached_weights(entry.url, f"{type(entry).__name__}.{entry.name} for {arch}")


def read_cached_weights(url: str, label: str) -> dict[str, torch.Tensor]:
    """The state_dict torch.hub would cache for ``url``, without ever downloading it.

    A download here would hang offline, so a missing file is an error naming the file, the URL
    and where to put it. The file's sha256 is checked against the prefix in its name
    (torchvision's convention), so a truncated copy is refused instead of half-loaded.
    """
    path = hub_checkpoint_path(url)
    if not path.is_file():
        raise MissingFileError(
            f"pretrained weights {label} are not in the torch hub cache: expected the file {path}. "
            f"This machine does not download them; fetch {url} on a machine with internet and copy it "
            f"to {path.parent}/ (set TORCH_HOME to use another cache; the file goes to "
            "$TORCH_HOME/hub/checkpoints/)."
        )
    match = _HASH_IN_NAME.search(path.name)
    if match:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        if not digest.hexdigest().startswith(match.group(1)):
            raise CheckpointError(
                f"{path} is corrupt or incomplete: its sha256 starts with {digest.hexdigest()[:8]}, its "
                f"name says {match.group(1)}. Delete it and copy {url} again."
            )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read {path} as {label} ({type(err).__name__}: {err})") from None


def fit_published_state(
    state: dict[str, torch.Tensor], arch: str, num_classes: int, aux_heads: bool
) -> dict[str, torch.Tensor]:
    """The published state_dict trimmed to the model ``build_model`` makes: GoogLeNet's file
    carries auxiliary heads (untrained, as torchvision warns); they are dropped when the model
    has none (``aux_heads=False``)."""
    published_classes = 1000
    if num_classes != published_classes:
        raise ConfigError(
            f"torchvision's pretrained {arch} predicts the {published_classes} ImageNet classes, but the "
            f"data has {num_classes} class folders; start from scratch or from a checkpoint of your own"
        )
    if arch == "googlenet" and not aux_heads:
        state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
    return state
