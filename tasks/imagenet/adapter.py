"""The ImageNet CNN task: torchvision classifiers on an ImageFolder tree, top-1 / top-5 error.

One adapter serves the real ImageNet (``data_dir`` = a tree with ``train/`` and ``val/``) and the
digits stand-in (``data_dir=None``: built under ``cache_dir`` by ``prepare()``), through the same
loader and transforms (and a Hugging Face copy on disk), each read through its data source
(``tasks.imagenet.sources``, chosen once in the constructor). Settings that must differ between
the two (crop size, batch size) default to 0, meaning "the dataset's default"; the adapter
resolves them at construction, so the loop, the run record and the run's hash all see the values
actually used.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from dsd.errors import ConfigError
from dsd.taskkit.adapter import MetricSpec, TaskConfig, move_to_device
from dsd.taskkit.config import param
from dsd.taskkit.sourced import SourcedTask, SourceMakers
from tasks.imagenet import data as datalib
from tasks.imagenet import models, modern
from tasks.imagenet.sources import DATA_HINT, HFImageSource, ImageFolderSource, ImageSource, StandinSource

#: Per-process batch on ImageNet: torchvision's reference (32 per GPU; 8 GPUs make the global
#: batch of 256 the ResNet / VGG / AlexNet recipes were tuned for).
IMAGENET_BATCH = 32
#: Per-process batch on the stand-in: large enough to keep two CPU cores busy, small enough for
#: 37 steps per epoch of its 2,394 training images.
STANDIN_BATCH = 64
IMAGENET_SIZE = 224
#: RandomResizedCrop's smallest crop: torchvision's 8 % of the area on ImageNet; 60 % on the
#: stand-in, whose digit fills most of a small canvas: smaller crops cut the digit apart, which a
#: few-minute schedule cannot afford (measured: 35 % left ResNet-18 at 29 % error, 60 % at 16 %).
IMAGENET_MIN_CROP = 0.08
STANDIN_MIN_CROP = 0.6
#: Architectures whose name in the paper's tables differs from torchvision's.
PAPER_NAMES = {"squeezenet1_0": "squeezenet"}


def _weight_decays() -> str:
    """``1e-4 resnet18, resnet50; 5e-4 vgg16, alexnet; ...``: each architecture's original."""
    by_value: dict[float, list[str]] = {}
    for arch, spec in models.ARCHS.items():
        by_value.setdefault(spec.weight_decay, []).append(arch)
    return "; ".join(
        f"{value:.0e} {', '.join(archs)}".replace("e-0", "e-") for value, archs in by_value.items()
    )


@dataclass
class ImageNetConfig(TaskConfig):
    """Hyper-parameters of the ImageNet task (0 / negative: the dataset's or architecture's default)."""

    arch: str = param(
        "resnet18",
        "the torchvision architecture, unchanged (on the stand-in vit_b_16 and convnext_tiny are reduced "
        "configurations of their class). DSD prunes every conv and linear weight but the first conv; "
        f"vit_b_16: {modern.PRUNED_TEXT['vit_b_16']}; convnext_tiny: {modern.PRUNED_TEXT['convnext_tiny']}",
        choices=models.ARCHS,
    )
    batch_size: int = param(
        0,
        f"samples per batch, per process; 0: {IMAGENET_BATCH} on ImageNet (x 8 GPUs = 256, "
        f"torchvision's reference), {STANDIN_BATCH} on the stand-in",
    )
    image_size: int = param(
        0,
        f"training / validation crop, pixels; 0: {IMAGENET_SIZE} on ImageNet, 28 on the stand-in "
        "(more where the architecture needs it)",
        bounds=(1, None),
    )
    resize_size: int = param(
        0,
        f"validation resize before the centre crop; 0: image_size / {datalib.CROP_RATIO} (256 for 224)",
        bounds=(1, None),
    )
    min_crop_scale: float = param(
        0.0,
        f"RandomResizedCrop's smallest area fraction; 0: {IMAGENET_MIN_CROP} on ImageNet "
        f"(torchvision's), {STANDIN_MIN_CROP} on the stand-in",
    )
    momentum: float = param(0.9, "SGD momentum", bounds=(0, 1))
    weight_decay: float = param(
        -1.0,
        f"SGD weight decay; negative: the architecture's original ({_weight_decays()})",
        bounds=(0, None),
    )
    label_smoothing: float = param(
        0.0,
        "cross-entropy label smoothing; 0: the architecture's recipe (off for the paper's CNNs, as in "
        "their era; 0.11 vit_b_16, 0.1 convnext_tiny); negative: off. vit_b_16's recipe also clips "
        "gradients at norm 1 unless --grad-clip says otherwise",
        bounds=(0, 1),
    )
    aux_loss_weight: float = param(
        0.3,
        "GoogLeNet: weight of each auxiliary classifier's loss (the original 0.3); 0 drops the aux heads",
        bounds=(0, None),
    )
    pretrained_weights: str = param(
        "IMAGENET1K_V1",
        "the torchvision weights --start pretrained loads (V1: the classic weights the paper "
        "compares with; DEFAULT: torchvision's current best)",
    )
    skip_bad_images: bool = param(
        False, "skip unreadable images (counted in the run record) instead of stopping with their names"
    )


class ImageNetTask(SourcedTask):
    """ResNet-18/50, VGG-16, GoogLeNet (the paper's four), AlexNet and SqueezeNet on ImageNet."""

    name: ClassVar[str] = "imagenet"
    Config = ImageNetConfig
    metrics: ClassVar[dict[str, MetricSpec]] = {
        "top1_err": MetricSpec(higher_is_better=False, label="top-1 err", percent=True),
        "top5_err": MetricSpec(higher_is_better=False, label="top-5 err", percent=True),
    }
    primary_metric: ClassVar[str] = "top1_err"
    data_hint = DATA_HINT
    config: ImageNetConfig

    source_makers = SourceMakers(standin=StandinSource, huggingface=HFImageSource, folder=ImageFolderSource)
    source: ImageSource

    def source_arguments(self) -> tuple[Any, ...]:
        return (self.cache_dir, self.config.skip_bad_images)

    @functools.cached_property
    def _channels_last(self) -> bool:
        """Images and the model in the channels-last layout: on a GPU, where it is faster."""
        return torch.cuda.is_available()

    def resolve_config(self, config: ImageNetConfig) -> ImageNetConfig:  # type: ignore[override]
        return resolve_config(config, standin=self.is_standin)

    # ------------------------------------------------------------------ identity
    @property
    def model_name(self) -> str:
        return self.config.arch

    @property
    def paper_key(self) -> str:
        """``imagenet/<arch>`` as in the paper's tables (``dsd/report/published/*.csv``), where
        SqueezeNet v1.0 is ``squeezenet``."""
        return f"{self.name}/{PAPER_NAMES.get(self.config.arch, self.config.arch)}"

    @property
    def default_recipe(self) -> str:
        spec = models.arch_spec(self.config.arch)
        return spec.standin_recipe if self.is_standin else spec.recipe

    @property
    def description(self) -> dict[str, Any]:
        cfg = self.config
        facts: dict[str, Any] = {
            "arch": f"torchvision.models.{cfg.arch} (weights=None, unchanged)",
            "train_transform": (
                f"RandomResizedCrop({cfg.image_size}, scale=({cfg.min_crop_scale}, 1)) + horizontal flip"
            ),
            "eval_transform": f"Resize({cfg.resize_size}) + CenterCrop({cfg.image_size})",
            "pruned": modern.PRUNED_TEXT.get(
                cfg.arch, "every conv and linear weight except the first conv; biases and BatchNorm never"
            ),
            "optimizer": f"{models.arch_spec(cfg.arch).optimizer} (SGD: momentum {cfg.momentum}), "
            f"weight decay {cfg.weight_decay}",
        }
        if cfg.arch == "googlenet":
            facts["googlenet_aux"] = (
                f"two auxiliary classifiers, loss weight {cfg.aux_loss_weight} each"
                if cfg.aux_loss_weight > 0
                else "auxiliary classifiers dropped"
            )
        return facts | self.source.description_facts()

    # ------------------------------------------------------------------ preparation
    def setup_notes(self) -> list[str]:
        """The image size and crop scale, where they are not ImageNet's 224 px and 8 %."""
        cfg, notes = self.config, []
        if cfg.image_size != IMAGENET_SIZE:
            notes.append(f"{cfg.image_size} px images")
        if cfg.min_crop_scale != IMAGENET_MIN_CROP:
            notes.append(f"crops of at least {cfg.min_crop_scale:.0%} of the image")
        if self.is_standin and cfg.arch in modern.REDUCED_NOTES:
            notes.append(modern.REDUCED_NOTES[cfg.arch])
        if cfg.label_smoothing:
            notes.append(f"label smoothing {cfg.label_smoothing:g}")
        return notes

    # ------------------------------------------------------------------ model
    @property
    def num_classes(self) -> int:
        return len(self.source.classes())

    def build_model(self) -> nn.Module:
        cfg = self.config
        model = models.build_model(
            cfg.arch, self.num_classes, self._aux_weight(), cfg.image_size, self.is_standin
        )
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        cfg = self.config
        return models.build_optimizer(cfg.arch, model, lr, cfg.momentum, cfg.weight_decay)

    def prune_selection(self) -> dict[str, Any]:
        return models.prune_selection(
            self.config.arch
        )  # the paper: every conv / FC weight but the first conv

    def pretrained_state(self) -> dict[str, torch.Tensor]:
        """torchvision's published weights (``pretrained_weights``) from the torch hub cache."""
        cfg, classes = self.config, self.source.classes()
        state = models.load_published_weights(cfg.arch, cfg.pretrained_weights)
        state = models.fit_published_state(state, cfg.arch, len(classes), self._aux_weight() > 0)
        warning = self.source.pretrained_label_warning()
        if warning:
            warnings.warn(warning, stacklevel=2)
        return state

    def _aux_weight(self) -> float:
        return self.config.aux_loss_weight if self.config.arch == "googlenet" else 0.0

    # ------------------------------------------------------------------ data
    def train_dataset(self) -> Dataset:
        cfg = self.config
        return self.source.dataset("train", datalib.train_transform(cfg.image_size, cfg.min_crop_scale))

    def eval_datasets(self) -> dict[str, Dataset]:
        cfg = self.config
        return {"val": self.source.dataset("val", datalib.eval_transform(cfg.image_size, cfg.resize_size))}

    def to_device(self, batch: Any, device: torch.device) -> Any:
        images, labels = move_to_device(batch, device)
        if device.type == "cuda" and self._channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels

    # ------------------------------------------------------------------ steps
    def training_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        images, labels = batch
        out = model(images)
        smoothing = self.config.label_smoothing
        if hasattr(out, "aux_logits1"):  # GoogLeNet in training mode with its auxiliary heads
            loss = nn.functional.cross_entropy(out.logits, labels, label_smoothing=smoothing)
            aux = nn.functional.cross_entropy(out.aux_logits1, labels, label_smoothing=smoothing)
            aux = aux + nn.functional.cross_entropy(out.aux_logits2, labels, label_smoothing=smoothing)
            return loss + self._aux_weight() * aux
        return nn.functional.cross_entropy(out, labels, label_smoothing=smoothing)

    def eval_batch(self, model: nn.Module, batch: Any, split: str) -> list[Any]:
        images, labels = batch
        logits = model(images).float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == labels[:, None]
        top1 = hits[:, 0].tolist()
        top5 = hits.any(dim=1).tolist()
        return [(int(a), int(b)) for a, b in zip(top1, top5, strict=True)]

    def compute_metrics(self, split: str, records: list[Any]) -> dict[str, float]:
        n = len(records)
        if n == 0:
            raise ValueError(f"no {split} records to score")
        return {
            "top1_err": 100.0 * (1.0 - sum(r[0] for r in records) / n),
            "top5_err": 100.0 * (1.0 - sum(r[1] for r in records) / n),
        }


def resolve_config(config: ImageNetConfig, standin: bool) -> ImageNetConfig:
    """``config`` with every 0 / negative default replaced by the value used, checked."""
    spec = models.arch_spec(config.arch)
    image_size = config.image_size or (spec.standin_size if standin else IMAGENET_SIZE)
    if image_size < spec.min_size:
        raise ConfigError(
            f"--arch {config.arch} needs images of at least {spec.min_size} px, got --image-size {image_size}"
        )
    resize_size = config.resize_size or datalib.default_resize(image_size)
    if resize_size < image_size:
        raise ConfigError(f"--resize-size {resize_size} is smaller than the crop, --image-size {image_size}")
    min_crop_scale = config.min_crop_scale or (STANDIN_MIN_CROP if standin else IMAGENET_MIN_CROP)
    if not 0 < min_crop_scale <= 1:
        raise ConfigError(f"--min-crop-scale must be in (0, 1], got {config.min_crop_scale}")
    if config.batch_size < 0:
        raise ConfigError(f"--batch-size must be positive (0: the default), got {config.batch_size}")
    return dataclasses.replace(
        config,
        batch_size=config.batch_size or (STANDIN_BATCH if standin else spec.batch_size or IMAGENET_BATCH),
        label_smoothing=max(0.0, config.label_smoothing or spec.label_smoothing),
        grad_clip=config.grad_clip or spec.grad_clip,
        image_size=image_size,
        resize_size=resize_size,
        min_crop_scale=min_crop_scale,
        weight_decay=spec.weight_decay if config.weight_decay < 0 else config.weight_decay,
    )
