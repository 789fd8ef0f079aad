#!/usr/bin/env python3
"""Benchmark ``wheelyard build`` on a generated artifact tree of at least 1 GiB.

The tree is the bundled sample plus, for two families, a large incompressible shared library
(the same bytes in both families, as TheRock's librocsparse is), per-family incompressible kernel
data, compressible text data and thousands of small headers. The script reports wall time, CPU
time and peak RSS of ``wheelyard build`` with ``--jobs 1`` and ``--jobs 2`` next to a floor
measured in the same run: deflating every input byte once with zlib at the same level on one core.

    python scripts/bench_build.py [--size-mib 1100] [--level 6] [--keep DIR]

Nothing here is imported by wheelyard; the numbers go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "rocm-artifacts"
FAMILIES = ("gfx120X-all", "gfx94X-dcgpu")
MIB = 1 << 20
_BLOCK = 4 * MIB  # random blocks longer than deflate's 32 KiB window stay incompressible


def _incompressible(path: Path, size: int, seed: int) -> None:
    block = random.Random(seed).randbytes(_BLOCK)
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            chunk = block[: min(_BLOCK, size - written)]
            handle.write(chunk)
            written += len(chunk)


def _compressible(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    words = ["kernel", "tile", "wave", "lds", "vgpr", "sgpr", "gemm", "batch", "stride", "alpha"]
    lines = [
        f"{rng.choice(words)}_{rng.randrange(10**6)} = {rng.random():.6f}  # {rng.choice(words)}\n"
        for _ in range(4096)
    ]
    text = "".join(lines).encode()
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            rng.shuffle(lines)
            chunk = "".join(lines).encode()[: size - written] if written else text
            handle.write(chunk)
            written += len(chunk)


def _artifact(root: Path, name: str, stage: str = "stage") -> Path:
    (root / name / stage).mkdir(parents=True, exist_ok=True)
    (root / name / "artifact_manifest.txt").write_text(stage + "\n")
    return root / name / stage


STALE_RUNPATH = "/opt/rocm/lib:" + ":".join(f"/build/therock/stage/{n:02d}/lib" for n in range(8))


def _big_library(work: Path, blob: Path, out: Path, *, runpath: bool) -> None:
    """A real ELF shared library carrying ``blob`` in .rodata and needing libamdhip64.

    With ``runpath``, it carries a long RUNPATH from its build tree, as many TheRock libraries
    do; wheelyard then rewrites it in place. Without, a RUNPATH must be added (appended).
    """
    hip_dir = next(SAMPLE.glob("core-hip_lib_generic/**/lib/libamdhip64.so.7")).parent
    source = work / "big.c"
    source.write_text(
        '__asm__(".section .rodata\\n.globl big_blob\\nbig_blob:\\n.incbin \\"'
        + blob.name
        + '\\"\\n.previous\\n");\n'
        "extern int hipGetVersion(void);\n"
        "int rocsparse_version(void) { return hipGetVersion(); }\n"
    )
    subprocess.run(
        [
            "cc",
            "-shared",
            "-fPIC",
            "-O1",
            "-o",
            str(out),
            "-Wl,-soname,librocsparse.so.1",
            source.name,
            f"-L{hip_dir}",
            "-l:libamdhip64.so.7",
            *([f"-Wl,--enable-new-dtags,-rpath,{STALE_RUNPATH}"] if runpath else []),
        ],
        cwd=work,
        check=True,
    )


def make_tree(target: Path, size_mib: int) -> int:
    """Write the benchmark tree; return its size in bytes."""
    shutil.copytree(SAMPLE, target, symlinks=True)
    work = target.parent / "bench-work"
    work.mkdir(exist_ok=True)
    big = max(64, size_mib * 30 // 100) * MIB
    per_family = max(32, size_mib * 12 // 100) * MIB
    text = max(32, size_mib * 22 // 100) * MIB
    small_count = 4000
    blob = work / "blob.bin"
    _incompressible(blob, big, seed=1)
    _big_library(work, blob, work / "librocsparse-no-runpath.so", runpath=False)
    _big_library(work, blob, work / "librocsparse-runpath.so", runpath=True)
    blob.unlink()
    for index, family in enumerate(FAMILIES):
        stage = _artifact(target, f"fft_lib_{family}")
        (stage / "lib").mkdir(parents=True, exist_ok=True)
        (stage / "lib" / "librocsparse.so.1").symlink_to("librocsparse.so.1.0")
        kernels = stage / "lib" / "rocsparse" / "library"
        kernels.mkdir(parents=True)
        _incompressible(kernels / f"kernels_{family}.co", per_family, seed=10 + index)
    # Extra stage root in an existing core artifact: compressible data and many small headers.
    manifest = target / "core-hip_dev_generic" / "artifact_manifest.txt"
    manifest.write_text(manifest.read_text().rstrip("\n") + "\nbench/stage\n")
    stage = target / "core-hip_dev_generic" / "bench" / "stage"
    (stage / "share" / "hip").mkdir(parents=True)
    _compressible(stage / "share" / "hip" / "tuning.txt", text, seed=3)
    headers = stage / "include" / "hip" / "bench"
    headers.mkdir(parents=True)
    rng = random.Random(4)
    for number in range(small_count):
        body = "".join(
            f"#define HIP_BENCH_{number}_{i} {rng.randrange(1 << 30)}\n"
            for i in range(rng.randrange(20, 400))
        )
        (headers / f"header_{number:05d}.h").write_text(body)
    use_library(target, runpath=False)
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and not p.is_symlink())


def use_library(tree: Path, *, runpath: bool) -> None:
    """Put the big library variant into both families' artifacts."""
    name = "librocsparse-runpath.so" if runpath else "librocsparse-no-runpath.so"
    for family in FAMILIES:
        target = tree / f"fft_lib_{family}" / "stage" / "lib" / "librocsparse.so.1.0"
        shutil.copyfile(tree.parent / "bench-work" / name, target)


def floor(tree: Path, level: int) -> tuple[float, float, int]:
    """Deflate every input byte once on one core: (wall s, cpu s, bytes)."""
    start, cpu = time.perf_counter(), time.process_time()
    total = 0
    for path in sorted(tree.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        with open(path, "rb") as handle:
            while chunk := handle.read(MIB):
                compressor.compress(chunk)
                total += len(chunk)
        compressor.flush()
    return time.perf_counter() - start, time.process_time() - cpu, total


_WRAPPER = """
import resource, sys
from wheelyard.__main__ import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as handle:
    handle.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
sys.exit(code)
"""


@dataclass(frozen=True)
class Run:
    name: str
    wall: float
    cpu: float
    rss_self: int | None = None  # the wheelyard process
    rss_all: int | None = None  # the largest of it and its children (patchelf)


def run_build(name: str, tree: Path, out: Path, jobs: int, level: int) -> Run:
    """Time one build in its own process."""
    rss_file = out.parent / f"{out.name}.rss"
    command = [
        sys.executable,
        "-c",
        _WRAPPER,
        str(rss_file),
        "build",
        *FAMILIES,
        "--artifacts",
        str(tree),
        "--out",
        str(out),
        "--jobs",
        str(jobs),
        "--compression-level",
        str(level),
    ]
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "CI": "true"},
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"build failed:\n{error}")
    # wait4 reports the largest RSS of the process and the children it waited for (patchelf).
    return Run(
        name=name,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_self=int(rss_file.read_text()),
        rss_all=usage.ru_maxrss * 1024,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1100, help="approximate tree size")
    parser.add_argument("--level", type=int, default=6, help="deflate level")
    parser.add_argument("--keep", type=Path, help="keep the tree and builds in this directory")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wheelyard-bench-", dir=args.keep))
    try:
        tree = base / "artifacts"
        size = make_tree(tree, args.size_mib)
        print(f"tree: {size / MIB:.0f} MiB in {sum(1 for _ in tree.rglob('*'))} entries")
        floor_wall, floor_cpu, floor_bytes = floor(tree, args.level)
        runs = [Run(name="zlib floor (1 core, every byte once)", wall=floor_wall, cpu=floor_cpu)]
        for jobs in (1, 2):
            runs.append(
                run_build(
                    f"build --jobs {jobs}, RUNPATH added",
                    tree,
                    base / f"build-j{jobs}",
                    jobs,
                    args.level,
                )
            )
        use_library(tree, runpath=True)
        runs.append(
            run_build("build --jobs 2, RUNPATH rewritten", tree, base / "build-rp", 2, args.level)
        )
        wheels = sum(p.stat().st_size for p in (base / "build-j2" / "dist").rglob("*.whl"))
        print(
            f"input {floor_bytes / MIB:.0f} MiB; wheels {wheels / MIB:.0f} MiB; "
            f"level {args.level}; {os.cpu_count()} cores"
        )
        print(
            f"{'run':40} {'wall s':>7} {'cpu s':>7} {'x floor':>8} {'RSS self':>9} "
            f"{'RSS +children':>14}"
        )
        for run in runs:
            self_rss = f"{run.rss_self / MIB:.0f} MiB" if run.rss_self else "-"
            all_rss = f"{run.rss_all / MIB:.0f} MiB" if run.rss_all else "-"
            print(
                f"{run.name:40} {run.wall:7.1f} {run.cpu:7.1f} {run.wall / floor_wall:8.2f} "
                f"{self_rss:>9} {all_rss:>14}"
            )
        same = (base / "build-j1" / "build-manifest.json").read_bytes() == (
            base / "build-j2" / "build-manifest.json"
        ).read_bytes()
        print(f"--jobs 1 and --jobs 2 wrote identical wheels: {same}")
        return 0 if same else 1
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
