"""The paper's Figure 3 analog: the same test images captioned by the baseline, sparse and DSD models.

``caption_comparison`` reads finished runs of one study (their records, ``dsd.records``): the
baseline's final weights, the DSD run's weights at the end of its sparse phase (``phase<i>.pt``)
and at its end, captions a few test images with each through the study's task, and writes a
markdown table and the matching image grid (PNG). ``tasks.flickr8k.from_run`` rebuilds the task
of a finished run, for a comparison drawn after the fact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dsd import files
from dsd.errors import ConfigError, DataError
from dsd.records import load_result
from dsd.taskkit.weights import load_final_weights, load_model_weights
from tasks.flickr8k.model import decode

MARKDOWN = "flickr8k_captions.md"
GRID = "flickr8k_captions.png"


def sparse_phase_weights(folder: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """Label and weights at the end of a DSD run's first sparse phase."""
    for phase in load_result(folder).phases:
        if phase.kind == "sparse":
            return phase.label, files.safe_torch_load(Path(folder) / phase.weights)
    raise DataError(f"{folder} has no sparse phase: is it a dsd run?")


def pick_images(count: int, total: int) -> list[int]:
    """``count`` positions spread evenly over a split of ``total`` images."""
    count = max(1, min(count, total))
    return [round(i * (total - 1) / max(1, count - 1)) for i in range(count)] if count > 1 else [0]


@torch.no_grad()
def caption_images(task: Any, state: dict[str, torch.Tensor], split: str, positions: list[int]) -> list[str]:
    """Captions of the images at ``positions`` of ``split`` by a model holding ``state``."""
    model = task.build_model()
    load_model_weights(model, state, "run weights")
    model.eval()
    dataset = task.eval_datasets()[split]
    feats = torch.stack([dataset[i][0] for i in positions])
    beam = task.config.beam_size if split == "test" else 1
    ids, _ = decode(model, feats, task.config.max_caption_length, beam)
    return [" ".join(task.vocabulary.decode(row)) for row in ids.tolist()]


def caption_comparison(task: Any, runs: dict[str, Path], out_dir: Path, count: int = 6) -> list[Path]:
    """Markdown table and PNG grid of test images with baseline / sparse / DSD captions.

    ``task``: the study's ``Flickr8kTask``; ``runs`` maps ``baseline`` and ``dsd`` (and optionally
    ``dense-control``) to finished run folders of that study. Returns the written files.
    """
    missing = {"baseline", "dsd"} - set(runs)
    if missing:
        raise ConfigError(f"caption_comparison needs the {sorted(missing)} run folder(s)")
    positions = pick_images(count, len(task.split_images("test")))
    sparse_label, sparse_state = sparse_phase_weights(runs["dsd"])
    columns = {
        "baseline": load_final_weights(runs["baseline"]),
        f"sparse ({sparse_label})": sparse_state,
        "DSD": load_final_weights(runs["dsd"]),
    }
    if "dense-control" in runs:
        columns["dense control"] = load_final_weights(runs["dense-control"])
    captions = {name: caption_images(task, state, "test", positions) for name, state in columns.items()}
    names = [task.split_images("test")[i] for i in positions]
    references = [task.source.references("test")[i][0] for i in positions]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = out_dir / GRID
    _draw_grid(grid, [task.source.open_image(n) for n in names], captions, references)
    header = ["image", *captions, "a reference"]
    lines = [
        f"# Captions of {len(names)} {task.dataset_name} test images (the paper's Figure 3)",
        "",
        f"Decoding: {'greedy' if task.config.beam_size == 1 else f'beam {task.config.beam_size}'}; "
        f"images: [{GRID}]({GRID}).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row, name in enumerate(names):
        cells = [f"`{name}`", *(captions[c][row] or "(empty)" for c in captions), references[row]]
        lines.append("| " + " | ".join(cells) + " |")
    table = out_dir / MARKDOWN
    files.atomic_write_text(table, "\n".join(lines) + "\n")
    return [table, grid]


def _draw_grid(path: Path, images: list[Any], captions: dict[str, list[str]], references: list[str]) -> None:
    """One row per image: the picture, then each model's caption and a reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(images)
    fig, axes = plt.subplots(
        rows, 2, figsize=(11, 1.9 * rows), gridspec_kw={"width_ratios": [1, 3.2]}, squeeze=False
    )
    for row, opened in enumerate(images):  # PIL images, opened lazily by the task
        with opened as image:
            axes[row, 0].imshow(image.convert("RGB"))
        axes[row, 0].set_axis_off()
        text = [f"{name}: {caps[row] or '(empty)'}" for name, caps in captions.items()]
        text.append(f"reference: {references[row]}")
        axes[row, 1].text(
            0.0, 0.5, "\n".join(text), va="center", ha="left", fontsize=9, family="monospace", wrap=True
        )
        axes[row, 1].set_axis_off()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
