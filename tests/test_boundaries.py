"""The rules of the house, checked: what may import what.

- ``import dsd`` (the engine) loads no pandas, matplotlib or anything from ``tasks``;
- the engine room (``dsd/*.py``, ``dsd/integrations``) imports nothing from the runtime, the
  reporting or the benchmarks, so it stays usable with torch alone;
- no module under ``dsd/`` imports ``tasks``;
- no task imports another task.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("dsd.run", "dsd.report", "dsd.bench")


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


def test_import_dsd_loads_only_the_engine() -> None:
    code = "import dsd, sys; print(sorted({'pandas', 'matplotlib', 'tasks'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_engine_room_stands_on_torch_alone() -> None:
    engine_files = [p for p in python_files("dsd") if p.parent == ROOT / "dsd" or "integrations" in p.parts]
    assert engine_files
    for path in engine_files:
        bad = sorted(m for m in imported_modules(path) if any(_under(m, room) for room in ROOMS))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the engine must not need the suite"


def test_dsd_never_imports_tasks() -> None:
    for path in python_files("dsd"):
        bad = sorted(m for m in imported_modules(path) if _under(m, "tasks"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_task_imports_another_task() -> None:
    tasks = sorted(p.name for p in (ROOT / "tasks").iterdir() if (p / "__init__.py").is_file())
    assert {"imagenet", "flickr8k", "wsj"} <= set(tasks)
    for task in tasks:
        for path in python_files(f"tasks/{task}"):
            others = [t for t in tasks if t != task]
            bad = sorted(m for m in imported_modules(path) for t in others if _under(m, f"tasks.{t}"))
            assert not bad, f"{path.relative_to(ROOT)} imports another task: {bad}"


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    """The checks above can fail: the parser finds absolute, relative and nested imports."""
    sample = tmp_path / "probe.py"
    sample.write_text("import tasks.wsj\nfrom .run import loop\n\ndef f():\n    from tasks import imagenet\n")
    found = imported_modules(sample, package="dsd")
    assert {"tasks.wsj", "dsd.run", "dsd.run.loop", "tasks", "tasks.imagenet"} <= found
