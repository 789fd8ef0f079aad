"""The runtime template runs on the oldest Python the wheels declare (``requires_python``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.conftest import PROFILE
from tests.integration._venv import UV, Venv, _with_site, find_links, isolated_env, run

from wheelyard.profile import load_profile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _oldest_python() -> str:
    floor = load_profile(PROFILE).requires_python
    match = re.fullmatch(r">=\s*(\d+\.\d+)", floor)
    assert match, f"requires_python {floor!r} is not of the form >=X.Y"
    return match.group(1)


def _interpreter(version: str) -> str | None:
    """A working ``pythonX.Y``: on PATH, or a pyenv install that its shim does not activate."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{version}*/bin/python{version}"))
    for candidate in candidates:
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


OLDEST = _oldest_python()
INTERPRETER = _interpreter(OLDEST)


@pytest.mark.skipif(
    INTERPRETER is None,
    reason=f"python{OLDEST} (the wheels' requires_python floor) is not installed here",
)
def test_runtime_works_on_the_oldest_declared_python(sample_build: Path, tmp_path: Path) -> None:
    assert INTERPRETER is not None
    env = isolated_env(tmp_path)
    root = tmp_path / "venv"
    run([UV, "venv", "--quiet", "--python", INTERPRETER, root], env, cwd=tmp_path)
    venv: Venv = _with_site(root, env)
    version = venv.run(
        venv.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"
    ).stdout
    assert version.strip() == OLDEST
    family = "gfx120X-all"
    run(
        [UV, "pip", "install", "--quiet", "--python", venv.python,
         *find_links(sample_build, family), "rocm[libraries,devel]"],
        env,
        cwd=tmp_path,
    )  # fmt: skip
    result = venv.script("rocm-sdk", "test", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 failed" in result.stdout
    version_line = venv.script("rocm-sdk", "version").stdout.strip()
    assert version_line.startswith("7.10.0")
