"""The report page: every table and figure of the finished runs on one self-contained HTML file.

``dsd-suite report`` writes ``results/report.html``: a banner naming the studies measured on a
stand-in (a tiny dataset made here, whose numbers are never the paper's), the forest plot of every
paired gain (the figure a reader looks at first, ``dsd.report.forest``), then every document the
tables builder produces, in its order (the overview, each task's tables with its ablations, the
sweeps), then every PNG under the figures folder grouped per study (curves, weight histograms),
the sweep figures, and the figures tasks write themselves (the captioner's Figure 3 analog, with
the markdown table beside it).

Why one file: it is what a reader opens, mails or attaches to a review, on a machine without the
repository or a network. So the PNGs are embedded as base64 ``data:`` URIs, the style is inline,
nothing is fetched, and the tables are plain ``<table>`` markup that reads without script. The
one inline script only counts the figures that loaded (``<body data-figures="loaded/total">``),
which the browser test reads.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dsd.files import atomic_write_text
from dsd.records.figures import CURVES, FOREST, HISTOGRAMS, SWEEP, TASK, read_entry
from dsd.report.cells import is_standin
from dsd.report.finished import Finished
from dsd.report.render import html_text, render_html
from dsd.report.studies import Study
from dsd.report.sweeps import Sweep
from dsd.report.tables import TableFile, documents, read_paper, write_tables


@dataclass
class Shown:
    """One embedded PNG and what it shows."""

    path: Path
    caption: str


@dataclass
class FigureGroup:
    """The figures of one study, of the sweeps, or of one task's own figures."""

    anchor: str
    title: str
    standin: bool
    figures: list[Shown] = field(default_factory=list)
    texts: list[Path] = field(default_factory=list)  # markdown beside the figures (e.g. captions)


# ---------------------------------------------------------------------- which figure is whose
def _slug(text: str) -> str:
    """A name as an HTML anchor takes it."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def study_title(study: Study) -> str:
    return f"{study.paper_key} on {study.dataset}, recipe {study.recipe} (study {study.key})"


def _markdown_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return path.name


def figure_groups(figures_dir: Path, studies: Sequence[Study], sweeps: Sequence[Sweep]) -> list[FigureGroup]:
    """Every PNG (and markdown table) under ``figures_dir``, grouped by what each says it shows
    (its ``FigureEntry``, ``dsd.records.figures``): one group per study (its curves, histograms and
    the figures its task drew of it, with their markdown), then one for the sweeps. A figure
    without an entry, or of a study not among ``studies``, is still shown, grouped by the prefix
    of its name and labelled a stand-in when its markdown twin says so."""
    figures_dir = Path(figures_dir)
    pngs = sorted(figures_dir.rglob("*.png")) if figures_dir.is_dir() else []
    texts = sorted(figures_dir.rglob("*.md")) if figures_dir.is_dir() else []
    entries = {path: entry for path in pngs if (entry := read_entry(path)) is not None}
    pngs = [path for path in pngs if path not in entries or entries[path].kind != FOREST]  # atop the page
    entries = {path: entry for path, entry in entries.items() if entry.kind != FOREST}
    groups: list[FigureGroup] = []
    for study in sorted(studies, key=lambda s: (s.paper_key, s.dataset, s.key)):
        anchor = f"fig-{_slug(study.paper_key)}-{study.key}"
        group = FigureGroup(anchor, study_title(study), is_standin(study.dataset))
        for path, entry in entries.items():
            if entry.study == study.key and entry.kind in (CURVES, HISTOGRAMS, TASK):
                group.figures.append(Shown(path, entry.caption))
                if entry.text and (path.parent / entry.text).is_file():
                    group.texts.append(path.parent / entry.text)
        if group.figures:
            groups.append(group)
    swept = {s.key for s in sweeps}
    shown = [(p, e) for p, e in entries.items() if e.kind == SWEEP and (e.sweep in swept or not sweeps)]
    if shown:
        group = FigureGroup("fig-sweeps", "Sparsity sweeps", standin=any(e.standin for _, e in shown))
        group.figures = [Shown(path, e.caption) for path, e in shown]
        groups.append(group)
    claimed = {path for group in groups for path in [*(s.path for s in group.figures), *group.texts]}
    return groups + _unclaimed([p for p in [*pngs, *texts] if p not in claimed])


def forest_figures(figures_dir: Path) -> list[Path]:
    """The forest plot(s) under ``figures_dir`` (``dsd.report.forest``): shown first, at the top."""
    found = sorted(Path(figures_dir).rglob("*.png")) if Path(figures_dir).is_dir() else []
    return [path for path in found if (entry := read_entry(path)) is not None and entry.kind == FOREST]


def _unclaimed(paths: list[Path]) -> list[FigureGroup]:
    """Figures without an entry: one group per name prefix, a PNG captioned by its markdown
    twin's title, the markdown itself shown beside."""
    rest: dict[str, FigureGroup] = {}
    for path in paths:
        prefix = path.stem.split("_", 1)[0]
        group = rest.setdefault(
            prefix, FigureGroup(f"fig-{_slug(prefix)}", f"{prefix}: the task's own figures", False)
        )
        twin = path.with_suffix(".md")
        if path.suffix == ".png":
            group.figures.append(Shown(path, _markdown_title(twin) if twin.is_file() else path.name))
        else:
            group.texts.append(path)
            group.standin |= is_standin(path.read_text(encoding="utf-8"))
    return list(rest.values())


# ---------------------------------------------------------------------- HTML pieces
def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _inline(text: str) -> str:
    """Escaped inline markdown: bold, code; a link keeps its text only (the page fetches nothing)."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", html_text(text))


def markdown_html(text: str) -> str:
    """The markdown tasks write beside their figures (headings, paragraphs, pipe tables) as HTML.
    Not a general markdown renderer: anything else reads as plain paragraph text."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = min(6, 3 + len(line) - len(line.lstrip("#")))
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(_cells(lines[i]))
                i += 1
            body = [row for row in block[1:] if not all(re.fullmatch(r":?-+:?", c) for c in row if c)]
            out.append('<div class="scroll"><table><thead><tr>')
            out.append(
                "".join(f'<th scope="col">{_inline(c)}</th>' for c in block[0]) + "</tr></thead><tbody>"
            )
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body]
            out.append("</tbody></table></div>")
            continue
        elif line.strip():
            paragraph = [line.strip()]
            while (
                i + 1 < len(lines)
                and lines[i + 1].strip()
                and not lines[i + 1].lstrip().startswith(("#", "|"))
            ):
                i += 1
                paragraph.append(lines[i].strip())
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
        i += 1
    return "\n".join(out)


BADGE = '<span class="badge">stand-in result</span>'


def _figure_html(group: FigureGroup, figures_dir: Path) -> str:
    badge = f" {BADGE}" if group.standin else ""
    out = [
        f'<section id="{html.escape(group.anchor)}" class="figures">',
        f"<h3>{html.escape(group.title)}{badge}</h3>",
    ]
    for shown in group.figures:
        name = shown.path.relative_to(figures_dir).as_posix()
        out += [
            "<figure>",
            f'<img src="{png_data_uri(shown.path)}" alt="{html.escape(shown.caption)}">',
            f"<figcaption>{html.escape(shown.caption)} <code>{html.escape(name)}</code></figcaption>",
            "</figure>",
        ]
    for path in group.texts:
        out += ['<div class="figure-text">', markdown_html(path.read_text(encoding="utf-8")), "</div>"]
    out.append("</section>")
    return "\n".join(out)


def standin_banner(studies: Sequence[Study]) -> str:
    """Which studies ran on a stand-in (a banner, when any) and which on real data."""
    standin = [s for s in studies if is_standin(s.dataset)]
    real = [s for s in studies if not is_standin(s.dataset)]
    out = []
    if standin:
        out += [
            '<div class="banner" id="standin-banner" role="note">',
            f"<p><strong>Stand-in results.</strong> {len(standin)} of {len(studies)} studies ran on a "
            "stand-in: a tiny dataset made on this machine in the real dataset's format. Their numbers show "
            "that the pipeline works; they are not the paper's and say little about DSD at the paper's "
            "scale. Table rows measured on a stand-in carry an orange bar at their left, their figures "
            f"a {BADGE} mark.</p>",
            "<ul>",
            *(f"<li>{html.escape(study_title(s))}</li>" for s in standin),
            "</ul>",
            "</div>",
        ]
    if real:
        out.append('<div class="real"><p>Measured on the real dataset:</p><ul>')
        out += [f"<li>{html.escape(study_title(s))}</li>" for s in real]
        out.append("</ul></div>")
    if not studies:
        out.append('<p class="empty">No finished runs: the tables below are the paper\'s alone.</p>')
    return "\n".join(out)


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1500px;
  padding: 0 1.5em 3em; color: #1d1d1d; background: #fff; }
h1 { margin-top: 0.8em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.banner { background: #fff4e0; border: 1px solid #d98200; border-left: 6px solid #d98200; padding: 0.4em 1em;
  margin: 1em 0; }
.real { background: #eef6ee; border-left: 6px solid #3a8a3a; padding: 0.4em 1em; margin: 1em 0; }
.badge { background: #d98200; color: #fff; font-size: 0.7em; padding: 0.1em 0.5em; border-radius: 0.6em;
  vertical-align: middle; white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #d5d5d5; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f1f1f1; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafafa; }
tr.standin > td:first-child { border-left: 4px solid #d98200; }
.caption, .notes p, figcaption { color: #555; font-size: 0.92em; margin: 0.2em 0; }
figure { margin: 1em 0 2em; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
nav ul { columns: 2; } code { font-size: 0.95em; background: #f4f4f4; padding: 0 0.2em; }
"""

#: Progressive enhancement only: counts the figures that decoded, for the browser test and for anyone
#: who wonders whether the page is whole. Tables and figures read the same without it.
SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.dataset.figures = loaded + "/" + images.length;
});
"""


def forest_html(paths: Sequence[Path], figures_dir: Path) -> str:
    """The section atop the page: every study's paired gains on one zero line (the forest plot)."""
    if not paths:
        return ""
    group = FigureGroup("forest", "Every paired gain at a glance", any(read_entry(p).standin for p in paths))
    group.figures = [Shown(path, read_entry(path).caption) for path in paths]
    return _figure_html(group, figures_dir).replace("<h3>", "<h2>", 1).replace("</h3>", "</h2>", 1)


def render_page(files: Sequence[TableFile], studies: Sequence[Study], groups: Sequence[FigureGroup],
                figures_dir: Path, forest: Sequence[Path] = ()) -> str:  # fmt: skip
    """The whole page as one string: banner, the forest plot, contents, every table document, every
    figure."""

    def row_class(row: list[str]) -> str:
        return "standin" if any(is_standin(cell) for cell in row) else ""

    contents = ['<li><a href="#forest">Every paired gain at a glance</a></li>'] if forest else []
    contents += [f'<li><a href="#{html.escape(f.stem)}">{html_text(f.doc.title)}</a></li>' for f in files]
    if groups:
        contents.append('<li><a href="#figures">Figures</a></li>')
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>DSD reproduction suite: report</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        "<h1>DSD reproduction suite: report</h1>",
        "<p>Dense-Sparse-Dense training (Han et al., ICLR 2017): our runs beside the paper's numbers, "
        f"from {sum(len(s.runs) for s in studies)} finished runs in {len(studies)} studies. "
        "Written by <code>dsd-suite report</code>; every figure is embedded in this file.</p>",
        standin_banner(studies),
        forest_html(forest, Path(figures_dir)),
        '<nav id="contents"><h2>Contents</h2><ul>',
        *contents,
        "</ul></nav>",
        "</header>",
        "<main>",
        *(render_html(f.doc, anchor=f.stem, row_class=row_class) for f in files),
    ]
    if groups:
        out += ['<section id="figures">', "<h2>Figures</h2>", "<ul>"]
        out += [f'<li><a href="#{html.escape(g.anchor)}">{html.escape(g.title)}</a></li>' for g in groups]
        out.append("</ul>")
        out += [_figure_html(group, Path(figures_dir)) for group in groups]
        out.append("</section>")
    out += ["</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- the page
def write_page(finished: Finished, files: Sequence[TableFile], figures_dir: Path, out: Path) -> Path:
    """Write the report page to ``out`` (atomically): the table documents ``files`` and the
    figures under ``figures_dir``, of the studies in ``finished``; returns ``out``."""
    groups = figure_groups(Path(figures_dir), finished.studies, finished.sweeps)
    forest = forest_figures(Path(figures_dir))
    atomic_write_text(Path(out), render_page(files, finished.studies, groups, Path(figures_dir), forest))
    return Path(out)


def build_page(runs_dir: Path, figures_dir: Path, out: Path, paper_dir: Path | None = None,
               tables_dir: Path | None = None) -> Path:  # fmt: skip
    """Write the report page to ``out`` from the finished runs under ``runs_dir`` and the PNGs
    already under ``figures_dir``; returns ``out``. ``tables_dir``: also write the table files
    there (the same documents the page shows)."""
    finished = Finished.load(Path(runs_dir))
    files = documents(finished, read_paper(paper_dir))
    if tables_dir is not None:
        write_tables(files, Path(tables_dir))
    return write_page(finished, files, figures_dir, out)
