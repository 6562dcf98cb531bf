"""The ImageNet architectures: build, prune (the paper's selection, exactly 30 %), train a step;
recipes; published weights from the torch hub cache; start checkpoints of another architecture."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

import dsd
from dsd.report.paper import PUBLISHED
from dsd.run.execute import run_study
from dsd.run.settings import RunConfig
from dsd.schedule import PAPER_RECIPES, Schedule
from tasks.imagenet import models, modern
from tasks.imagenet.adapter import ImageNetConfig, ImageNetTask, resolve_config
from tests.tasks.imagenet.helpers import make_tree

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tree"), train_per_class=2, val_per_class=1, size=70)


def expected_prunable(model: nn.Module) -> list[str]:
    """Every conv / linear weight but the first conv, found independently of dsd's selection
    (attention's input projection is a linear map that ``nn.MultiheadAttention`` holds bare)."""
    kinds = nn.Conv2d | nn.Linear | nn.MultiheadAttention
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]
    first_conv = next(n for n, m in layers if isinstance(m, nn.Conv2d))
    return [
        f"{n}.in_proj_weight" if isinstance(m, nn.MultiheadAttention) else f"{n}.weight"
        for n, m in layers
        if n != first_conv
    ]


@pytest.mark.parametrize("arch", list(models.ARCHS))
def test_architecture_builds_prunes_exactly_and_trains_a_step(arch: str, tree: Path, tmp_path: Path) -> None:
    size = models.arch_spec(arch).standin_size
    task = ImageNetTask(ImageNetConfig(arch=arch, image_size=size, batch_size=3), tree, tmp_path / "cache")
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = task.build_optimizer(model, lr=0.01)
    engine = dsd.DSD(model, optimizer, **task.prune_selection())
    selected = [t.name for t in engine.tensors]
    assert selected == expected_prunable(model)
    first_conv = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert f"{first_conv}.weight" not in selected

    with torch.no_grad():  # torchvision zero-initialises ViT's head: give it values, so that its
        for t in engine.tensors:  # zeros count the pruned 30 % like every other tensor's
            if not t.param.any():
                t.param.normal_(0.0, 0.02)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    engine.prune(0.3)
    params = dict(model.named_parameters())
    for name, value in before.items():
        if name in selected:
            assert int((params[name] == 0).sum()) == round(value.numel() * 0.3), name
        else:  # first conv, every bias, every BatchNorm weight and bias
            assert torch.equal(params[name], value), name

    batch = next(iter(torch.utils.data.DataLoader(task.train_dataset(), batch_size=3, shuffle=False)))
    assert batch[0].shape == (3, 3, size, size)
    model.train()
    loss = task.training_loss(model, task.to_device(batch, torch.device("cpu")))
    assert loss.ndim == 0 and torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for name in selected:
        assert int((params[name] == 0).sum()) == round(params[name].numel() * 0.3), name
    model.eval()
    with torch.no_grad():
        records = task.eval_batch(model, batch, "val")
    assert len(records) == 3
    assert model(batch[0]).shape == (3, 3)  # three classes in the tree


def test_googlenet_aux_heads_add_to_the_loss_or_are_dropped(tree: Path, tmp_path: Path) -> None:
    with_aux = ImageNetTask(ImageNetConfig(arch="googlenet", image_size=32), tree, tmp_path / "cache")
    without = ImageNetTask(
        ImageNetConfig(arch="googlenet", image_size=32, aux_loss_weight=0.0), tree, tmp_path / "c2"
    )
    model = with_aux.build_model()
    assert model.aux1 is not None and model.transform_input
    assert without.build_model().aux1 is None
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    model.train()
    torch.manual_seed(1)
    total = with_aux.training_loss(model, (images, labels))
    torch.manual_seed(1)
    out = model(images)
    main = nn.functional.cross_entropy(out.logits, labels)
    aux = nn.functional.cross_entropy(out.aux_logits1, labels) + nn.functional.cross_entropy(
        out.aux_logits2, labels
    )
    assert torch.allclose(total, main + 0.3 * aux)


def test_channels_last_model_prunes_exactly(tree: Path, tmp_path: Path) -> None:
    task = ImageNetTask(ImageNetConfig(image_size=32), tree, tmp_path / "cache")
    task._channels_last = True  # what a CUDA machine does
    model = task.build_model()
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    engine = dsd.DSD(model, task.build_optimizer(model, 0.1), **task.prune_selection())
    engine.prune(0.3)
    weight = model.layer1[0].conv1.weight
    assert int((weight == 0).sum()) == round(weight.numel() * 0.3)


def test_recipes_follow_the_paper_with_each_architectures_decay() -> None:
    for arch in ("resnet18", "resnet50", "vgg16", "googlenet"):
        recipe = Schedule.parse(models.arch_spec(arch).recipe)
        paper = Schedule.parse(PAPER_RECIPES[arch])
        assert recipe.phases == paper.phases, arch
    assert str(Schedule.parse(models.arch_spec("resnet18").recipe).decay) == "step:30:0.1"
    assert str(Schedule.parse(models.arch_spec("googlenet").recipe).decay) == "step:8:0.96"
    for arch, spec in models.ARCHS.items():
        for text in (spec.recipe, spec.standin_recipe):
            schedule = Schedule.parse(text)
            assert [p.kind for p in schedule.phases] == ["dense", "sparse", "dense"], arch
            assert schedule.phases[1].sparsity == 0.3


def test_paper_keys_match_the_published_tables(tree: Path, tmp_path: Path) -> None:
    published = PUBLISHED
    keys = {
        line.split(",")[0] for f in published.glob("imagenet*.csv") for line in f.read_text().splitlines()[1:]
    }
    for arch in models.ARCHS:
        size = models.arch_spec(arch).standin_size
        task = ImageNetTask(ImageNetConfig(arch=arch, image_size=size), tree, tmp_path / "cache")
        if arch in modern.MODERN:  # today's architectures: no paper figure to stand beside
            assert task.paper_key not in keys, arch
            continue
        assert task.paper_key in keys, arch


def test_config_defaults_resolve_per_dataset_and_architecture() -> None:
    standin = resolve_config(ImageNetConfig(), standin=True)
    assert (standin.batch_size, standin.image_size, standin.resize_size, standin.weight_decay) == (
        64,
        28,
        32,
        1e-4,
    )
    real = resolve_config(ImageNetConfig(arch="vgg16"), standin=False)
    assert (real.batch_size, real.image_size, real.resize_size, real.weight_decay) == (32, 224, 256, 5e-4)
    assert resolve_config(ImageNetConfig(arch="alexnet"), standin=True).image_size == 64
    assert resolve_config(ImageNetConfig(weight_decay=0.0), standin=False).weight_decay == 0.0
    with pytest.raises(ValueError, match="alexnet needs images of at least 63 px"):
        resolve_config(ImageNetConfig(arch="alexnet", image_size=32), standin=False)
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'; valid: resnet18, resnet50"):
        resolve_config(ImageNetConfig(arch="resnet19"), standin=False)


# ---------------------------------------------------------------------- published weights
def test_missing_pretrained_file_names_the_file_and_never_downloads(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def no_network(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    task = ImageNetTask(ImageNetConfig(image_size=32), tree, tmp_path / "cache")
    expected = tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as err:
        task.pretrained_state()
    message = str(err.value)
    assert str(expected) in message and "ResNet18_Weights.IMAGENET1K_V1" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def _publish(state: dict, folder: Path, stem: str) -> str:
    """Save ``state`` as torch.hub names files: ``<stem>-<sha256 prefix>.pth``; returns a URL."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    tmp.rename(folder / f"{stem}-{digest}.pth")
    return f"https://example.invalid/models/{stem}-{digest}.pth"


def test_cached_weights_are_read_and_checked_against_their_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    folder = tmp_path / "th" / "hub" / "checkpoints"
    state = {"w": torch.arange(4.0)}
    url = _publish(state, folder, "tiny")
    assert models.hub_checkpoint_path(url) == folder / url.rsplit("/", 1)[1]
    assert torch.equal(models.read_cached_weights(url, "tiny")["w"], state["w"])
    path = models.hub_checkpoint_path(url)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(
        ValueError, match=r"corrupt or incomplete.*Delete it and copy https://example.invalid"
    ):
        models.read_cached_weights(url, "tiny")


def test_published_state_must_fit_the_data_and_the_model() -> None:
    googlenet = models.build_model("googlenet", 1000, aux_loss_weight=0.3)
    full = googlenet.state_dict()
    trimmed = models.fit_published_state(dict(full), "googlenet", 1000, aux_heads=False)
    models.build_model("googlenet", 1000, aux_loss_weight=0.0).load_state_dict(trimmed, strict=True)
    assert models.fit_published_state(dict(full), "googlenet", 1000, aux_heads=True).keys() == full.keys()
    with pytest.raises(
        ValueError, match=r"predicts the 1000 ImageNet classes, but the data has 3 class folders"
    ):
        models.fit_published_state(dict(full), "googlenet", 3, aux_heads=True)


def test_start_checkpoint_of_another_architecture_is_refused_clearly(tree: Path, tmp_path: Path) -> None:
    other = models.build_model("squeezenet1_0", 3)
    checkpoint = tmp_path / "squeezenet.pt"
    torch.save(other.state_dict(), checkpoint)
    task = ImageNetTask(ImageNetConfig(image_size=32, batch_size=2, workers=0), tree, tmp_path / "cache")
    run = RunConfig(results_dir=tmp_path / "results", start=str(checkpoint), progress=False)
    with pytest.raises(ValueError, match=r"does not fit the model ResNet.*another architecture"):
        run_study(task, run)
    assert not list((tmp_path / "results").glob("**/done"))
