"""``wheelyard build --strict``: the committed sample builds without a warning, and a dangling
symlink (added to a copy of the sample) is a warning by default and an error with --strict."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from tests.conftest import SAMPLE, SAMPLE_FAMILIES, run_wheelyard

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LINK = "core-hip_run_generic/core/hipcc/stage/bin/hipcc.pl"
TARGET = "../share/hip/missing-hipcc.pl"
REPORTED = f"core-hip_run_generic/bin/hipcc.pl -> {TARGET}"  # artifact / path below the root


@pytest.fixture(scope="module")
def dangling_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample with one dangling symlink (read only for the tests)."""
    copy = tmp_path_factory.mktemp("dangling") / "artifacts"
    shutil.copytree(SAMPLE, copy, symlinks=True)
    link = copy / LINK
    link.parent.mkdir(parents=True)
    link.symlink_to(TARGET)
    assert link.is_symlink()
    assert not link.exists()
    return copy


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_strict_build_of_the_sample_has_no_warning(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_wheelyard(
        "build", "--strict", "gfx120X-all", "gfx94X-dcgpu", "gfx110X-all", "--out", out
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _warnings(result.stderr) == []
    assert "warning:" not in result.stdout
    built = sorted(path.parent.name for path in out.glob("dist/*/rocm-*.whl"))
    assert built == sorted(SAMPLE_FAMILIES)


def test_dangling_symlink_is_dropped_with_a_warning_by_default(
    tmp_path: Path, dangling_sample: Path
) -> None:
    out = tmp_path / "out"
    result = run_wheelyard("build", "gfx120X-all", "--artifacts", dangling_sample, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"warning: dangling symlink dropped: {REPORTED}" in _warnings(result.stderr)
    (core,) = out.glob("dist/rocm_sdk_core-*.whl")
    with zipfile.ZipFile(core) as wheel:
        names = wheel.namelist()
    assert any(name.endswith("/bin/hipconfig") for name in names)  # its artifact is packaged
    assert [name for name in names if "hipcc.pl" in name] == []


def test_dangling_symlink_fails_a_strict_build(tmp_path: Path, dangling_sample: Path) -> None:
    out = tmp_path / "out"
    result = run_wheelyard(
        "build", "--strict", "gfx120X-all", "--artifacts", dangling_sample, "--out", out
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert REPORTED in result.stderr
    assert not out.exists(), "a failed build must leave nothing in --out"
