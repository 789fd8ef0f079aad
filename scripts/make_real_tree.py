#!/usr/bin/env python3
"""Lay Debian's real ROCm libraries out as a TheRock-format artifact tree for bench_real.py.

Downloads the packages with ``apt-get download`` into a cache directory (once), unpacks them
with ``dpkg-deb -x`` and copies the shared libraries, with their soname symlink chains, into
``{name}_{component}_{family}/<stage root>/lib/`` the way TheRock's artifacts hold them:

- generic core artifacts: ``core-runtime`` (libhsa-runtime64, libhsakmt), ``core-hip``
  (libamdhip64, libhiprtc-builtins), ``amd-llvm`` (libamd_comgr), ``base`` (librocm_smi64);
- ``rand_lib_generic`` (librocrand);
- ``blas_lib_<family>`` for every family (librocsparse, 1.31 GB, and libhipsparse): the same
  bytes in each family, as in a real multi-family build.

It also writes what TheRock's own packager insists on (``therock_manifest.json`` in
``base_lib_generic`` and an existing, empty profiler stage root), and, with ``--profile-out``, a
copy of the ROCm profile trimmed for this tree: no console scripts (their programs are not in
it) and the system libraries Debian's builds need (libLLVM-15) in ``[closure] allow_external``.

    python scripts/make_real_tree.py --out /tmp/real-tree --cache /tmp/rocm-debs \
        --profile-out /tmp/real-profile

Nothing produced here is committed: the tree holds AMD's binaries as Debian ships them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FAMILIES = ("gfx94X-dcgpu", "gfx110X-all")

# Debian package -> (artifact name, component, per family?, stage root). Debian bookworm has
# no rocBLAS; rocSPARSE is the big per-family library (TheRock ships it in the blas artifact).
LAYOUT: dict[str, tuple[str, str, bool, str]] = {
    "libhsa-runtime64-1": ("core-runtime", "lib", False, "core/ROCR-Runtime/stage"),
    "libhsakmt1": ("core-runtime", "lib", False, "core/ROCR-Runtime/stage"),
    "libamdhip64-5": ("core-hip", "lib", False, "core/clr/stage"),
    "libhiprtc-builtins5": ("core-hip", "lib", False, "core/clr/stage"),
    "libamd-comgr2": ("amd-llvm", "lib", False, "compiler/amd-comgr/stage"),
    "librocm-smi64-1": ("base", "lib", False, "base/rocm_smi_lib/stage"),
    "librocrand1": ("rand", "lib", False, "math-libs/rocRAND/stage"),
    "librocsparse0": ("blas", "lib", True, "math-libs/BLAS/rocSPARSE/stage"),
    "libhipsparse0": ("blas", "lib", True, "math-libs/BLAS/hipSPARSE/stage"),
}
# Stage roots a real tree lists although nothing of them is here (manifest-only entries).
EXTRA_ROOTS: dict[str, list[str]] = {
    "base": ["base/aux-overlay/stage"],
    "blas": ["math-libs/BLAS/rocBLAS/stage", "math-libs/BLAS/hipBLAS/stage"],
}
# TheRock's packager refuses a tree without profiler artifacts or without this manifest.
PROFILER_ROOT = ("rocprofiler-compute", "lib", "profiler/rocprofiler-compute/stage")
THEROCK_MANIFEST = "base/aux-overlay/stage/share/therock/therock_manifest.json"
# NEEDED names of Debian's builds that neither a wheel nor the manylinux list provides.
EXTRA_EXTERNAL = ("libLLVM-15.so.1",)


def download(cache: Path) -> dict[str, Path]:
    """The .deb of every package in LAYOUT, fetched with apt-get download if not cached."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {name: sorted(cache.glob(f"{name}_*.deb")) for name in LAYOUT}
    missing = sorted(name for name, debs in found.items() if not debs)
    if missing:
        print(f"apt-get download {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "download", *missing], cwd=cache, check=True)
        found = {name: sorted(cache.glob(f"{name}_*.deb")) for name in LAYOUT}
    return {name: debs[-1] for name, debs in found.items()}


def library_entries(root: Path) -> list[Path]:
    """The shared libraries (files and soname links) an unpacked package holds."""
    entries = [p for p in sorted(root.rglob("*.so*")) if "/share/" not in p.as_posix()]
    return [p for p in entries if p.is_symlink() or p.is_file()]


def place(unpacked: Path, stage: Path) -> list[str]:
    """Copy the libraries of one package into ``stage/lib``, links as links."""
    lib = stage / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    names = []
    for entry in library_entries(unpacked):
        target = lib / entry.name
        if entry.is_symlink():
            target.symlink_to(entry.readlink())
        else:
            shutil.copyfile(entry, target)
            target.chmod(0o755)
        names.append(entry.name)
    return names


def write_manifest(artifact: Path, roots: list[str]) -> None:
    artifact.mkdir(parents=True, exist_ok=True)
    (artifact / "artifact_manifest.txt").write_text("".join(f"{r}\n" for r in sorted(roots)))


def make_tree(debs: dict[str, Path], out: Path, families: tuple[str, ...]) -> None:
    roots: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory(prefix="real-tree-") as scratch:
        for package, deb in sorted(debs.items()):
            name, component, per_family, root = LAYOUT[package]
            unpacked = Path(scratch) / package
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            for family in families if per_family else ("generic",):
                artifact = f"{name}_{component}_{family}"
                placed = place(unpacked, out / artifact / root)
                roots.setdefault(artifact, set()).add(root)
                print(f"{artifact}/{root}/lib: {', '.join(placed)}", flush=True)
            shutil.rmtree(unpacked)
    for artifact in list(roots):
        roots[artifact].update(EXTRA_ROOTS.get(artifact.split("_")[0], []))
    manifest = out / "base_lib_generic" / THEROCK_MANIFEST
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"flags": {}}, indent=2) + "\n")
    name, component, root = PROFILER_ROOT
    (out / f"{name}_{component}_generic" / root).mkdir(parents=True)
    roots[f"{name}_{component}_generic"] = {root}
    for artifact, listed in sorted(roots.items()):
        write_manifest(out / artifact, sorted(listed))


def trim_profile(source: Path, dest: Path, families: tuple[str, ...]) -> None:
    """Copy the profile; drop console scripts, extend allow_external, default to ``families``."""
    shutil.copytree(source, dest)
    path = dest / "packages.toml"
    lines = path.read_text().splitlines(keepends=True)
    kept: list[str] = []
    in_scripts = False
    for line in lines:
        if line.startswith("["):
            in_scripts = line.strip() == "[package.console_scripts]"
        elif in_scripts and re.match(r'^("[^"]+"|[\w.+-]+)\s*=\s*\{', line):
            continue
        kept.append(line)
    text = "".join(kept)
    text, count = re.subn(
        r"^allow_external = \[(.*)\]$",
        lambda m: "allow_external = [{}{}]".format(
            m.group(1), "".join(f', "{n}"' for n in EXTRA_EXTERNAL)
        ),
        text,
        flags=re.M,
    )
    text, count2 = re.subn(
        r"^default_families = \[.*\]$",
        "default_families = [{}]".format(", ".join(f'"{f}"' for f in families)),
        text,
        flags=re.M,
    )
    if count != 1 or count2 != 1:
        sys.exit(f"error: {path}: allow_external or default_families not found to trim")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="the tree to write (must not exist)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/wheelyard/rocm-debs",
        help="where the .deb files are downloaded to and reused from",
    )  # fmt: skip
    parser.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES))
    parser.add_argument("--profile", type=Path, default=REPO / "packaging/rocm")
    parser.add_argument("--profile-out", type=Path, help="write a trimmed profile copy here")
    parser.add_argument("--force", action="store_true", help="replace --out/--profile-out")
    args = parser.parse_args(argv)
    families = tuple(args.families)
    for path in (args.out, args.profile_out):
        if path is not None and path.exists():
            if not args.force:
                sys.exit(f"error: {path} exists; pass --force to replace it")
            shutil.rmtree(path)
    debs = download(args.cache.resolve())
    make_tree(debs, args.out, families)
    if args.profile_out is not None:
        trim_profile(args.profile, args.profile_out, families)
        print(f"trimmed profile: {args.profile_out}")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"tree: {args.out} ({size / 2**30:.2f} GiB, families {', '.join(families)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
