"""The conventions a newcomer expects: -v/-q anywhere, results on stdout, additive output,
near-miss family names, ``families``, ``build --dry-run``, and exit codes through nox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO, run_wheelyard

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _manifest(out: Path) -> dict[str, object]:
    return json.loads((out / "build-manifest.json").read_text())


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_verbosity_flags_after_the_subcommand(tmp_path: Path) -> None:
    quiet = _ok(run_wheelyard("build", "-q", "gfx120X-all", "--dry-run", "--out", tmp_path / "o"))
    assert "building gfx120X-all" not in quiet.stderr  # progress dropped
    assert "rocm_sdk_core" in quiet.stdout  # results kept
    _ok(run_wheelyard("families", "-v"))
    _ok(run_wheelyard("-q", "families"))
    both = run_wheelyard("build", "-v", "-q", "--dry-run")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr


def test_results_on_stdout_progress_on_stderr(tmp_path: Path) -> None:
    result = _ok(run_wheelyard("build", "gfx120X-all", "--out", tmp_path / "out"))
    assert "building gfx120X-all" in result.stderr
    assert "writing wheels" in result.stderr
    assert "building" not in result.stdout
    assert "rocm_sdk_core-7.10.0.dev0" in result.stdout
    assert "wrote 4 wheels to" in result.stdout
    assert "ELF dependency closure" in result.stdout


def test_a_second_family_keeps_the_first(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ok(run_wheelyard("build", "-q", "gfx120X-all", "--out", out))
    first = _snapshot(out / "dist" / "gfx120X-all")
    (out / "dist" / "notes.txt").write_text("mine")  # a file wheelyard did not write
    _ok(run_wheelyard("build", "-q", "gfx94X-dcgpu", "--out", out))
    assert _snapshot(out / "dist" / "gfx120X-all") == first
    assert (out / "dist" / "gfx94X-dcgpu").is_dir()
    assert (out / "dist" / "notes.txt").read_text() == "mine"
    manifest = _manifest(out)
    assert manifest["families"] == ["gfx120X-all", "gfx94X-dcgpu"]
    listed = {entry["path"] for entry in manifest["files"]}  # type: ignore[attr-defined]
    on_disk = {p.relative_to(out).as_posix() for p in (out / "dist").rglob("*.whl")}
    assert listed == on_disk
    closure = json.loads((out / "closure-report.json").read_text())
    wheels = {item["wheel"] for item in closure["files"]}
    assert {"rocm-sdk-libraries-gfx120X-all", "rocm-sdk-libraries-gfx94X-dcgpu"} <= wheels


def test_a_changed_generic_wheel_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ok(run_wheelyard("build", "-q", "gfx120X-all", "--out", out))
    before = _snapshot(out)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "400000000"}  # other timestamps, other bytes
    result = run_wheelyard("build", "-q", "gfx94X-dcgpu", "--out", out, env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "rocm_sdk_core-7.10.0.dev0" in errors[0]
    assert "--clean" in result.stderr
    assert "Traceback" not in result.stderr
    assert _snapshot(out) == before


def test_a_foreign_file_under_a_new_name_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ok(run_wheelyard("build", "-q", "gfx120X-all", "--out", out, "--clean"))
    dry = _ok(run_wheelyard("build", "-q", "gfx94X-dcgpu", "--dry-run", "--out", out))
    name = next(word for word in dry.stdout.split() if "libraries_gfx94x" in word)
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(b"not ours")
    result = run_wheelyard("build", "-q", "gfx94X-dcgpu", "--out", out)
    assert result.returncode == 1
    assert "not listed in the build manifest" in result.stderr
    assert (out / name).read_bytes() == b"not ours"


def test_clean_starts_from_empty(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ok(run_wheelyard("build", "-q", "gfx120X-all", "gfx94X-dcgpu", "--out", out))
    _ok(run_wheelyard("build", "-q", "gfx110X-all", "--out", out, "--clean"))
    assert sorted(p.name for p in (out / "dist").iterdir() if p.is_dir()) == ["gfx110X-all"]
    assert _manifest(out)["families"] == ["gfx110X-all"]


def test_rebuilding_a_family_replaces_its_wheels_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _ok(run_wheelyard("build", "-q", "gfx120X-all", "gfx94X-dcgpu", "--out", out))
    result = _ok(run_wheelyard("build", "gfx120X-all", "--out", out))
    assert "replaced 3 files of the rebuilt families" in result.stderr
    assert _manifest(out)["families"] == ["gfx120X-all", "gfx94X-dcgpu"]


@pytest.mark.parametrize(
    ("typo", "hint"),
    [
        ("gfx120x-all", "did you mean 'gfx120X-all'? Family names are case-sensitive"),
        ("gfx120X-al", "did you mean 'gfx120X-all'"),
        ("not-a-gpu", "run `wheelyard families`"),
    ],
)
def test_near_miss_family_names(tmp_path: Path, typo: str, hint: str) -> None:
    result = run_wheelyard("build", typo, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert f"error: unknown GPU family {typo!r}" in result.stderr
    assert hint in result.stderr
    assert "gfx1151, gfx1152" not in result.stderr  # no wall of names


def test_families_lists_families_and_targets() -> None:
    table = _ok(run_wheelyard("families"))
    assert "gfx94X-dcgpu" in table.stdout
    assert "gfx1200 gfx1201" in table.stdout
    document = json.loads(_ok(run_wheelyard("families", "--json")).stdout)
    assert document["gfx110X-all"] == ["gfx1100", "gfx1101", "gfx1102", "gfx1103"]
    assert document["gfx94X-dcgpu"] == ["gfx942"]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    result = _ok(run_wheelyard("build", "gfx120X-all", "gfx94X-dcgpu", "--dry-run", "--out", out))
    assert "dry run: nothing written" in result.stdout
    assert "dist/gfx94X-dcgpu/rocm-7.10.0.dev0-py3-none-any.whl" in result.stdout
    assert "would write 7 wheels" in result.stdout
    assert not (tmp_path / "nested").exists()


@pytest.mark.skipif(shutil.which("nox") is None, reason="nox is not on PATH")
def test_nox_session_passes_the_exit_code_through(tmp_path: Path) -> None:
    env = {
        **os.environ,
        # wheelyard of this environment, without nox creating and filling a new one
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        ["nox", "--no-venv", "-f", str(REPO / "noxfile.py"), "-s", "families", "--", "--bogus"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unrecognized arguments: --bogus" in result.stdout + result.stderr
    assert "wheelyard exited with code 2" in result.stderr
