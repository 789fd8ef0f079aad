"""Shared fixtures: the repository's profile and sample, artifact trees made to order, and one
real build of the sample families shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "packaging" / "rocm"
SAMPLE = REPO / "samples" / "rocm-artifacts"
SAMPLE_FAMILIES = ("gfx110X-all", "gfx120X-all", "gfx94X-dcgpu")


@dataclass(frozen=True)
class Link:
    """A symlink to create in an artifact tree."""

    target: str


TreeSpec = Mapping[str, "bytes | str | Link"]


def make_artifact(
    parent: Path,
    name: str,
    files: TreeSpec,
    *,
    root: str = "stage",
    extra_roots: tuple[str, ...] = (),
) -> Path:
    """Write artifact ``parent/name`` with one stage root holding ``files``."""
    artifact = parent / name
    stage = artifact / root
    stage.mkdir(parents=True, exist_ok=True)
    (artifact / "artifact_manifest.txt").write_text("\n".join((root, *extra_roots)) + "\n")
    for rel, content in sorted(files.items()):
        path = stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            os.symlink(content.target, path)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
    return artifact


def run_wheelyard(
    *args: str | Path, cwd: Path = REPO, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a subprocess, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "wheelyard", *map(str, args)],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def artifact_factory(tmp_path: Path) -> Callable[..., Path]:
    directory = tmp_path / "artifacts"
    directory.mkdir()

    def factory(name: str, files: TreeSpec, **kwargs: object) -> Path:
        return make_artifact(directory, name, files, **kwargs)  # type: ignore[arg-type]

    factory.directory = directory  # type: ignore[attr-defined]
    return factory


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real build of the three sample families, shared read-only by integration tests."""
    out = tmp_path_factory.mktemp("sample-build") / "build"
    result = run_wheelyard("build", *SAMPLE_FAMILIES, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out
