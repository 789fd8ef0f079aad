"""scripts/bench_real.py on the bundled sample: the table is printed with sane numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO, SAMPLE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRIPT = REPO / "scripts" / "bench_real.py"
ROWS = ("wall", "CPU (user + sys)", "peak RSS", "written to disk", "peak disk use", "wheel bytes")
UNITS = {"s": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30}


def _cells(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        parts = [part.strip() for part in line.strip().strip("|").split("|")]
        if len(parts) == 2 and parts[0] in ROWS:
            rows[parts[0]] = parts[1]
    return rows


def _value(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+) (s|KiB|MiB|GiB)", text)
    assert match, text
    return float(match.group(1)) * UNITS[match.group(2)]


def test_bench_real_prints_the_table_for_the_sample(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = [sys.executable, str(SCRIPT), str(SAMPLE), "--families", "gfx120X-all"]
    argv += ["--jobs", "2", "--scratch", str(scratch)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 0, done.stderr
    assert "| | wheelyard |" in done.stdout
    cells = _cells(done.stdout)
    assert sorted(cells) == sorted(ROWS), done.stdout
    assert 0.05 < _value(cells["wall"]) < 30
    assert 0 < _value(cells["CPU (user + sys)"]) < 60
    assert 10 * 2**20 < _value(cells["peak RSS"]) < 300 * 2**20
    assert 0 < _value(cells["written to disk"]) < 2**30
    assert 0 < _value(cells["peak disk use"]) < 2**30
    # The wheel bytes are those of the same build made directly.
    wheel_bytes = int(cells["wheel bytes"].split()[0].replace(",", ""))
    out = tmp_path / "direct"
    direct = [sys.executable, "-m", "wheelyard", "build", "--artifacts", str(SAMPLE)]
    direct += ["--out", str(out), "--jobs", "2", "-q", "gfx120X-all"]
    subprocess.run(direct, check=True, capture_output=True, timeout=50)
    assert wheel_bytes == sum(p.stat().st_size for p in (out / "dist").rglob("*.whl"))
    assert list(scratch.iterdir()) == []  # the benchmark cleaned up after itself
