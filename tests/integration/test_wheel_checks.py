"""Every wheel of the sample build, checked by the tools the field uses (twine,
check-wheel-contents, auditwheel) and by reading it; and the build's determinism: a rebuild is
byte-identical, and a multi-family build gives each family what a single-family build gives it.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest
from packaging.metadata import Metadata
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from tests.conftest import SAMPLE_FAMILIES, run_wheelyard

from wheelyard.elf.read import ElfInfo, read_elf

pytestmark = pytest.mark.integration

TARGETS = {
    "gfx94X-dcgpu": ("gfx942",),
    "gfx110X-all": ("gfx1100", "gfx1101", "gfx1102", "gfx1103"),
    "gfx120X-all": ("gfx1200", "gfx1201"),
}
FAMILIES = tuple(TARGETS)
_MANYLINUX = re.compile(r"manylinux_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>\w+)")
_TOOL_TIMEOUT = 120


@dataclass(frozen=True)
class Wheel:
    path: Path
    rel: str
    package: str
    family: str
    kind: str
    tag: Tag
    names: tuple[str, ...]
    metadata: Metadata
    extracted: Path
    elf: dict[str, ElfInfo] = field(default_factory=dict)

    @property
    def dist(self) -> NormalizedName:
        return canonicalize_name(self.package)

    @property
    def manylinux(self) -> tuple[int, int, str] | None:
        match = _MANYLINUX.fullmatch(self.tag.platform)
        if match is None:
            return None
        return int(match["major"]), int(match["minor"]), match["arch"]

    def read(self, name: str) -> bytes:
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(name)

    def dist_info(self, name: str) -> str:
        (member,) = [n for n in self.names if n.endswith(f".dist-info/{name}")]
        return self.read(member).decode()

    def shared_libraries(self) -> dict[str, ElfInfo]:
        return {
            name: info
            for name, info in self.elf.items()
            if info.elf_type == "ET_DYN" and not info.is_executable
        }

    def provides(self) -> set[str]:
        """The names the dynamic loader finds this wheel's shared libraries under."""
        return {
            info.soname or name.rsplit("/", 1)[-1] for name, info in self.shared_libraries().items()
        }

    def needed(self) -> set[str]:
        return {needed for info in self.elf.values() for needed in info.needed}


@dataclass(frozen=True)
class Build:
    out: Path
    manifest: dict[str, Any]
    wheels: tuple[Wheel, ...]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def view(self, family: str) -> list[Wheel]:
        """The wheels one family's users can see: the generic ones and the family's."""
        return [w for w in self.wheels if w.family in {"generic", family}]

    def get(self, package: str, family: str) -> Wheel:
        (wheel,) = [w for w in self.view(family) if w.package == package]
        return wheel

    def dependencies(self, wheel: Wheel) -> list[Wheel]:
        """Wheels ``wheel`` requires, directly or not (requirements without markers), looked up
        in its family's view."""
        view = {w.dist: w for w in self.view(wheel.family)}
        found: dict[str, Wheel] = {}
        todo = [wheel]
        while todo:
            current = todo.pop()
            for requirement in current.metadata.requires_dist or []:
                name = canonicalize_name(requirement.name)
                if requirement.marker is None and name not in found:
                    assert name in view, f"{current.rel} requires {name}, not in the build"
                    found[name] = view[name]
                    todo.append(view[name])
        return [found[name] for name in sorted(found)]


def _read_wheel(out: Path, entry: dict[str, Any], extracted: Path) -> Wheel:
    path = out / entry["path"]
    _, _, _, tags = parse_wheel_filename(path.name)
    (tag,) = tags
    with zipfile.ZipFile(path) as archive:
        names = tuple(archive.namelist())
        archive.extractall(extracted)
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Metadata.from_email(archive.read(metadata_name), validate=True)
    elf = {}
    for name in names:
        info = read_elf(extracted / name)
        if info is not None:
            elf[name] = info
    return Wheel(
        path=path,
        rel=entry["path"],
        package=entry["package"],
        family=entry["family"],
        kind=entry["kind"],
        tag=tag,
        names=names,
        metadata=metadata,
        extracted=extracted,
        elf=elf,
    )


@pytest.fixture(scope="module")
def build(sample_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Build:
    manifest = json.loads((sample_build / "build-manifest.json").read_text())
    top = tmp_path_factory.mktemp("wheels")
    wheels = tuple(
        _read_wheel(sample_build, entry, top / str(index))
        for index, entry in enumerate(manifest["files"])
    )
    return Build(out=sample_build, manifest=manifest, wheels=wheels)


def _tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=_TOOL_TIMEOUT,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "400", "TERM": "dumb"},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree(top: Path, names: Iterable[str] | None = None) -> dict[str, str]:
    """sha256 of every regular file below ``top`` (or of ``names`` relative to it)."""
    if names is None:
        names = [p.relative_to(top).as_posix() for p in top.rglob("*") if not p.is_dir()]
    return {name: _sha256(top / name) for name in sorted(names)}


# -- the build's inventory -----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_manifest_lists_every_wheel_of_the_build(build: Build) -> None:
    on_disk = sorted(p.relative_to(build.out).as_posix() for p in build.out.rglob("*.whl"))
    assert on_disk == sorted(w.rel for w in build.wheels)
    for entry in build.manifest["files"]:
        path = build.out / entry["path"]
        assert (entry["sha256"], entry["size"]) == (_sha256(path), path.stat().st_size)
    assert build.manifest["families"] == sorted(SAMPLE_FAMILIES)
    expected = {("rocm-sdk-core", "generic", "runtime")}
    for family in FAMILIES:
        expected |= {
            ("rocm", family, "meta"),
            (f"rocm-sdk-libraries-{family}", family, "runtime"),
            (f"rocm-sdk-devel-{family}", family, "devel"),
        }
    assert {(w.package, w.family, w.kind) for w in build.wheels} == expected


# -- the field's tools ---------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_twine_check_strict_passes(build: Build) -> None:
    result = _tool("twine", "check", "--strict", *(w.path for w in build.wheels))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == len(build.wheels), result.stdout


@pytest.mark.timeout(180)
def test_check_wheel_contents_passes(build: Build) -> None:
    # W002 (duplicate files) is ignored: a symlinked executable (bin/amdclang -> clang, clang++)
    # is stored as a copy of its target, since wheels cannot hold symlinks and the console script
    # must exec a real file. test_duplicates_are_only_copied_executables keeps the rest of W002.
    result = _tool("check_wheel_contents", "--ignore", "W002", *(w.path for w in build.wheels))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == len(build.wheels), result.stdout


@pytest.mark.timeout(180)
def test_duplicates_are_only_copied_executables(build: Build) -> None:
    problems = []
    for wheel in build.wheels:
        by_hash: dict[str, list[str]] = {}
        for name in wheel.names:
            data = (wheel.extracted / name).read_bytes()
            if data:
                by_hash.setdefault(hashlib.sha256(data).hexdigest(), []).append(name)
        for names in by_hash.values():
            if len(names) < 2:
                continue
            programs = [n for n in names if n in wheel.elf and wheel.elf[n].is_executable]
            if programs != names:
                problems.append(f"{wheel.rel}: duplicate files {names}")
    assert problems == []


def _auditwheel_problems(build: Build, wheel: Wheel, report: dict[str, Any]) -> list[str]:
    problems = []
    own = wheel.manylinux
    assert own is not None
    sym = _MANYLINUX.fullmatch(str(report.get("sym_tag")))
    if sym is None:
        problems.append(f"sym_tag {report.get('sym_tag')!r} is not a manylinux tag")
    elif (int(sym["major"]), int(sym["minor"])) > own[:2] or sym["arch"] != own[2]:
        problems.append(f"sym_tag {sym[0]} is newer than (or differs from) {wheel.tag.platform}")
    # auditwheel does not know sibling wheels: what they provide it calls external.
    from_dependencies: set[str] = set()
    for dependency in build.dependencies(wheel):
        from_dependencies |= dependency.provides()
    allowed = _allowed_external(build, wheel)
    expected = (wheel.needed() - wheel.provides()) & (from_dependencies | allowed)
    external = set(report.get("external_libs", {}))
    if external != expected:
        problems.append(f"external libs {sorted(external)}, expected {sorted(expected)}")
    return problems


def _allowed_external(build: Build, wheel: Wheel) -> set[str]:
    """NEEDED names of ``wheel`` the closure report lists as allowed external requirements."""
    report = json.loads((build.out / "closure-report.json").read_text())
    return {
        name
        for item in report["files"]
        if item["wheel"] == wheel.package
        for name, where in item["needed"].items()
        if where == "external"
    }


@pytest.mark.timeout(180)
def test_auditwheel_agrees_with_tags_and_dependencies(build: Build) -> None:
    # Pure wheels are left out by tag; devel wheels hold their ELF files inside devel.tar,
    # where auditwheel does not look (test_devel_wheel_tag_covers_its_archive checks them).
    audited = [w for w in build.wheels if w.tag.platform != "any" and w.kind != "devel"]
    assert {w.package for w in audited} == {
        "rocm-sdk-core",
        *(f"rocm-sdk-libraries-{family}" for family in FAMILIES),
    }
    problems = []
    for wheel in audited:
        assert wheel.elf, f"{wheel.rel} has a platform tag but no ELF file"
        result = _tool("auditwheel", "show", "--json", wheel.path)
        if result.returncode != 0:
            problems.append(f"{wheel.rel}: auditwheel failed: {result.stdout}{result.stderr}")
            continue
        report = json.loads(result.stdout)
        problems += [f"{wheel.rel}: {p}" for p in _auditwheel_problems(build, wheel, report)]
    assert problems == []


@pytest.mark.timeout(180)
def test_devel_wheel_tag_covers_its_archive(build: Build) -> None:
    for wheel in build.wheels:
        if wheel.kind != "devel":
            continue
        own = wheel.manylinux
        assert own is not None, wheel.rel
        assert own[:2] >= (2, 28), wheel.rel
        assert not wheel.elf, f"{wheel.rel}: ELF files outside devel.tar"
        (archive_name,) = [n for n in wheel.names if n.endswith("/devel.tar")]
        unpacked = wheel.extracted / "devel-tar"
        with tarfile.open(wheel.extracted / archive_name) as archive:
            archive.extractall(unpacked, filter="tar")
        for path in sorted(unpacked.rglob("*")):
            info = None if path.is_symlink() else read_elf(path)
            if info is None:
                continue
            assert info.machine == own[2], f"{wheel.rel}: {path.name} is {info.machine}"
            if info.glibc is not None:
                assert info.glibc <= own[:2], f"{wheel.rel}: {path.name} needs {info.glibc}"


# -- reading the wheels --------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_metadata_is_valid_and_names_the_package(build: Build) -> None:
    for wheel in build.wheels:
        # _read_wheel parsed it with validate=True; check what it says.
        assert canonicalize_name(wheel.metadata.name) == wheel.dist, wheel.rel
        assert str(wheel.metadata.version) == build.version, wheel.rel
        assert str(wheel.metadata.requires_python) == ">=3.9", wheel.rel
        name, version, _, _ = parse_wheel_filename(wheel.path.name)
        assert (name, str(version)) == (wheel.dist, build.version), wheel.rel


@pytest.mark.timeout(180)
def test_wheel_file_is_platlib_with_the_filename_tag(build: Build) -> None:
    for wheel in build.wheels:
        headers = HeaderParser().parsestr(wheel.dist_info("WHEEL"))
        assert headers["Wheel-Version"] == "1.0", wheel.rel
        assert headers["Root-Is-Purelib"] == "false", wheel.rel
        assert headers.get_all("Tag") == [str(wheel.tag)], wheel.rel
        expected_platform = "any" if wheel.kind == "meta" else "manylinux"
        assert wheel.tag.platform.startswith(expected_platform), wheel.rel


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


@pytest.mark.timeout(180)
def test_record_matches_every_member(build: Build) -> None:
    for wheel in build.wheels:
        rows = list(csv.reader(io.StringIO(wheel.dist_info("RECORD"))))
        paths = [row[0] for row in rows]
        assert sorted(paths) == sorted(wheel.names), wheel.rel
        assert len(set(paths)) == len(paths), wheel.rel
        for path, digest, size in rows:
            if path.endswith(".dist-info/RECORD"):
                assert (digest, size) == ("", ""), wheel.rel
                continue
            data = (wheel.extracted / path).read_bytes()
            assert (digest, size) == (_record_hash(data), str(len(data))), f"{wheel.rel}: {path}"


@pytest.mark.timeout(180)
def test_no_two_installable_wheels_share_a_path(build: Build) -> None:
    # Wheels of different distributions can be installed together (even of two families);
    # two `rocm` meta wheels cannot (one replaces the other).
    problems = []
    for index, first in enumerate(build.wheels):
        for second in build.wheels[index + 1 :]:
            if first.dist == second.dist:
                continue
            shared = sorted(set(first.names) & set(second.names))
            if shared:
                problems.append(f"{first.rel} and {second.rel} both install {shared[:5]}")
    assert problems == []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("family", FAMILIES)
def test_meta_pins_exactly_the_family_wheels(build: Build, family: str) -> None:
    meta = build.get("rocm", family)
    version = build.version
    extras = {"runtime": None, "devel": "devel"}
    expected = set()
    for wheel in build.view(family):
        if wheel.kind == "meta":
            continue
        extra = extras[wheel.kind]
        if wheel.package.startswith("rocm-sdk-libraries-"):
            extra = "libraries"
        marker = f'extra == "{extra}"' if extra else None
        expected.add((wheel.dist, f"=={version}", marker))
    requires = {
        (canonicalize_name(r.name), str(r.specifier), str(r.marker) if r.marker else None)
        for r in meta.metadata.requires_dist or []
    }
    assert requires == expected
    assert expected == {
        ("rocm-sdk-core", f"=={version}", None),
        (canonicalize_name(f"rocm-sdk-libraries-{family}"), f"=={version}", 'extra == "libraries"'),
        (canonicalize_name(f"rocm-sdk-devel-{family}"), f"=={version}", 'extra == "devel"'),
    }
    assert sorted(meta.metadata.provides_extra or []) == ["devel", "libraries"]
    (info_name,) = [n for n in meta.names if n.endswith("rocm_sdk/_dist_info.json")]
    info = json.loads(meta.read(info_name))
    assert (info["version"], info["family"], info["targets"]) == (
        version,
        family,
        list(TARGETS[family]),
    )
    assert info["packages"]["libraries"]["dist"] == f"rocm-sdk-libraries-{family}"
    assert info["packages"]["devel"]["dist"] == f"rocm-sdk-devel-{family}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("family", FAMILIES)
def test_libraries_wheel_is_not_empty(build: Build, family: str) -> None:
    # Regression for TheRock #3486/#3608: multi-family builds shipped an empty libraries wheel.
    wheel = build.get(f"rocm-sdk-libraries-{family}", family)
    module = f"_rocm_sdk_libraries_{family.replace('-', '_')}"
    libraries = sorted(wheel.shared_libraries())
    assert f"{module}/lib/librocblas.so.5" in libraries
    kernels = sorted(n for n in wheel.names if "/TensileLibrary_" in n)
    expected = [f"{module}/lib/rocblas/library/TensileLibrary_{t}.dat" for t in TARGETS[family]]
    assert kernels == sorted(expected)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("family", FAMILIES)
def test_meta_library_table_marks_what_the_wheels_hold(build: Build, family: str) -> None:
    # The table is the profile's [[library]] rows; "built" says a wheel of the family holds a
    # file matching the row's Linux glob (the sample has only a few of TheRock's libraries).
    held: dict[str, list[str]] = {"core": [], "libraries": []}
    for wheel in build.view(family):
        if wheel.kind == "runtime":
            key = "core" if wheel.package == "rocm-sdk-core" else "libraries"
            held[key] += [name.split("/", 1)[1] for name in wheel.names if "/" in name]
    meta = build.get("rocm", family)
    (info_name,) = [n for n in meta.names if n.endswith("rocm_sdk/_dist_info.json")]
    info = json.loads(meta.read(info_name))
    rows = {row["name"]: row for row in info["libraries"]}
    assert {"amdhip64", "hiprtc", "miopen", "hipdnn", "rocblas"} <= set(rows)
    built = sorted(name for name, row in rows.items() if row["built"])
    assert built == ["amdhip64", "hiprtc", "rocblas", "rocrand"]
    for name in built:
        pattern = rows[name]["linux"].replace(".", r"\.").replace("*", "[^/]*")
        assert any(re.fullmatch(pattern, path) for path in held[rows[name]["package"]]), name
    assert "preload" not in info


# -- determinism ---------------------------------------------------------------------------------


def _build(out: Path, families: Sequence[str], *options: str) -> None:
    result = run_wheelyard("build", *families, *options, "--out", out, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(180)
def test_rebuild_is_byte_identical(build: Build, tmp_path: Path) -> None:
    # Same families in another order, one job instead of one per core, another directory.
    again = tmp_path / "again"
    _build(again, list(reversed(SAMPLE_FAMILIES)), "--jobs", "1")
    assert _tree(again) == _tree(build.out)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("family", FAMILIES)
def test_single_family_build_matches_the_multi_family_build(
    build: Build, family: str, tmp_path: Path
) -> None:
    single = tmp_path / "single"
    _build(single, [family])
    manifest = json.loads((single / "build-manifest.json").read_text())
    assert manifest["families"] == [family]
    names = sorted(entry["path"] for entry in manifest["files"])
    assert names == sorted(w.rel for w in build.view(family))
    assert _tree(single, names) == _tree(build.out, names)
    assert sorted(manifest["files"], key=lambda e: e["path"]) == sorted(
        (e for e in build.manifest["files"] if e["family"] in {"generic", family}),
        key=lambda e: e["path"],
    )
