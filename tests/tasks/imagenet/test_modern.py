"""ViT-B/16 and ConvNeXt-Tiny (``tasks.imagenet.modern``): torchvision's models, the tensors DSD
prunes in them, their recipes' optimizer, and the reduced stand-in configurations of the same class."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.convnext import ConvNeXt
from torchvision.models.vision_transformer import VisionTransformer

import dsd
from dsd.errors import ConfigError
from tasks.imagenet import models, modern

pytestmark = pytest.mark.usefixtures("single_thread")

#: torchvision's own parameter counts (the weights' ``num_params``), 1000 classes.
TORCHVISION_PARAMS = {"vit_b_16": 86_567_656, "convnext_tiny": 28_589_128}
CLASSES = {"vit_b_16": VisionTransformer, "convnext_tiny": ConvNeXt}


def _engine(arch: str, model: nn.Module) -> dsd.DSD:
    optimizer = models.build_optimizer(arch, model, 1e-3, 0.9, models.arch_spec(arch).weight_decay)
    return dsd.DSD(model, optimizer, **models.prune_selection(arch))


@pytest.mark.parametrize("arch", modern.MODERN)
def test_the_full_model_is_torchvisions_and_prunes_the_stated_tensors(arch: str) -> None:
    model = models.build_model(arch, 1000)
    assert type(model) is CLASSES[arch]
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[arch]
    pruned = [t.name for t in _engine(arch, model).tensors]
    if arch == "vit_b_16":
        per_layer = {
            "self_attention.in_proj_weight",
            "self_attention.out_proj.weight",
            "mlp.0.weight",
            "mlp.3.weight",
        }
        assert len(pruned) == 12 * 4 + 1 and pruned[-1] == "heads.head.weight"
        assert {n.split(".", 3)[3] for n in pruned[:-1]} == per_layer
        dense = {"conv_proj.weight", "class_token", "encoder.pos_embedding", "encoder.ln.weight"}
    else:
        convs = [n for n in pruned if model.get_parameter(n).dim() == 4]
        assert len(convs) == 18 + 3  # every block's depthwise conv and the three downsampling convs
        assert len(pruned) == 18 + 3 + 2 * 18 + 1 and pruned[-1] == "classifier.2.weight"
        dense = {"features.0.0.weight", "features.1.0.layer_scale", "features.1.0.block.2.weight"}
    assert not dense & set(pruned)  # the first conv, embeddings, norms and layer scales stay dense
    assert not any(n.endswith("bias") for n in pruned)


def test_adamw_keeps_convnexts_norms_free_of_weight_decay_and_decays_all_of_vit() -> None:
    convnext = models.build_model("convnext_tiny", 10, image_size=32, reduced=True)
    optimizer = models.build_optimizer("convnext_tiny", convnext, 1e-3, 0.9, 0.05)
    assert isinstance(optimizer, torch.optim.AdamW)
    decayed, free = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and free["weight_decay"] == 0.0
    norms = {id(p) for m in convnext.modules() if modern.is_norm(m) for p in m.parameters(recurse=False)}
    assert {id(p) for p in free["params"]} == norms and norms
    vit = models.build_model("vit_b_16", 10, image_size=32, reduced=True)
    (group,) = models.build_optimizer("vit_b_16", vit, 1e-3, 0.9, 0.3).param_groups
    assert group["weight_decay"] == 0.3 and len(group["params"]) == len(list(vit.parameters()))
    resnet = models.build_model("resnet18", 10)
    assert isinstance(models.build_optimizer("resnet18", resnet, 0.1, 0.9, 1e-4), torch.optim.SGD)


@pytest.mark.parametrize(("arch", "size"), [("vit_b_16", 32), ("convnext_tiny", 32)])
def test_the_stand_in_runs_a_reduced_model_of_the_same_class_that_trains_sparse(arch: str, size: int) -> None:
    model = models.build_model(arch, 10, image_size=size, reduced=True)
    assert type(model) is CLASSES[arch] and sum(p.numel() for p in model.parameters()) < 1_000_000
    engine = _engine(arch, model)
    assert len(engine.tensors) == (4 * 4 + 1 if arch == "vit_b_16" else 3 + 2 + 2 * 3 + 1)
    optimizer = engine.optimizer
    x, y = torch.randn(4, 3, size, size), torch.randint(0, 10, (4,))
    engine.prune(0.5)
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    for t, mask in zip(engine.tensors, engine.masks.values(), strict=True):
        assert not t.param.detach()[~mask].any(), t.name
    engine.redense(reset_state="all")


def test_an_image_size_off_the_patch_grid_is_refused_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--image-size 30: --arch vit_b_16 takes multiples of 4 px"):
        models.build_model("vit_b_16", 10, image_size=30, reduced=True)
    with pytest.raises(ConfigError, match=r"--image-size 200: --arch vit_b_16 takes multiples of 16 px"):
        models.build_model("vit_b_16", 10, image_size=200)
