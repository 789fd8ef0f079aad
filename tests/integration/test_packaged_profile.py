"""wheelyard installed as a regular (non-editable) package carries the ROCm profile and builds
from any directory; ``--artifacts`` has no default there.

The project is copied (without build outputs) and installed with uv into a fresh venv, offline
and without dependencies (setuptools, the build backend, comes from uv's cache, as when the test
venv was made); the dependencies are made importable with a ``.pth`` line naming this venv's
site-packages, where no wheelyard is importable (its editable hook is not processed from there).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

import pytest
from tests.conftest import REPO, SAMPLE
from tests.integration._venv import UV, Venv, create_uv_venv, isolated_env, run

pytestmark = pytest.mark.integration

FAMILY = "gfx120X-all"
_SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "packaging")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    tmp = tmp_path_factory.mktemp("packaged")
    project = tmp / "project"
    for name in _SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=_IGNORE)
        else:
            project.mkdir(exist_ok=True)
            shutil.copy2(source, project / name)
    env = isolated_env(tmp)
    if "UV_CACHE_DIR" in os.environ:  # the cache that holds setuptools, for --offline
        env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    else:
        del env["UV_CACHE_DIR"]
    venv = create_uv_venv(tmp / "venv", env)
    run(
        [UV, "pip", "install", "--offline", "--no-deps", "--python", venv.python, project],
        env,
        cwd=tmp,
    )
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (venv.site_packages / "_wheelyard_test_deps.pth").write_text("\n".join(sorted(paths)) + "\n")
    return venv


def _wheelyard(venv: Venv, *args: str | Path, cwd: Path) -> tuple[int, str]:
    result = run([venv.bin / "wheelyard", *args], venv.env, cwd=cwd, check=False, timeout=180)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_the_installed_package_holds_the_profile(installed: Venv) -> None:
    code = (
        "import wheelyard, wheelyard.profile as p\n"
        "print(wheelyard.__file__); print(p.default_profile()); print(p.checkout_root())"
    )
    module, profile, checkout = run(
        [installed.python, "-c", code], installed.env, cwd=installed.root
    ).stdout.splitlines()
    assert Path(module).is_relative_to(installed.site_packages)
    assert checkout == "None"
    packaged = Path(profile)
    assert packaged == installed.site_packages / "wheelyard" / "profiles" / "rocm"
    for name in ("packages.toml", "families.toml", "LICENSE", "templates/rocm_sdk/__init__.py"):
        assert (packaged / name).read_bytes() == (REPO / "packaging" / "rocm" / name).read_bytes()


@pytest.mark.timeout(300)
def test_build_from_another_directory(installed: Venv, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(SAMPLE, artifacts, symlinks=True)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    out = tmp_path / "out"
    code, output = _wheelyard(
        installed, "build", "-q", "--artifacts", artifacts, FAMILY, "--out", out, cwd=cwd
    )
    assert code == 0, output
    wheels = sorted(p.relative_to(out / "dist").as_posix() for p in (out / "dist").rglob("*.whl"))
    assert len(wheels) == 4, wheels
    assert any(w.startswith(f"{FAMILY}/rocm-") for w in wheels)
    assert sorted(cwd.iterdir()) == []


@pytest.mark.timeout(300)
def test_artifacts_is_required_outside_the_repository(installed: Venv, tmp_path: Path) -> None:
    code, output = _wheelyard(installed, "build", FAMILY, "--out", tmp_path / "out", cwd=tmp_path)
    assert code == 2, output
    assert output.count("error:") == 1
    assert "--artifacts" in output.split("error:", 1)[1].splitlines()[0]
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists()
