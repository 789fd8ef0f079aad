"""The source tree reads as the flow: subpackages talk through their ``__init__`` only, the
import graph between them has no cycles, modules and functions stay small, and ``packaging``
is the library, not our data folder."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import packaging

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "wheelyard"
SUBPACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> Iterator[Path]:
    yield from sorted(SRC.rglob("*.py"))


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _owner(path: Path) -> str | None:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else None


def test_subpackages_import_each_other_through_init_only() -> None:
    offenders = []
    for path in _modules():
        mine = _owner(path)
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "wheelyard" or len(parts) < 3 or parts[1] not in SUBPACKAGES:
                continue
            if parts[1] != mine:
                offenders.append(f"{path.relative_to(SRC)} imports {module}")
    assert offenders == []


def test_no_import_cycles_between_subpackages() -> None:
    graph: dict[str, set[str]] = {name: set() for name in SUBPACKAGES}
    for path in _modules():
        mine = _owner(path)
        if mine is None or mine == "cli":
            continue
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "wheelyard" and len(parts) > 1 and parts[1] in set(graph) - {mine}:
                graph[mine].add(parts[1])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start]
        )

    assert [name for name in graph if reaches(name, name, set())] == []


def test_every_subpackage_says_what_it_offers() -> None:
    for name in SUBPACKAGES:
        docstring = ast.get_docstring(ast.parse((SRC / name / "__init__.py").read_text()))
        assert docstring, f"wheelyard.{name} has no docstring"


def _all_python() -> Iterator[Path]:
    """Everything the project writes in Python: library, runtime template, scripts, tasks."""
    yield from _modules()
    yield from sorted((REPO / "packaging").rglob("*.py"))
    yield from sorted((REPO / "scripts").rglob("*.py"))
    yield from (REPO / "tasks.py", REPO / "noxfile.py")


def test_modules_and_functions_stay_small() -> None:
    long_modules, long_functions = [], []
    for path in _all_python():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(str(path.relative_to(REPO)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.name} ({length})")
    assert long_modules == []
    assert long_functions == []


def test_packaging_is_the_library_not_the_profile_folder() -> None:
    assert "site-packages" in Path(packaging.__file__).parts
