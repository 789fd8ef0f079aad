"""``--out`` is checked before any work, swapped in atomically, locked against a second build,
and cleaned of what killed builds left behind; OS errors and report files never give
tracebacks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import REPO, run_wheelyard

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _one_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return errors[0]


def _consistent(out: Path) -> dict[str, str]:
    """Every file the manifest lists is there with its sha256; return path -> sha256."""
    manifest = json.loads((out / "build-manifest.json").read_text())
    found = {}
    for entry in manifest["files"]:
        data = (out / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        found[entry["path"]] = entry["sha256"]
    return found


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("keep me")
    line = _one_error(run_wheelyard("build", "--out", out), "is a file")
    assert "--out" in line
    assert out.read_text() == "keep me"


def test_out_inside_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _one_error(run_wheelyard("build", "--out", tmp_path / "file" / "out"), "which is a file")


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_out_overlapping_the_artifacts_is_refused(tmp_path: Path, where: str) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    out = {"same": artifacts, "inside": artifacts / "out", "around": tmp_path}[where]
    _one_error(
        run_wheelyard("build", "--artifacts", artifacts, "--out", out), "overlaps --artifacts"
    )
    assert sorted(artifacts.iterdir()) == []


def test_os_errors_are_one_line(tmp_path: Path) -> None:
    out = tmp_path / ("x" * 300) / "out"
    _one_error(run_wheelyard("build", "--out", out), "File name too long")


def test_unwritable_github_output_is_a_warning(tmp_path: Path) -> None:
    env = {**os.environ, "GITHUB_OUTPUT": str(tmp_path / "missing-dir" / "output")}
    result = run_wheelyard("build", "-q", "gfx120X-all", "--out", tmp_path / "out", env=env)
    assert result.returncode == 0, result.stderr
    assert "warning: cannot write GITHUB_OUTPUT file" in result.stderr
    _consistent(tmp_path / "out")


def _spawn(out: Path, epoch: str, stderr: Path | None = None) -> subprocess.Popen[bytes]:
    with open(stderr or os.devnull, "wb") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "wheelyard", "build", "-q", "gfx120X-all", "--out", str(out)],
            cwd=REPO,
            env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )


def test_a_killed_build_leaves_out_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_wheelyard("build", "-q", "gfx120X-all", "--out", out).returncode == 0
    old = _consistent(out)
    # Time one rebuild with other timestamps (other bytes), then kill others along the way.
    started = time.monotonic()
    assert _spawn(tmp_path / "timing", "500000000").wait(timeout=120) == 0
    duration = time.monotonic() - started
    outcomes = set()
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.85, 0.95):
        process = _spawn(out, "500000000")
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        now = _consistent(out)  # complete: either the old output or the new one
        outcomes.add("old" if now == old else "new")
        if now != old:
            rebuild = run_wheelyard("build", "-q", "gfx120X-all", "--out", out, "--clean")
            assert rebuild.returncode == 0
            assert _consistent(out) == old
    assert "old" in outcomes
    assert run_wheelyard("build", "-q", "gfx120X-all", "--out", out).returncode == 0
    assert sorted(p.name for p in tmp_path.glob(".out.tmp-*")) == []


def test_concurrent_builds_do_not_mix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    logs = [tmp_path / "first.err", tmp_path / "second.err"]
    first, second = _spawn(out, "500000000", logs[0]), _spawn(out, "600000000", logs[1])
    codes = [p.wait(timeout=120) for p in (first, second)]
    results = [(code, log.read_text()) for code, log in zip(codes, logs, strict=True)]
    for code, stderr in results:
        assert "Traceback" not in stderr
        # Overlapping: the second is refused as "in use". One after the other: the second
        # finds the first's generic wheels with other timestamps, and refuses to replace them.
        refused = "in use by another build" in stderr or "one filename must mean one" in stderr
        assert code == 0 or (code == 1 and refused), stderr
    assert any(code == 0 for code, _ in results)
    _consistent(out)
    assert sorted(p.name for p in tmp_path.glob(".out.tmp-*")) == []
