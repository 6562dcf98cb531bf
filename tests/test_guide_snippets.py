"""Every ```python block of docs/guide.md runs as written.

Each block is a complete script. It is written to a temporary folder and run there as
``__main__`` (in this interpreter, to save the start-up of a new one), except a block preceded by
``<!-- snippet: torchrun ARGS -->``, which runs under ``python -m torch.distributed.run ARGS``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
BLOCK = re.compile(r"(?:<!-- snippet: (?P<marker>[^>]*?) -->\n)?```python\n(?P<code>.*?)^```", re.S | re.M)
RUNNERS = ("torchrun",)


@dataclass(frozen=True)
class Snippet:
    line: int
    section: str
    marker: str | None
    code: str

    @property
    def name(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-line{self.line}"


def snippets() -> list[Snippet]:
    text = GUIDE.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code"))
        headings = re.findall(r"^#{2,6} (.+)$", text[: match.start()], re.M)
        found.append(Snippet(line, headings[-1] if headings else "top", match["marker"], match["code"]))
    return found


SNIPPETS = snippets()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a shared machine, OpenMP spinning slows them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_guide_has_the_snippets_it_promises():
    sections = {s.section for s in SNIPPETS}
    assert len(SNIPPETS) >= 7
    for wanted in ("A plain PyTorch loop", "Distributed data parallel (torchrun)", "Hugging Face Trainer"):
        assert wanted in sections, wanted
    for snippet in SNIPPETS:
        if snippet.marker is not None:
            assert snippet.marker.split()[0] in RUNNERS, (
                f"line {snippet.line}: unknown marker {snippet.marker!r}"
            )
    assert any(s.marker and s.marker.startswith("torchrun") for s in SNIPPETS)


def test_guide_says_what_users_met_and_a_snippet_asserts_it():
    """Issue 20, item 16: a timm model's head is pruned by default (``exclude="head.weight"``), a
    ViT's patch embedding stays dense as the first conv, and under ``GradScaler``
    ``mask_gradients()`` comes before ``unscale_``; each said in the text, and asserted by code
    that ``test_snippet_runs_as_written`` runs."""
    text = GUIDE.read_text(encoding="utf-8")
    code = "\n".join(s.code for s in SNIPPETS)
    assert 'exclude="head.weight"' in text and 'assert "head.weight" in names' in code
    assert "patch embedding" in text and '"patch_embed.proj.weight" not in names' in code
    assert "call `engine.mask_gradients()` before `scaler.unscale_(...)`" in text
    assert "assert skipped and taken" in code
    masked, unscaled = code.index("engine.mask_gradients()"), code.index("scaler.unscale_(optimizer)")
    assert masked < unscaled


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_snippet_runs_as_written(snippet: Snippet, tmp_path, monkeypatch, capsys):
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    if snippet.marker is None:
        runpy.run_path(str(script), run_name="__main__")
        assert capsys.readouterr().out  # every snippet shows something
        return
    args = shlex.split(snippet.marker)[1:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *args, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout  # rank 0 reports each phase
