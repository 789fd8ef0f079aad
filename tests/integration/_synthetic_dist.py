"""A small but realistic build output made of real (pure-Python) wheels.

Same layout, names and metadata as ``wheelyard build`` writes (see docs/index.md): generic wheels
in ``dist/``, per-family wheels and the family's ``rocm`` meta in ``dist/<family>/``, and
``build-manifest.json`` beside ``dist/``. Every wheel is ``py3-none-any`` so it installs
anywhere; each carries a module naming its family, so a test can tell what got installed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

FAMILIES = ("gfx120X-all", "gfx94X-dcgpu")
VERSION = "7.10.0.dev0"
_DATE = (1980, 1, 1, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def write_wheel(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    *,
    requires_dist: Sequence[str] = (),
    provides_extra: Sequence[str] = (),
    requires_python: str | None = ">=3.9",
) -> Path:
    """Write a deterministic py3-none-any wheel with METADATA, WHEEL and RECORD."""
    escaped = name.replace("-", "_").lower()
    dist_info = f"{escaped}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    metadata += [f"Provides-Extra: {extra}" for extra in provides_extra]
    metadata += [f"Requires-Dist: {req}" for req in requires_dist]
    members = dict(sorted(files.items()))
    members[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: synthetic\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{escaped}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def ident(family: str) -> str:
    return family.replace("-", "_")


def make_synthetic_dist(
    out: Path,
    *,
    version: str = VERSION,
    families: Sequence[str] = FAMILIES,
    salt: str = "",
    salted: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    manifest: bool = True,
) -> Path:
    """Write ``out/dist`` and ``out/build-manifest.json``; returns the dist directory.

    ``salt`` changes the bytes of the ``salted`` distributions (default: all) under the same
    file names; ``skip`` leaves out
    distributions by name (``rocm-sdk-devel-gfx120X-all``) to make an incomplete set.
    """
    dist = out / "dist"
    entries: list[dict[str, object]] = []

    def add(
        directory: Path,
        family: str,
        kind: str,
        name: str,
        files: dict[str, bytes],
        **kwargs: object,
    ) -> None:
        if name in skip:
            return
        if salt and (salted is None or name in salted):
            files = {**files, f"_salt_{name.replace('-', '_')}.txt": salt.encode()}
        path = write_wheel(directory, name, version, files, **kwargs)  # type: ignore[arg-type]
        data = path.read_bytes()
        entries.append(
            {
                "path": path.relative_to(out).as_posix(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "package": name,
                "family": family,
                "kind": kind,
            }
        )

    core_module = f"VERSION = {version!r}\n".encode()
    add(
        dist,
        "generic",
        "runtime",
        "rocm-sdk-core",
        files={"_rocm_sdk_core/__init__.py": core_module},
    )
    for family in sorted(families):
        marker = f"FAMILY = {family!r}\n".encode()
        libraries = f"rocm-sdk-libraries-{family}"
        devel = f"rocm-sdk-devel-{family}"
        directory = dist / family
        add(
            directory,
            family,
            "runtime",
            libraries,
            files={f"_rocm_sdk_libraries_{ident(family)}/__init__.py": marker},
            requires_dist=[f"rocm-sdk-core=={version}"],
        )
        add(
            directory,
            family,
            "devel",
            devel,
            files={f"_rocm_sdk_devel_{ident(family)}/__init__.py": marker},
            requires_dist=[f"rocm-sdk-core=={version}", f"{libraries}=={version}"],
        )
        info = {"version": version, "family": family}
        add(
            directory,
            family,
            "meta",
            "rocm",
            files={
                "rocm_sdk/__init__.py": f"__version__ = {version!r}\n".encode(),
                "rocm_sdk/_dist_info.json": json.dumps(info, sort_keys=True).encode(),
            },
            provides_extra=["libraries", "devel"],
            requires_dist=[
                f"rocm-sdk-core=={version}",
                f'{libraries}=={version}; extra == "libraries"',
                f'{devel}=={version}; extra == "devel"',
            ],
        )
    if manifest:
        document = {
            "schema": 1,
            "profile": "rocm",
            "version": version,
            "families": sorted(families),
            "source_date_epoch": 315532800,
            "files": sorted(entries, key=lambda item: str(item["path"])),
        }
        (out / "build-manifest.json").write_text(json.dumps(document, indent=2, sort_keys=True))
    return dist


def read_manifest_hashes(dist: Path) -> dict[str, tuple[str, int]]:
    """dist-relative path (``gfx120X-all/rocm-...whl``) -> (sha256, size) from the manifest."""
    document = json.loads((dist.parent / "build-manifest.json").read_text())
    return {
        str(item["path"]).removeprefix("dist/"): (str(item["sha256"]), int(item["size"]))
        for item in document["files"]
    }


def namespace_hashes(dist: Path, family: str) -> dict[str, tuple[str, int]]:
    """filename -> (sha256, size) of the files one family's pages must list: its own and generic."""
    return {
        path.rsplit("/", 1)[-1]: value
        for path, value in read_manifest_hashes(dist).items()
        if "/" not in path or path.startswith(f"{family}/")
    }
