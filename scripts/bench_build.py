#!/usr/bin/env python3
"""Benchmark ``wheelyard build`` on a generated artifact tree of at least 1 GiB.

The tree is the bundled sample plus, for two families, a large shared library whose payload
deflates like a GPU fat binary (``scripts/fatbinary.py``; the same bytes in both families, as
TheRock's librocsparse is), per-family kernel files of the same kind, compressible text and
thousands of small headers. Next to the builds, the same run measures the floor: deflating
every input byte once with zlib 6 on one core. It prints each build's time against that floor
and its wheel bytes against a ``--compression zlib`` (zlib 6) build of the same tree.

    python scripts/bench_build.py [--size-mib 1100] [--presets default,fast,small] [--keep DIR]
    python scripts/bench_build.py --engines [--engines-mib 128] [--engines-input FILE]

``--engines`` instead measures each deflate engine and level on one core, whole buffer and in
the writer's 1 MiB pieces, on the synthetic library (or on FILE, for example a real
librocsparse). Nothing here is imported by wheelyard; the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fatbinary import fat_binary
from wheelyard.wheelfile.backends import load_backend
from wheelyard.wheelfile.deflate import CHUNK_SIZE, WINDOW

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "rocm-artifacts"
FAMILIES = ("gfx120X-all", "gfx94X-dcgpu")
MIB = 1 << 20


def _compressible(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    words = ["kernel", "tile", "wave", "lds", "vgpr", "sgpr", "gemm", "batch", "stride", "alpha"]
    lines = [
        f"{rng.choice(words)}_{rng.randrange(10**6)} = {rng.random():.6f}  # {rng.choice(words)}\n"
        for _ in range(4096)
    ]
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            rng.shuffle(lines)
            chunk = "".join(lines).encode()[: size - written]
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
    rpath = [f"-Wl,--enable-new-dtags,-rpath,{STALE_RUNPATH}"] if runpath else []
    command = [
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
        *rpath,
    ]
    subprocess.run(command, cwd=work, check=True)


def make_tree(target: Path, size_mib: int) -> None:
    """Write the benchmark tree."""
    shutil.copytree(SAMPLE, target, symlinks=True)
    work = target.parent / "bench-work"
    work.mkdir(exist_ok=True)
    big = max(64, size_mib * 30 // 100) * MIB
    per_family = max(32, size_mib * 12 // 100) * MIB
    text = max(32, size_mib * 22 // 100) * MIB
    blob = work / "blob.bin"
    blob.write_bytes(fat_binary(big, seed=1))
    _big_library(work, blob, work / "librocsparse-no-runpath.so", runpath=False)
    _big_library(work, blob, work / "librocsparse-runpath.so", runpath=True)
    blob.unlink()
    for index, family in enumerate(FAMILIES):
        stage = _artifact(target, f"fft_lib_{family}")
        (stage / "lib").mkdir(parents=True, exist_ok=True)
        (stage / "lib" / "librocsparse.so.1").symlink_to("librocsparse.so.1.0")
        kernels = stage / "lib" / "rocsparse" / "library"
        kernels.mkdir(parents=True)
        (kernels / f"kernels_{family}.co").write_bytes(fat_binary(per_family, seed=10 + index))
    # Extra stage root in an existing core artifact: compressible data and many small headers.
    manifest = target / "core-hip_dev_generic" / "artifact_manifest.txt"
    manifest.write_text(manifest.read_text().rstrip("\n") + "\nbench/stage\n")
    stage = target / "core-hip_dev_generic" / "bench" / "stage"
    (stage / "share" / "hip").mkdir(parents=True)
    _compressible(stage / "share" / "hip" / "tuning.txt", text, seed=3)
    headers = stage / "include" / "hip" / "bench"
    headers.mkdir(parents=True)
    rng = random.Random(4)
    for number in range(4000):
        body = "".join(
            f"#define HIP_BENCH_{number}_{i} {rng.randrange(1 << 30)}\n"
            for i in range(rng.randrange(20, 400))
        )
        (headers / f"header_{number:05d}.h").write_text(body)
    use_library(target, runpath=False)


def use_library(tree: Path, *, runpath: bool) -> None:
    """Put the big library variant into both families' artifacts."""
    name = "librocsparse-runpath.so" if runpath else "librocsparse-no-runpath.so"
    for family in FAMILIES:
        target = tree / f"fft_lib_{family}" / "stage" / "lib" / "librocsparse.so.1.0"
        shutil.copyfile(tree.parent / "bench-work" / name, target)


def floor(tree: Path) -> tuple[float, int, int]:
    """Deflate every input byte once with zlib 6 on one core: (seconds, bytes in, bytes out)."""
    start = time.perf_counter()
    total = compressed = 0
    for path in sorted(tree.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        with open(path, "rb") as handle:
            while chunk := handle.read(MIB):
                compressed += len(compressor.compress(chunk))
                total += len(chunk)
        compressed += len(compressor.flush())
    return time.perf_counter() - start, total, compressed


_WRAPPER = """
import resource, sys
from wheelyard.__main__ import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as handle:
    handle.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
sys.exit(code)
"""


@dataclass(frozen=True, kw_only=True)
class Run:
    name: str
    out: Path
    wall: float
    cpu: float
    rss: int  # the largest of the wheelyard process and the programs it ran (patchelf)

    @property
    def wheel_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.out / "dist").rglob("*.whl"))


def run_build(name: str, tree: Path, out: Path, *, jobs: int, preset: str) -> Run:
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
        "--compression",
        preset,
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
    rss = max(int(rss_file.read_text()), usage.ru_maxrss * 1024)
    return Run(name=name, out=out, wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss=rss)


def bench_builds(base: Path, size_mib: int, presets: list[str]) -> int:
    tree = base / "artifacts"
    # In a child process: a child inherits its parent's peak RSS, so this one must stay small.
    generate = [sys.executable, __file__, "--make-tree", str(tree), "--size-mib", str(size_mib)]
    subprocess.run(generate, check=True)
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"tree: {size / MIB:.0f} MiB in {sum(1 for _ in tree.rglob('*'))} entries", flush=True)
    floor_wall, floor_in, floor_out = floor(tree)
    print(
        f"floor: zlib 6, one core, every byte once: {floor_wall:.1f} s, "
        f"ratio {floor_out / floor_in:.3f}",
        flush=True,
    )
    runs = [
        run_build(
            "zlib 6 (--compression zlib), --jobs 2", tree, base / "zlib", jobs=2, preset="zlib"
        )
    ]
    runs.append(run_build("default, --jobs 1", tree, base / "default-j1", jobs=1, preset="default"))
    runs.append(run_build("default, --jobs 2", tree, base / "default-j2", jobs=2, preset="default"))
    for preset in presets:
        if preset != "default":
            runs.append(
                run_build(f"{preset}, --jobs 2", tree, base / preset, jobs=2, preset=preset)
            )
    use_library(tree, runpath=True)
    runs.append(
        run_build(
            "default, --jobs 2, RUNPATH rewritten in place",
            tree,
            base / "rp",
            jobs=2,
            preset="default",
        )
    )
    reference = runs[0].wheel_bytes
    print(
        f"\ninput {floor_in / MIB:.0f} MiB; {os.cpu_count()} cores; wheel bytes against the "
        "zlib 6 build of the same tree"
    )
    print(
        f"| run | wall s | CPU s | × floor | wheel MiB | × zlib 6 bytes | peak RSS |\n"
        f"|---|---:|---:|---:|---:|---:|---:|\n"
        f"| floor: zlib 6, 1 core, every byte once | {floor_wall:.1f} | {floor_wall:.1f} | "
        f"1.00 | | | |"
    )
    for run in runs:
        print(
            f"| {run.name} | {run.wall:.1f} | {run.cpu:.1f} | {run.wall / floor_wall:.2f} | "
            f"{run.wheel_bytes / MIB:.1f} | {run.wheel_bytes / reference:.4f} | "
            f"{run.rss / MIB:.0f} MiB |"
        )
    main = runs[2]
    same = (base / "default-j1" / "build-manifest.json").read_bytes() == (
        base / "default-j2" / "build-manifest.json"
    ).read_bytes()
    print(
        f"\ndefault --jobs 2: {main.wall:.1f} s = {main.wall / floor_wall:.2f} x the floor "
        f"({floor_wall:.1f} s; target <= 0.35); wheels {main.wheel_bytes} bytes = "
        f"{main.wheel_bytes / reference:.4f} x zlib 6's {reference} (target <= 1)"
    )
    print(f"--jobs 1 and --jobs 2 wrote identical wheels: {same}")
    return 0 if same else 1


def _whole(engine: str, level: int) -> Callable[[bytes], bytes]:
    """One raw deflate stream of the whole buffer."""
    if engine == "libdeflate":
        compress = importlib.import_module("deflate").deflate_compress
        return lambda data: bytes(compress(data, level))
    module: object = zlib
    if engine != "zlib":
        module = importlib.import_module(
            {"isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng"}[engine]
        )

    def run(data: bytes) -> bytes:
        compressor = module.compressobj(level, 8, -15)  # type: ignore[attr-defined]
        return bytes(compressor.compress(data) + compressor.flush())

    return run


def _pieces(engine: str, level: int) -> Callable[[bytes], bytes]:
    """The writer's pieces (1 MiB, joined into one stream), through the wheelyard backends."""
    backend = load_backend(engine)

    def run(data: bytes) -> bytes:
        view, parts = memoryview(data), []
        for start in range(0, len(data), CHUNK_SIZE):
            history = bytes(view[max(0, start - WINDOW) : start]) if backend.uses_history else b""
            final = start + CHUNK_SIZE >= len(data)
            piece = view[start : start + CHUNK_SIZE]
            parts.append(backend.deflate(piece, history=history, level=level, final=final))
        return b"".join(parts)

    return run


ENGINES = [
    ("zlib", 1),
    ("zlib", 6),
    ("zlib", 9),
    ("zlib-ng", 6),
    ("isal", 1),
    ("isal", 2),
    ("isal", 3),
    ("libdeflate", 1),
    ("libdeflate", 4),
    ("libdeflate", 5),
    ("libdeflate", 6),
    ("libdeflate", 7),
    ("libdeflate", 9),
]


def bench_engines(data: bytes, label: str) -> int:
    print(f"{label}: {len(data) / MIB:.0f} MiB, one core\n")
    print(
        "| engine | level | whole: MiB/s | ratio | 1 MiB pieces: MiB/s | ratio | × zlib 6 |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    reference = 0
    for engine, level in ENGINES:
        cells = []
        for make in (_whole, _pieces):
            if make is _pieces and engine == "zlib-ng":
                cells += ["", ""]
                continue
            try:
                run = make(engine, level)
            except ImportError:
                break
            start = time.perf_counter()
            stream = run(data)
            seconds = time.perf_counter() - start
            if zlib.decompress(stream, -15) != data:
                raise SystemExit(f"{engine} {level}: the stream does not inflate to the input")
            cells += [f"{len(data) / MIB / seconds:.0f}", f"{len(stream) / len(data):.4f}"]
            size = len(stream)
        else:
            reference = reference or (size if (engine, level) == ("zlib", 6) else 0)
            versus = f"{size / reference:.4f}" if reference else ""
            print(f"| {engine} | {level} | {' | '.join(cells)} | {versus} |", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1100, help="approximate tree size")
    parser.add_argument(
        "--presets",
        default="default,fast,small",
        help="--compression presets to build besides zlib (comma-separated)",
    )
    parser.add_argument("--keep", type=Path, help="keep the tree and builds in this directory")
    parser.add_argument("--engines", action="store_true", help="compare deflate engines instead")
    parser.add_argument("--engines-mib", type=int, default=128, help="bytes to compress, MiB")
    parser.add_argument("--engines-input", type=Path, help="compress this file, not synthetic")
    parser.add_argument("--make-tree", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_tree:
        make_tree(args.make_tree, args.size_mib)
        return 0
    if args.engines:
        if args.engines_input:
            with open(args.engines_input, "rb") as handle:
                data = handle.read(args.engines_mib * MIB)
            return bench_engines(
                data, f"the first {len(data) / MIB:.0f} MiB of {args.engines_input}"
            )
        return bench_engines(fat_binary(args.engines_mib * MIB, seed=1), "synthetic fat binary")
    base = Path(tempfile.mkdtemp(prefix="wheelyard-bench-", dir=args.keep))
    try:
        return bench_builds(base, args.size_mib, [p for p in args.presets.split(",") if p])
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
