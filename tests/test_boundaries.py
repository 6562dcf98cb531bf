"""The rules of the house, checked: what may import what.

- ``import dsd`` (the engine) loads no pandas, matplotlib or anything from ``tasks``;
- the engine room (``dsd/*.py``, ``dsd/integrations``) imports nothing from the other rooms, so it
  stays usable with torch alone;
- ``dsd.records`` (the on-disk contract) loads neither torch nor pandas;
- the report reads only the records: it imports nothing from the runtime or the task toolkit;
- the task toolkit imports nothing from the runtime or the report;
- no module under ``dsd/`` imports ``tasks``; a task imports only the engine, the toolkit and the
  records, never another task;
- no import circle among the project's modules (imports inside functions and under
  ``TYPE_CHECKING`` count: they are the design's dependencies too).

Each checker is shown to fail on a planted case.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("dsd.run", "dsd.report", "dsd.bench", "dsd.records", "dsd.taskkit")
#: What a task package may import of the project: the engine's modules, the toolkit, the records.
TASK_MAY_IMPORT = ("dsd.taskkit", "dsd.records")


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports (absolute names; relative imports resolved against its package,
    by default the one its place in the repository gives)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(files: Iterable[Path], root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports. ``from package import name`` is an edge to the
    submodule ``package.name`` where there is one, else to the package itself."""
    files = list(files)
    modules = {module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for imported in imported_modules(path, package=package):
            if imported in modules:
                targets.add(imported)
        # ``from a.b import c`` yields both a.b and a.b.c: keep the package only when c is no module
        targets = {t for t in targets if not any(o.startswith(t + ".") and o in targets for o in modules)}
        graph[name] = targets - {name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every set of modules that import each other round a circle (Tarjan's strongly connected
    components of more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def task_packages() -> list[str]:
    """The task packages under ``tasks/`` (the command line, ``tasks/cli``, is not a task)."""
    return sorted(
        p.name for p in (ROOT / "tasks").iterdir() if (p / "__init__.py").is_file() and p.name != "cli"
    )


# ---------------------------------------------------------------------- the rules
def test_import_dsd_loads_only_the_engine() -> None:
    code = "import dsd, sys; print(sorted({'pandas', 'matplotlib', 'tasks'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_records_load_neither_torch_nor_pandas() -> None:
    code = "import dsd.records, dsd.records.sweep, dsd.records.figures, dsd.records.histograms, sys; "
    code += "import dsd.records.lock, dsd.records.jobs, dsd.records.status; "
    code += "print(sorted({'torch', 'pandas', 'numpy', 'matplotlib'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_engine_room_stands_on_torch_alone() -> None:
    engine_files = [p for p in python_files("dsd") if p.parent == ROOT / "dsd" or "integrations" in p.parts]
    assert engine_files
    for path in engine_files:
        bad = sorted(m for m in imported_modules(path) if any(_under(m, room) for room in ROOMS))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the engine must not need the suite"


def test_the_report_reads_only_the_records() -> None:
    for path in python_files("dsd/report"):
        bad = sorted(m for m in imported_modules(path) if _under(m, "dsd.run") or _under(m, "dsd.taskkit"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the report reads dsd.records only"


def test_the_toolkit_and_the_records_stand_below_the_runtime() -> None:
    for room in ("dsd/taskkit", "dsd/records"):
        for path in python_files(room):
            above = ("dsd.run", "dsd.report", "dsd.bench") + (
                ("dsd.taskkit",) if room == "dsd/records" else ()
            )
            bad = sorted(m for m in imported_modules(path) if any(_under(m, r) for r in above))
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_dsd_never_imports_tasks() -> None:
    for path in python_files("dsd"):
        bad = sorted(m for m in imported_modules(path) if _under(m, "tasks"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_task_imports_another_task() -> None:
    tasks = task_packages()
    assert {"imagenet", "flickr8k", "wsj"} <= set(tasks)
    for task in tasks:
        for path in python_files(f"tasks/{task}"):
            others = [t for t in tasks if t != task]
            bad = sorted(m for m in imported_modules(path) for t in others if _under(m, f"tasks.{t}"))
            assert not bad, f"{path.relative_to(ROOT)} imports another task: {bad}"


def test_tasks_stand_on_the_engine_the_toolkit_and_the_records_only() -> None:
    for task in task_packages():
        for path in python_files(f"tasks/{task}"):
            bad = sorted(
                m
                for m in imported_modules(path)
                if any(_under(m, room) for room in ROOMS) and not any(_under(m, ok) for ok in TASK_MAY_IMPORT)
            )
            assert not bad, (
                f"{path.relative_to(ROOT)} imports {bad}: a task uses dsd, dsd.taskkit, dsd.records"
            )


def test_no_import_circle_in_the_project() -> None:
    graph = import_graph([*python_files("dsd"), *python_files("tasks")])
    assert len(graph) > 100  # every module was read
    assert import_circles(graph) == []


# ---------------------------------------------------------------------- the checkers can fail
def test_the_checker_sees_imports(tmp_path: Path) -> None:
    """The checks above can fail: the parser finds absolute, relative and nested imports."""
    sample = tmp_path / "probe.py"
    sample.write_text("import tasks.wsj\nfrom .run import loop\n\ndef f():\n    from tasks import imagenet\n")
    found = imported_modules(sample, package="dsd")
    assert {"tasks.wsj", "dsd.run", "dsd.run.loop", "tasks", "tasks.imagenet"} <= found


def test_the_circle_finder_finds_a_planted_circle(tmp_path: Path) -> None:
    """Three modules importing each other round a circle (one only for type checking, one inside
    a function) are found; a package importing its submodules is no circle."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")
    (pkg / "a.py").write_text("from pkg.b import B\nA = 1\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import c\nB = 2\n"
    )
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("def f():\n    from pkg import a\n")
    (pkg / "leaf.py").write_text("from pkg import a\n")
    graph = import_graph(sorted(pkg.rglob("*.py")), root=tmp_path)
    assert graph["pkg.leaf"] == {"pkg.a"} and graph["pkg"] == {"pkg.a"}
    assert import_circles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (pkg / "b.py").write_text("B = 2\n")
    assert import_circles(import_graph(sorted(pkg.rglob("*.py")), root=tmp_path)) == []
