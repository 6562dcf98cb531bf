"""The report page: one self-contained HTML file (every figure embedded, nothing fetched) with every
table document in the tables builder's order, stand-in results labelled, tables that read without
script; and, where Chromium is installed, a real browser that loads every figure.

The page is built once per module from the committed fixture records (tables) and figures drawn
from two of their studies plus the fixture sweep (a few seconds; no training).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dsd.report.figures import build_figures
from dsd.report.forest import FOREST_CAPTION
from dsd.report.page import build_page, figure_groups, markdown_html, render_page, standin_banner
from dsd.report.render import Document, Table, render_html
from dsd.report.runs import load_runs
from dsd.report.studies import group_studies
from dsd.report.sweeps import load_sweeps, plot_sweep
from dsd.report.tables import TableFile, table_documents

RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "records"
DRAWN = ["imagenet-resnet18", "flickr8k-neuraltalk"]  # a stand-in study and a real-data one
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CAPTIONS_MD = """# Captions of 2 digits captions stand-in test images (the paper's Figure 3)

Decoding: beam 3; images: [flickr8k_captions.png](flickr8k_captions.png).

| image | baseline | DSD | a reference |
|---|---|---|---|
| `a.png` | a <b>three</b> | a three \\| five | three five |
| `b.png` | (empty) | a one | one |
"""


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of every table cell by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.cells: dict[str, list[list[str]]] = {}
        self._table: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "table":
            self._table.append(attributes.get("id", ""))
        elif tag == "tr" and self._table:
            self.cells.setdefault(self._table[-1], []).append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table:
            self._table.pop()
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self.cells[self._table[-1]][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attributes for name, attributes in self.tags if name == tag]


def parse(text: str) -> Elements:
    parser = Elements()
    parser.feed(text)
    return parser


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(the page, its figures folder)."""
    root = tmp_path_factory.mktemp("report")
    runs, figures = root / "runs", root / "figures"
    for name in DRAWN:
        shutil.copytree(RECORDS / name, runs / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture's broken runs, tested in test_tables
        build_figures(runs, figures)
        (sweep,) = load_sweeps(RECORDS, load_runs(RECORDS))
        plot_sweep(sweep, figures / f"sweep_{sweep.key}.png")
        shutil.copyfile(next(figures.glob("curves_flickr8k*.png")), figures / "flickr8k_captions.png")
        (figures / "flickr8k_captions.md").write_text(CAPTIONS_MD, encoding="utf-8")
        page = build_page(RECORDS, figures, root / "report.html", tables_dir=root / "tables")
    return page, figures


@pytest.fixture(scope="module")
def page(built) -> str:
    return built[0].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documents() -> list[TableFile]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return table_documents(RECORDS, None)


@pytest.fixture(scope="module")
def studies():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return group_studies(load_runs(RECORDS))


# ---------------------------------------------------------------------- self-contained
def test_page_loads_nothing_from_anywhere(page):
    """Every image is a data: URI, every link a fragment of the page; no stylesheet, script file,
    font or CSS url() to fetch."""
    elements = parse(page)
    assert elements.all("img") and all(
        i["src"].startswith("data:image/png;base64,") for i in elements.all("img")
    )
    assert all(a["href"].startswith("#") for a in elements.all("a"))
    assert not elements.all("link") and not elements.all("iframe") and not elements.all("object")
    assert all("src" not in s for s in elements.all("script"))
    assert "url(" not in page and "@import" not in page and "@font-face" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)


def test_every_figure_embedded_once(built, page):
    _, figures = built
    pngs = sorted(figures.rglob("*.png"))
    sources = [i["src"].split(",", 1)[1] for i in parse(page).all("img")]
    assert len(pngs) >= 6 and len(sources) == len(pngs)
    assert sorted(base64.b64decode(s) for s in sources) == sorted(p.read_bytes() for p in pngs)


def test_written_atomically_with_the_tables(built):
    page_path, _ = built
    folder = page_path.parent
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert (folder / "tables" / "overview.md").is_file() and (folder / "tables" / "sweeps.tex").is_file()


# ---------------------------------------------------------------------- what it shows
def test_every_table_document_in_the_builders_order(page, documents):
    stems = [f.stem for f in documents]
    assert stems[0] == "overview" and "sweeps" in stems
    positions = [page.index(f'<section id="{stem}">') for stem in [*stems, "figures"]]
    assert positions == sorted(positions)


def test_a_document_the_builder_adds_appears_without_changing_the_page():
    """The page takes whatever documents it is given (the lead adds ablations and sweeps there)."""
    extra = Document("Ablations", ["why"], [Table("t", "c", ["method"], [["dsd-reinit"]])], [])
    text = render_page([TableFile("ablations", extra, None)], [], [], Path("."))
    assert '<section id="ablations">' in text and "<td>dsd-reinit</td>" in text
    assert 'id="standin-banner"' not in text and "No finished runs" in text


def test_figures_grouped_per_study_sweep_and_task(built, studies):
    _, figures = built
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        groups = figure_groups(figures, studies, load_sweeps(RECORDS, load_runs(RECORDS)))
    shown = {g.anchor: sorted(s.path.name.split("_", 1)[0] for s in g.figures) for g in groups}
    per_study = [a for a in shown if a.startswith(("fig-imagenet", "fig-flickr8k-"))]
    assert len(per_study) == 2 and all(shown[a] == ["curves", "histograms"] for a in per_study)
    assert shown["fig-sweeps"] == ["sweep"] and shown["fig-flickr8k"] == ["flickr8k"]
    by_anchor = {g.anchor: g for g in groups}
    assert by_anchor["fig-sweeps"].standin and by_anchor["fig-flickr8k"].standin  # its markdown says so
    assert [p.name for p in by_anchor["fig-flickr8k"].texts] == ["flickr8k_captions.md"]


def test_stand_in_results_are_labelled(page, studies):
    standin = [s for s in studies if "stand-in" in s.dataset]
    real = [s for s in studies if "stand-in" not in s.dataset]
    assert standin and real
    banner = page.split('id="standin-banner"', 1)[1].split("</div>", 1)[0]
    assert all(f"(study {s.key})" in banner for s in standin)
    assert not any(f"(study {s.key})" in banner for s in real)
    body = page.split('id="overview-table1"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r'<tr( class="standin")?><td>[^<]*</td><td>([^<]*)</td>', body)
    assert len(rows) == body.count("<tr") > 2
    for marked, dataset in rows:
        assert bool(marked) == ("stand-in" in dataset), dataset
    resnet18 = next(s for s in standin if s.paper_key == "imagenet/resnet18")
    heading = {
        study.key: page.split(f'<section id="fig-{study.paper_key.replace("/", "-")}-{study.key}"', 1)[
            1
        ].split("</h3>", 1)[0]
        for study in (resnet18, real[0])
    }
    assert "stand-in result" in heading[resnet18.key] and "stand-in result" not in heading[real[0].key]


def test_no_banner_without_a_stand_in(studies):
    real = [s for s in studies if "stand-in" not in s.dataset]
    text = standin_banner(real)
    assert 'id="standin-banner"' not in text and f"(study {real[0].key})" in text


def test_tables_read_without_script(page, documents):
    """The overview is plain table markup in the file itself: the same cells as the document."""
    overview = documents[0].doc.tables[0]
    no_script = re.sub(r"<script>.*?</script>", "", page, flags=re.DOTALL)
    rows = parse(no_script).cells["overview-table1"]
    plain = [[re.sub(r"\*\*|`", "", c) for c in row] for row in [overview.header, *overview.rows]]
    assert rows == plain


def test_the_captions_markdown_becomes_a_table(page):
    text = markdown_html(CAPTIONS_MD)
    assert "<h4>Captions of 2 digits captions stand-in test images" in text
    assert "images: flickr8k_captions.png." in text  # a link keeps its text, nothing to follow
    cells = parse(text).cells[""]
    assert cells[0] == ["image", "baseline", "DSD", "a reference"]
    assert cells[1] == ["a.png", "a <b>three</b>", "a three | five", "three five"]
    assert len(cells) == 3 and "&lt;b&gt;three&lt;/b&gt;" in text
    assert text in page


def test_render_html_escapes_and_bolds():
    doc = Document(
        "A <title> & more",
        ["intro with `code`"],
        [
            Table(
                "T",
                "how to read",
                ["a", "b"],
                [["x < y", "**control better**"], ["stand-in", "1"]],
                ["[1] n"],
            )
        ],
        ["run `D:1@0.1`"],
    )
    text = render_html(doc, anchor="doc", row_class=lambda row: "standin" if row[0] == "stand-in" else "")
    assert "<h2>A &lt;title&gt; &amp; more</h2>" in text and "<code>code</code>" in text
    assert (
        '<table id="doc-table1">' in text
        and "<td>x &lt; y</td><td><strong>control better</strong></td>" in text
    )
    assert '<tr class="standin"><td>stand-in</td>' in text and "<tr><td>x &lt; y" in text
    assert "<details><summary>Runs (1)</summary>" in text and "<code>D:1@0.1</code>" in text


# ---------------------------------------------------------------------- the command
def test_dsd_suite_report_writes_the_page_and_prints_its_path(built, tmp_path, capsys):
    from tasks.cli import main

    _, figures = built
    runs = tmp_path / "runs"
    shutil.copytree(RECORDS / DRAWN[1], runs / DRAWN[1])
    out = tmp_path / "site" / "report.html"
    argv = [
        "--runs",
        str(runs),
        "--figures",
        str(figures),
        "--tables",
        str(tmp_path / "t"),
        "--out",
        str(out),
    ]
    assert main(["report", *argv, "--reuse-figures"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert str(out) in printed[-1] and out.is_file() and (tmp_path / "t" / "overview.md").is_file()
    assert len(parse(out.read_text(encoding="utf-8")).all("img")) == len(list(figures.glob("*.png")))


# ---------------------------------------------------------------------- a real browser
def test_a_real_browser_loads_every_figure_and_shows_the_overview(built, page, tmp_path):
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        pytest.skip(f"no Chromium on PATH (looked for {', '.join(BROWSERS)}); CI installs Debian's chromium")
    page_path, _ = built
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    done = subprocess.run(
        [browser, *flags, "--dump-dom", page_path.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = parse(done.stdout)
    (body,) = dom.all("body")
    images = len(parse(page).all("img"))
    assert images > 0
    assert body.get("data-figures") == f"{images}/{images}", (
        f"figures loaded/total: {body.get('data-figures', 'not set: the load handler did not run')}"
    )
    assert len(dom.cells.get("overview-table1", [])) > 2, "the overview table is not in the rendered page"
    assert any(s.get("id") == "standin-banner" for s in dom.all("div"))
    # the forest plot opens the page: the first section, its figure the first image (loaded, above)
    assert dom.all("section")[0].get("id") == "forest", "the forest plot is not the page's first section"
    assert dom.all("img")[0].get("alt") == FOREST_CAPTION
