"""wheelyard.testing: the safe install commands, pip's constraints, and the bounded retry."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from wheelyard.errors import WheelTestError
from wheelyard.testing import FamilyTestOptions, plan_test, run_test
from wheelyard.testing.run import _install

FAMILY = "gfx94X-dcgpu"
CORE = "rocm_sdk_core-7.10.0-py3-none-manylinux_2_28_x86_64.whl"
META = "rocm-7.10.0-py3-none-any.whl"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / FAMILY).mkdir(parents=True)
    (root / CORE).write_bytes(b"")
    (root / FAMILY / META).write_bytes(b"")
    (root / FAMILY / "index.html").write_text("<html></html>")
    return root


def _options(tmp: Path, find_links: str, **kw: object) -> FamilyTestOptions:
    base: dict[str, object] = dict(
        family=FAMILY, find_links=find_links, version="7.10.0",
        venv=tmp / "venv", junitxml=tmp / "r.xml",
    )  # fmt: skip
    return FamilyTestOptions(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_everything_in_the_page_means_no_index(tmp_path: Path, dist: Path, installer: str) -> None:
    plan = plan_test(_options(tmp_path, str(dist), installer=installer))
    assert "--no-index" in plan.install
    assert plan.install[-1] == "rocm[libraries,devel]==7.10.0"
    links = [plan.install[i + 1] for i, arg in enumerate(plan.install) if arg == "--find-links"]
    assert links == [str(dist), str(dist / FAMILY)]
    assert plan.test[1:3] == ("test", "--junitxml")


def test_uv_with_a_deps_index_puts_ours_first(tmp_path: Path) -> None:
    url = "https://b.example/run/python/gfx94X-dcgpu/index.html"
    plan = plan_test(_options(tmp_path, url, installer="uv", deps_index="https://deps/simple"))
    command = " ".join(plan.install)
    assert "--index https://b.example/run/python/gfx94X-dcgpu/simple/" in command
    assert "--default-index https://deps/simple" in command
    assert "--no-index" not in plan.install
    assert "--extra-index-url" not in command


def test_pip_with_a_deps_index_pins_our_projects_to_our_wheels(tmp_path: Path, dist: Path) -> None:
    plan = plan_test(_options(tmp_path, str(dist), deps_index="https://deps/simple"))
    assert plan.constraints == (
        f"rocm @ {(dist / FAMILY / META).resolve().as_uri()}",
        f"rocm-sdk-core @ {(dist / CORE).resolve().as_uri()}",
    )
    assert "--constraint" in plan.install
    assert "--index-url" in plan.install


def test_pip_reads_the_remote_page_for_its_pins(tmp_path: Path) -> None:
    url = "https://b.example/run/python/gfx94X-dcgpu/index.html"
    page = f'<a href="../{CORE}#sha256=00">x</a><a href="{META}">y</a>'
    options = _options(tmp_path, url, deps_index="https://deps/simple")
    plan = plan_test(options, fetch=lambda _: page)
    assert plan.constraints == (
        f"rocm @ https://b.example/run/python/gfx94X-dcgpu/{META}",
        f"rocm-sdk-core @ https://b.example/run/python/{CORE}",
    )


def test_a_dist_without_the_family_page_is_refused(tmp_path: Path, dist: Path) -> None:
    (dist / FAMILY / "index.html").unlink()
    with pytest.raises(WheelTestError, match="index.html is missing"):
        plan_test(_options(tmp_path, str(dist)))


class _Installs:
    def __init__(self, outputs: list[tuple[int, str]]) -> None:
        self.outputs = outputs
        self.calls = 0

    def __call__(
        self, cmd: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        code, text = self.outputs[min(self.calls, len(self.outputs) - 1)]
        self.calls += 1
        return subprocess.CompletedProcess(list(cmd), code, text)


def _retry(tmp: Path, dist: Path, runner: _Installs, window: float) -> list[float]:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    plan = plan_test(_options(tmp, str(dist), retry_window=window))
    _install(plan, {}, runner, sleep, lambda: now[0])
    return slept


def test_a_network_failure_is_retried(tmp_path: Path, dist: Path) -> None:
    runner = _Installs([(1, "Connection reset by peer"), (1, "Max retries exceeded"), (0, "")])
    assert _retry(tmp_path, dist, runner, 60) == [2.0, 4.0]
    assert runner.calls == 3


def test_retries_stop_at_the_window(tmp_path: Path, dist: Path) -> None:
    runner = _Installs([(1, "Temporary failure in name resolution")])
    with pytest.raises(WheelTestError, match="a network error persisted"):
        _retry(tmp_path, dist, runner, 20)
    assert runner.calls == 4  # slept 2 + 4 + 8; the next 16 would pass the 20 s window


def test_a_resolution_failure_is_not_retried(tmp_path: Path, dist: Path) -> None:
    runner = _Installs([(1, "No matching distribution found for rocm==7.10.0")])
    with pytest.raises(WheelTestError, match="the installer refused"):
        _retry(tmp_path, dist, runner, 60)
    assert runner.calls == 1


def test_a_non_venv_directory_is_never_deleted(tmp_path: Path, dist: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "keep.txt").write_text("mine")
    with pytest.raises(WheelTestError, match="is not a virtual environment"):
        run_test(plan_test(_options(tmp_path, str(dist))), runner=_Installs([(0, "")]))
    assert (venv / "keep.txt").read_text() == "mine"
