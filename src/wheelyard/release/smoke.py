"""``release_smoke``: every check of every file in parallel, the set's completeness, a test install.

Layout of ``--dist`` (as ``wheelyard build`` writes it): generic wheels at the top, each
family's wheels in ``DIST/FAMILY/``. The directory a wheel is in says its family.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from wheelyard import proc
from wheelyard.errors import WheelyardError
from wheelyard.profile import GENERIC, Profile, load_profile
from wheelyard.release.checks import Check
from wheelyard.release.verify import WheelFacts, verify_wheel
from wheelyard.testing import (
    FamilyTestOptions,
    FamilyTestPlan,
    InstallSource,
    installer_for,
    run_test,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_VERDICT = re.compile(r"Checking\s*(.*?\.whl):\s*(PASSED with warnings|PASSED|FAILED)")


@dataclass(frozen=True, kw_only=True)
class SmokeOptions:
    dist: Path
    expect_version: str
    profile: Path
    families: tuple[str, ...] = ()  # default: every family directory in dist
    allow_dev: bool = False
    install: bool = True  # the fresh-venv install and `rocm-sdk test` per family
    jobs: int = 4
    work: Path | None = None  # where the test environments go (default: a temporary dir)


def find_wheels(dist: Path) -> list[tuple[str, Path]]:
    """(family, path) of every wheel: top level is generic, DIST/FAMILY/ is FAMILY's."""
    found = [(GENERIC, path) for path in sorted(dist.glob("*.whl"))]
    for directory in sorted(p for p in dist.iterdir() if p.is_dir()):
        found += [(directory.name, path) for path in sorted(directory.glob("*.whl"))]
    return found


def _twine(paths: Sequence[Path]) -> tuple[dict[Path, str], int, str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100000", "TERM": "dumb"}
    command = [sys.executable, "-m", "twine", "check", "--strict", *map(str, paths)]
    result = proc.run(command, check=False, timeout=600, env=env)
    # twine wraps long lines when not on a terminal: join them back before reading verdicts.
    output = _ANSI.sub("", result.stdout or "").replace("\n", "")
    verdicts = {Path(m[1].strip()): m[2] for m in _VERDICT.finditer(output)}
    return verdicts, result.returncode, output


def twine_checks(paths: Sequence[Path], labels: Mapping[Path, str]) -> list[Check]:
    """``twine check --strict``: one process for the set; a file twine gave no verdict on (it
    stops at a broken file) is checked again on its own."""
    verdicts, _, _ = _twine(paths)
    checks = []
    for path in paths:
        verdict, output = verdicts.get(path), ""
        if verdict is None:
            alone, _, output = _twine([path])
            verdict = alone.get(path, "FAILED")
        ok = verdict == "PASSED"
        detail = verdict if ok or not output else f"{verdict}: {output[-200:].strip()}"
        checks.append(Check(subject=labels[path], name="twine-check", ok=ok, detail=detail))
    return checks


def expected_names(profile: Profile, family: str) -> set[str]:
    """Canonical names of every distribution a family's set must hold (optional ones excepted)."""
    fam = profile.families.get(family)
    names: set[str] = {canonicalize_name(profile.meta)}
    for package in profile.packages:
        if package.optional:
            continue
        scoped = None if package.scope == "generic" else fam
        names.add(canonicalize_name(package.dist_name(scoped)))
    return names


def set_checks(
    profile: Profile, families: Sequence[str], facts: Sequence[tuple[str, WheelFacts]]
) -> list[Check]:
    """Every family's set is complete, with one wheel per distribution in its view."""
    checks = []
    for family in families:
        view = [f for fam, f in facts if fam in (GENERIC, family)]
        present: dict[str, list[str]] = {}
        for fact in view:
            if fact.name is not None:
                present.setdefault(fact.name, []).append(fact.path.name)
        missing = sorted(expected_names(profile, family) - set(present))
        subject = f"family {family}"
        detail = f"missing {', '.join(missing)}" if missing else f"{len(present)} distributions"
        checks.append(Check(subject=subject, name="complete-set", ok=not missing, detail=detail))
        twice = sorted(
            f"{name}: {', '.join(files)}" for name, files in present.items() if len(files) > 1
        )
        checks.append(
            Check(subject=subject, name="one-version", ok=not twice, detail="; ".join(twice))
        )
    return checks


def install_test(dist: Path, family: str, version: str, work: Path, *, meta: str) -> Check:
    """A fresh environment, our wheels only (``--no-index``), then ``rocm-sdk test``."""
    venv = work / f"venv-{family}"
    uv = shutil.which("uv")
    installer = installer_for("uv" if uv else "pip", uv=uv)
    source = InstallSource(find_links=(str(dist), str(dist / family)), pre=True)
    options = FamilyTestOptions(
        family=family,
        find_links=str(dist),
        version=version,
        venv=venv,
        junitxml=work / f"{family}.xml",
        pre=True,
        installer=installer.name,
        uv=uv,
        timeout=600.0,
    )
    requirement = f"{meta}[libraries,devel]=={version}"
    plan = FamilyTestPlan(
        options=options,
        requirement=requirement,
        create=tuple(installer.create_command(venv)),
        install=tuple(installer.install_command(venv, requirement, source)),
        constraints=(),
        test=(str(venv / "bin" / "rocm-sdk"), "test", "--junitxml", str(options.junitxml)),
    )
    subject = f"family {family}"
    try:
        run_test(plan, out=io.StringIO())
    except WheelyardError as exc:
        return Check(subject=subject, name="install-test", ok=False, detail=exc.message)
    return Check(subject=subject, name="install-test", ok=True, detail="rocm-sdk test passed")


def smoke(options: SmokeOptions) -> list[Check]:
    """Every check of the set; the install test runs only when every other check passed."""
    profile = load_profile(options.profile)
    wheels = find_wheels(options.dist)
    labels = {path: str(path.relative_to(options.dist)) for _, path in wheels}
    families = options.families or tuple(sorted({f for f, _ in wheels} - {GENERIC}))
    for family in families:
        profile.families.get(family)

    def one(item: tuple[str, Path]) -> tuple[list[Check], WheelFacts]:
        return verify_wheel(
            item[1],
            expect_version=options.expect_version,
            allow_dev=options.allow_dev,
            label=labels[item[1]],
        )

    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        results = list(pool.map(one, wheels))
    checks = [check for per_file, _ in results for check in per_file]
    if wheels:
        checks += twine_checks([path for _, path in wheels], labels)
    facts = [(family, fact) for (family, _), (_, fact) in zip(wheels, results, strict=True)]
    checks += set_checks(profile, families, facts)
    if not families:
        checks.append(
            Check(
                subject=str(options.dist),
                name="complete-set",
                ok=False,
                detail="no family directories with wheels",
            )
        )
    if options.install and all(check.ok for check in checks):
        with tempfile.TemporaryDirectory(prefix="release-smoke-") as scratch:
            work = options.work or Path(scratch)
            checks += [
                install_test(options.dist, family, options.expect_version, work, meta=profile.meta)
                for family in families
            ]
    return checks
