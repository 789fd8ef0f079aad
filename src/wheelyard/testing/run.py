"""``wheelyard test``: install a family's wheels into a fresh environment, run ``rocm-sdk test``.

Plan, then apply: :func:`plan_test` resolves where the wheels are and every command line;
:func:`run_test` creates the environment, installs (retrying network failures within a bounded
window), then runs ``rocm-sdk test --junitxml FILE`` in its own process group, killed whole when
the timeout passes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from wheelyard.errors import ExternalToolError, WheelTestError
from wheelyard.testing.installers import (
    InstallerName,
    InstallSource,
    installer_for,
    isolated_environment,
)
from wheelyard.testing.sources import Fetch, constraints, family_source

Runner = Callable[[Sequence[str], Mapping[str, str]], subprocess.CompletedProcess[str]]
_NETWORK = re.compile(
    r"connection (?:refused|reset|aborted)|timed? ?out|temporary failure in name resolution|"
    r"name or service not known|max retries exceeded|failed to fetch|error sending request|"
    r"remotedisconnected|\b50[234]\b|network is unreachable",
    re.IGNORECASE,
)


@dataclass(frozen=True, kw_only=True)
class FamilyTestOptions:
    """What ``wheelyard test`` was asked to do."""

    family: str
    find_links: str
    version: str | None
    extras: tuple[str, ...] = ("libraries", "devel")
    installer: InstallerName = "pip"
    deps_index: str | None = None
    pre: bool = False
    timeout: float = 1800.0
    venv: Path
    junitxml: Path
    retry_window: float = 300.0
    uv: str | None = None


@dataclass(frozen=True, kw_only=True)
class FamilyTestPlan:
    options: FamilyTestOptions
    requirement: str
    create: tuple[str, ...]
    install: tuple[str, ...]
    constraints: tuple[str, ...]
    test: tuple[str, ...]


def requirement(options: FamilyTestOptions) -> str:
    extras = f"[{','.join(options.extras)}]" if options.extras else ""
    pin = f"=={options.version}" if options.version else ""
    return f"rocm{extras}{pin}"


def plan_test(options: FamilyTestOptions, *, fetch: Fetch | None = None) -> FamilyTestPlan:
    """Every command of the test, and pip's constraints when dependencies come from an index."""
    needs_listing = options.deps_index is not None and options.installer == "pip"
    source = family_source(
        options.find_links, options.family, fetch=fetch if needs_listing else None
    )
    pins = tuple(constraints(source.wheels, options.version)) if needs_listing else ()
    if needs_listing and not pins:
        raise WheelTestError(
            options.family,
            f"no wheels of version {options.version} found at {options.find_links}",
            hint="check --find-links and --version, or drop --deps-index",
        )
    install_source = InstallSource(
        find_links=source.find_links,
        our_index=source.simple_index,
        deps_index=options.deps_index,
        constraints=options.venv.with_name(options.venv.name + "-constraints.txt")
        if pins
        else None,
        pre=options.pre,
    )
    installer = installer_for(options.installer, uv=options.uv)
    wanted = requirement(options)
    rocm_sdk = options.venv / "bin" / "rocm-sdk"
    return FamilyTestPlan(
        options=options,
        requirement=wanted,
        create=tuple(installer.create_command(options.venv)),
        install=tuple(installer.install_command(options.venv, wanted, install_source)),
        constraints=pins,
        test=(str(rocm_sdk), "test", "--junitxml", str(options.junitxml)),
    )


INSTALL_TIMEOUT = 1800.0
"""Seconds one venv creation or install may take before it is stopped (a stalled index)."""


def subprocess_runner(
    cmd: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run an installer step, bounded by :data:`INSTALL_TIMEOUT`; a hang is an error."""
    try:
        return subprocess.run(
            list(cmd),
            env=dict(env),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise ExternalToolError(list(cmd), -1, f"timed out after {INSTALL_TIMEOUT:g} s") from None


def _fresh(venv: Path, family: str) -> None:
    if venv.is_dir() and any(venv.iterdir()):
        if not (venv / "pyvenv.cfg").is_file():
            raise WheelTestError(
                family,
                f"--venv {venv} exists and is not a virtual environment",
                hint="pass an empty or new directory",
            )
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)


def _install(
    plan: FamilyTestPlan,
    env: Mapping[str, str],
    runner: Runner,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    family = plan.options.family
    started, delay = clock(), 2.0
    while True:
        result = runner(plan.install, env)
        if result.returncode == 0:
            return
        output = result.stdout or ""
        network = bool(_NETWORK.search(output))
        if not network or clock() - started + delay > plan.options.retry_window:
            tail = "\n".join(output.strip().splitlines()[-15:])
            why = "a network error persisted" if network else "the installer refused"
            raise WheelTestError(
                family,
                f"installing {plan.requirement} failed ({why}): {' '.join(plan.install)}\n{tail}",
                hint="check --find-links, --version and --deps-index",
            )
        print(f"install failed for a network reason; retrying in {delay:.0f} s", file=sys.stderr)
        sleep(delay)
        delay = min(delay * 2, 60.0)


def _pump(stream: TextIO, out: TextIO, failures: list[str]) -> None:
    for line in stream:
        out.write(line)
        out.flush()
        if line.startswith("FAIL "):
            failures.append(line.strip())


def _run_selftest(plan: FamilyTestPlan, env: Mapping[str, str], out: TextIO) -> None:
    options = plan.options
    options.junitxml.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        list(plan.test),
        env=dict(env),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    failures: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=_pump, args=(process.stdout, out, failures), daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=options.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise WheelTestError(
            options.family,
            f"rocm-sdk test did not finish within --timeout {options.timeout:g} s; "
            "its process group was killed",
            hint="a check hangs (see the last lines above), or raise --timeout",
        ) from None
    reader.join(timeout=10)
    if code != 0:
        listed = "\n".join(f"  {line}" for line in failures)
        raise WheelTestError(
            options.family,
            f"rocm-sdk test failed (exit {code}); results in {options.junitxml}"
            + (f"\n{listed}" if listed else ""),
        )


def run_test(
    plan: FamilyTestPlan,
    *,
    environ: Mapping[str, str] = os.environ,
    runner: Runner = subprocess_runner,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: TextIO = sys.stdout,
) -> None:
    """Create the environment, install the wheels, run ``rocm-sdk test``; raise on failure."""
    options = plan.options
    _fresh(options.venv, options.family)
    env = isolated_environment(environ, options.venv.with_name(options.venv.name + "-uv-cache"))
    created = runner(plan.create, env)
    if created.returncode != 0:
        raise WheelTestError(
            options.family, f"could not create {options.venv}:\n{created.stdout or ''}"
        )
    if plan.constraints:
        constraints_file = options.venv.with_name(options.venv.name + "-constraints.txt")
        constraints_file.write_text("\n".join(plan.constraints) + "\n", encoding="utf-8")
    _install(plan, env, runner, sleep, clock)
    _run_selftest(plan, env, out)
