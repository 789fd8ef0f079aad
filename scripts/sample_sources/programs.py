"""Place the console-script programs of programs.toml and the license files of licenses.toml
into the sample's artifacts.

Loaded by ``scripts/make_sample_artifacts.py`` by path (``runpy``), which passes its own
``Artifact`` and ``Entry`` classes in, so this file imports nothing of it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TABLES = (HERE / "programs.toml", HERE / "licenses.toml")
TOOL = "sample-tool"  # the output of src/tool.c in binaries.toml


def _rows() -> list[tuple[Path, dict[str, Any]]]:
    rows = []
    for table in TABLES:
        with table.open("rb") as stream:
            rows += [(table, row) for row in tomllib.load(stream)["artifact"]]
    return rows


def _entries(row: dict[str, Any], entry: Callable[..., Any]) -> list[Any]:
    """The copies of the tool (executable), the symlinks and the text files of one table."""
    copies = [entry(path=path, built=TOOL, mode=0o755) for path in row.get("copies", ())]
    links = [entry(path=path, link=target) for path, target in row.get("links", {}).items()]
    texts = [
        entry(path=path, data=(HERE / source).read_bytes())
        for path, source in row.get("files", {}).items()
    ]
    return copies + links + texts


def add_programs(
    artifacts: list[Any], artifact: Callable[..., Any], entry: Callable[..., Any]
) -> list[Any]:
    """``artifacts`` with the files of the tables added: to the artifacts named there that
    exist, and as new artifacts (after the others, in the tables' order) for the rest."""
    by_name = {a.name: index for index, a in enumerate(artifacts)}
    result = list(artifacts)
    for table, row in _rows():
        name = row["artifact"]
        index = by_name.get(name)
        if index is None:
            if not row.get("roots"):
                raise SystemExit(f"error: {table}: new artifact {name} needs `roots`")
            result.append(artifact(name=name, roots=tuple(row["roots"])))
            index = by_name[name] = len(result) - 1
        elif "roots" in row:
            raise SystemExit(f"error: {table}: {name} exists; its roots are set by the script")
        old = result[index]
        stage = row.get("stage", old.roots[0])
        if stage not in old.roots:
            raise SystemExit(f"error: {table}: {name} has no stage root {stage}")
        added = tuple((stage, e) for e in _entries(row, entry))
        result[index] = dataclasses.replace(old, files=(*old.files, *added))
    return result
