"""Today's architectures, as DSD meets them: torchvision's ViT-B/16 and ConvNeXt-Tiny.

The paper's CNNs train with SGD; these two train as torchvision's reference recipes train them
(``references/classification/README.md``): AdamW; a cosine schedule (the references' linear
warm-up, 30 and 5 epochs, has no rule in ``dsd.schedule``, so a baseline trained here starts at
full rate: start from the published weights, ``--start pretrained``, as the paper started from
the model zoo's); label smoothing 0.11 (ViT) and 0.1 (ConvNeXt); gradients clipped at norm 1
(ViT); weight decay 0.3 on every parameter (ViT: its recipe sets no exclusion) and 0.05 with the
norms' parameters at 0 (ConvNeXt, ``--norm-weight-decay 0.0``). Mixup, CutMix, RandAugment /
TrivialAugment, random erasing, repeated augmentation and the EMA of the weights are not
reproduced (the suite's ImageNet transforms are the paper's era's: crop and flip).

Which tensors DSD prunes, by the paper's rule read for these models: every weight matrix of a
linear layer (ViT: attention's input projection ``in_proj_weight``, which ``nn.MultiheadAttention``
holds as a bare parameter, its output projection, both MLP layers and the head; ConvNeXt: both
pointwise layers of every block and the head) and every conv but the first (ConvNeXt: the 7x7
depthwise convs and the downsampling convs). The first conv stays dense, as in the paper: ViT's
patch embedding ``conv_proj``, ConvNeXt's 4x4 stem. Norms, biases, ViT's position embedding and
class token and ConvNeXt's layer scales stay dense.

On the stand-in (28-32 px digits, two CPU cores) each is a reduced configuration of the same
class (``VisionTransformer``, ``ConvNeXt``): fewer, narrower layers and a smaller patch, named in
every run's setup notes, so its rows never pass for the full model's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.vision_transformer import VisionTransformer

#: The architectures this module describes (torchvision's names).
MODERN = ("vit_b_16", "convnext_tiny")
#: ViT's prunable tensors, by name (every transformer layer's linear maps and the head).
VIT_PRUNED = (
    "encoder.layers.*.self_attention.in_proj_weight",
    "encoder.layers.*.self_attention.out_proj.weight",
    "encoder.layers.*.mlp.0.weight",
    "encoder.layers.*.mlp.3.weight",
    "heads.head.weight",
)
#: What each prunes and keeps dense, for ``--help``, ``plan``'s description and the README.
PRUNED_TEXT = {
    "vit_b_16": "every transformer layer's attention in-projection, out-projection and both MLP weights, "
    "and the head; dense: the patch embedding (the first conv), norms, biases, position embedding and "
    "class token",
    "convnext_tiny": "every conv but the 4x4 stem (the first conv; depthwise and downsampling convs "
    "pruned), every block's two pointwise linear weights and the head; dense: norms, biases, layer scales",
}
#: The reduced stand-in configurations: (constructor arguments, the note the tables show).
_VIT_SMALL = {"patch_size": 4, "num_layers": 4, "num_heads": 4, "hidden_dim": 96, "mlp_dim": 384}
_CONVNEXT_SMALL = [CNBlockConfig(24, 48, 1), CNBlockConfig(48, 96, 1), CNBlockConfig(96, None, 1)]
REDUCED_NOTES = {
    "vit_b_16": "reduced ViT (4 layers of width 96, 4 heads, patch 4; ViT-B/16: 12 of 768, 12, 16)",
    "convnext_tiny": "reduced ConvNeXt (3 stages of 1 block, 24-96 channels; Tiny: 4 stages, 3-3-9-3 "
    "blocks, 96-768)",
}


def build(arch: str, num_classes: int, image_size: int, reduced: bool) -> nn.Module:
    """``arch`` with fresh weights: torchvision's own (``get_model``), or its reduced stand-in
    configuration of the same class."""
    if arch == "vit_b_16":
        if reduced:
            return VisionTransformer(image_size=image_size, num_classes=num_classes, **_VIT_SMALL)
        import torchvision

        return torchvision.models.get_model(
            arch, weights=None, num_classes=num_classes, image_size=image_size
        )
    if arch == "convnext_tiny":
        if reduced:
            return ConvNeXt(_CONVNEXT_SMALL, stochastic_depth_prob=0.1, num_classes=num_classes)
        import torchvision

        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    raise ValueError(f"{arch!r} is none of {', '.join(MODERN)}")


def patch_size(arch: str, reduced: bool) -> int:
    """The pixels a ViT's image size must be a multiple of (1 for the others)."""
    if arch != "vit_b_16":
        return 1
    return int(_VIT_SMALL["patch_size"]) if reduced else 16


def prune_selection(arch: str) -> dict[str, Any]:
    """The engine's selection arguments: the paper's rule, plus ViT's attention in-projection."""
    if arch == "vit_b_16":
        return {"include": list(VIT_PRUNED), "skip_first_conv": True}
    return {"skip_first_conv": True}


NORM_CLASSES = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)


def is_norm(module: nn.Module) -> bool:
    """torchvision's reference ``set_weight_decay`` norm classes (ConvNeXt's ``LayerNorm2d`` is a
    ``LayerNorm``)."""
    return isinstance(module, NORM_CLASSES)


def adamw(model: nn.Module, lr: float, weight_decay: float, arch: str) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: ConvNeXt's norms without weight decay (its recipe's
    ``--norm-weight-decay 0.0``), everything else at ``weight_decay``."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if arch == "convnext_tiny" and is_norm(module) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=lr)
