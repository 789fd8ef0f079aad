"""promote rc -> final: installed wheels report the final version everywhere, pins resolve."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from tests.conftest import run_wheelyard
from tests.integration._release import FAMILY, RC, build_sample
from tests.integration._venv import UV, create_uv_venv, isolated_env

from wheelyard.release import promote

pytestmark = pytest.mark.integration
FINAL = "7.10.0"


@pytest.fixture(scope="module")
def rc_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample(tmp_path_factory.mktemp("promote") / "build")


def test_promoted_set_installs_and_reports_the_final_version(rc_dist: Path, tmp_path: Path) -> None:
    out = tmp_path / "final"
    env = {**os.environ, "COLUMNS": "250"}
    result = run_wheelyard(
        "promote", "--dist", rc_dist, "--to-version", FINAL, "--out", out, "--no-install", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.whl"))
    assert names == [
        f"{FAMILY}/rocm-7.10.0-py3-none-any.whl",
        f"{FAMILY}/rocm_sdk_devel_gfx120x_all-7.10.0-py3-none-manylinux_2_28_x86_64.whl",
        f"{FAMILY}/rocm_sdk_libraries_gfx120x_all-7.10.0-py3-none-manylinux_2_28_x86_64.whl",
        "rocm_sdk_core-7.10.0-py3-none-manylinux_2_28_x86_64.whl",
    ]
    for wheel in out.rglob("*.whl"):  # no member or name anywhere still says rc1
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                assert RC not in info.filename
                if info.file_size < 1 << 20:
                    assert RC.encode() not in archive.read(info), (wheel.name, info.filename)

    venv = create_uv_venv(tmp_path / "venv", isolated_env(tmp_path))
    # No --pre: the final set must install as a plain release, every pin resolving.
    venv.run(
        UV, "pip", "install", "--python", venv.python, "--no-index", "--find-links", out,
        "--find-links", out / FAMILY, f"rocm[libraries,devel]=={FINAL}", timeout=240,
    )  # fmt: skip
    dists = venv.dists()
    assert dists == {
        "rocm": FINAL,
        "rocm-sdk-core": FINAL,
        "rocm-sdk-devel-gfx120x-all": FINAL,
        "rocm-sdk-libraries-gfx120x-all": FINAL,
    }
    code = "import importlib.metadata as m; print(m.version('rocm'), m.version('rocm-sdk-core'))"
    assert venv.run(venv.python, "-I", "-c", code).stdout.split() == [FINAL, FINAL]
    assert venv.script("rocm-sdk", "version").stdout.strip() == FINAL
    assert venv.run(UV, "pip", "check", "--python", venv.python).returncode == 0


def test_promotion_is_deterministic_and_post_releases_work(rc_dist: Path, tmp_path: Path) -> None:
    first = promote(rc_dist, "7.10.0.post1", tmp_path / "a")
    promote(rc_dist, "7.10.0.post1", tmp_path / "b")
    assert first.new == "7.10.0.post1"
    for source, target in first.files:
        twin = tmp_path / "b" / target.relative_to(tmp_path / "a")
        assert target.read_bytes() == twin.read_bytes(), source.name
    with zipfile.ZipFile(tmp_path / "a" / FAMILY / "rocm-7.10.0.post1-py3-none-any.whl") as meta:
        text = meta.read("rocm-7.10.0.post1.dist-info/METADATA").decode()
    assert "Requires-Dist: rocm-sdk-core==7.10.0.post1" in text
    assert '==7.10.0.post1; extra == "libraries"' in text


@pytest.mark.parametrize("target", ["7.10.0rc2", "7.11.0", "7.9.0", "7.10.0.dev0"])
def test_a_target_that_does_not_succeed_is_refused(
    rc_dist: Path, tmp_path: Path, target: str
) -> None:
    out = tmp_path / "out"
    result = run_wheelyard("promote", "--dist", rc_dist, "--to-version", target, "--out", out)
    assert result.returncode == 2
    assert f"error: version {target!r}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
