"""Hostile artifacts through the CLI: each is refused with one ``error:`` line naming the archive
and member, no traceback, ``--out`` untouched and a canary file outside the work area unchanged
(content, mode, owner, mtime, link count). The tarballs are built here from raw ``TarInfo``
headers, so nothing binary is committed."""

from __future__ import annotations

import io
import lzma
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard
from tests.conftest import SAMPLE, Link, make_artifact, run_wheelyard
from tests.integration._canary import plant_canary, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FAMILY = "gfx120X-all"
NAME = "x_lib_generic"
KINDS = ["xz", "zst"]
DEPTH = 30  # deeper than any tmp path: the chains below clamp at "/" and then name the canary
Member = tuple[tarfile.TarInfo, bytes | None]


@dataclass(frozen=True)
class Scene:
    work: Path  # holds --artifacts and --out; the build stages beside --out, in here
    artifacts: Path
    out: Path
    canary: Path  # outside the work area


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    canary = tmp_path / "canary" / "secret.txt"
    plant_canary(canary)
    work = tmp_path / "work"
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True)
    out = work / "out"
    (out / "dist").mkdir(parents=True)
    (out / "dist" / "previous-1.0-py3-none-any.whl").write_bytes(b"previous build")
    return Scene(work=work, artifacts=artifacts, out=out, canary=canary)


def _refused(scene: Scene, *needles: str, options: tuple[str, ...] = ()) -> str:
    """Run the build; check the refusal and that nothing outside moved. Returns the error line."""
    before_out, before_canary = snapshot(scene.out), snapshot(scene.canary.parent)
    result = run_wheelyard(
        "build", FAMILY, "--artifacts", scene.artifacts, "--out", scene.out, *options, timeout=30
    )
    text = result.stdout + result.stderr
    assert snapshot(scene.canary.parent) == before_canary, "the canary changed"
    assert snapshot(scene.out) == before_out, "--out changed"
    assert not list(scene.work.glob(".out.tmp-*")), "staging left behind"
    assert result.returncode != 0, text
    assert "Traceback" not in text, text
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    assert not any(char < " " and char not in "\n" for char in result.stderr), result.stderr
    return errors[0]


# --- building archives --------------------------------------------------------------------


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def _file(name: str, data: bytes) -> Member:
    return _info(name, size=len(data)), data


def _base() -> list[Member]:
    return [
        _file("artifact_manifest.txt", b"stage\n"),
        _file("stage/lib/libx.so.1", b"not really ELF"),
    ]


def _tar(members: list[Member], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _raw(members: list[Member]) -> bytes:
    """Members as header and data blocks, without the end-of-archive blocks."""
    raw = b""
    for info, data in members:
        raw += info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        if data:
            raw += data + b"\0" * (-len(data) % 512)
    return raw


def _write(scene: Scene, raw: bytes, kind: str) -> Path:
    if kind == "xz":
        archive = scene.artifacts / f"{NAME}.tar.xz"
        archive.write_bytes(lzma.compress(raw))
    else:
        archive = scene.artifacts / f"{NAME}.tar.zst"
        archive.write_bytes(zstandard.ZstdCompressor().compress(raw))
    return archive


def _archive(scene: Scene, kind: str, extra: list[Member], base: bool = True) -> Path:
    return _write(scene, _tar((_base() if base else []) + extra), kind)


def _up_chain(canary: Path) -> tuple[Member, str]:
    """``stage/d/.../d/up -> ../.../..`` (back to the stage) and a target through it to ``canary``.

    As text the target stays inside (its ``..`` cancel the ``d`` components); followed through
    ``up`` it climbs out, clamps at ``/`` and names the canary.
    """
    deep = "d/" * DEPTH
    up = _info(f"stage/{deep}up", tarfile.SYMTYPE, "../" * DEPTH)
    return (up, None), deep + "up/" + "../" * DEPTH + str(canary).lstrip("/")


# --- links --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_symlink_through_earlier_symlinks(scene: Scene, kind: str) -> None:
    up, target = _up_chain(scene.canary)
    escape = (_info("stage/esc", tarfile.SYMTYPE, target), None)
    overwrite = _file("stage/esc", b"overwritten")  # what a steered extractor would write
    archive = _archive(scene, kind, [up, escape, overwrite])
    _refused(scene, archive.name, "'stage/esc'", "leaves the artifact", "extracted before it")


@pytest.mark.parametrize("kind", KINDS)
def test_symlink_then_hard_link_chain(scene: Scene, kind: str) -> None:
    up, target = _up_chain(scene.canary)
    leak = (_info("stage/lib/leak", tarfile.LNKTYPE, f"stage/{target}"), None)
    archive = _archive(scene, kind, [up, leak, _file("stage/lib/leak", b"overwritten")])
    _refused(scene, archive.name, "hard link 'stage/lib/leak'", "leaves the artifact")


@pytest.mark.parametrize("kind", KINDS)
def test_hard_link_to_missing_member(scene: Scene, kind: str) -> None:
    link = (_info("stage/lib/libx.so", tarfile.LNKTYPE, "stage/lib/libmissing.so.1"), None)
    archive = _archive(scene, kind, [link])
    _refused(scene, archive.name, "'stage/lib/libx.so'", "names nothing")


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_member(scene: Scene, kind: str) -> None:
    archive = _archive(scene, kind, [_file("stage/lib/libx.so.1", b"second copy")])
    _refused(scene, archive.name, "'stage/lib/libx.so.1'", "appears twice")


# --- member types, names and sizes --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("name", "member_type", "word"),
    [
        ("artifact_manifest.txt", tarfile.FIFOTYPE, "FIFO"),
        ("stage/dev/null", tarfile.CHRTYPE, "character device"),
    ],
)
def test_special_member(scene: Scene, kind: str, name: str, member_type: bytes, word: str) -> None:
    special = _info(name, member_type)
    special.devmajor, special.devminor = 1, 3
    members = [_file("stage/lib/libx.so.1", b"x"), (special, None)]
    archive = _archive(scene, kind, members, base=False)
    _refused(scene, archive.name, repr(name), word)


@pytest.mark.parametrize("kind", KINDS)
def test_absurd_declared_size(scene: Scene, kind: str) -> None:
    huge = _info("stage/lib/huge", size=1 << 50)
    raw = _raw([*_base(), (huge, b"only a few bytes")]) + b"\0" * 1024
    archive = _write(scene, raw, kind)
    _refused(scene, archive.name, "'stage/lib/huge'", "declares 1125899906842624 bytes")


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_bomb(scene: Scene, kind: str) -> None:
    real = 50 << 30
    sparse = _info("stage/lib/bomb", size=512)
    sparse.pax_headers = {"GNU.sparse.map": f"{real - 512},512", "GNU.sparse.size": str(real)}
    archive = _write(scene, _tar([*_base(), (sparse, b"x" * 512)], tarfile.PAX_FORMAT), kind)
    assert archive.stat().st_size < 4096
    _refused(scene, archive.name, "'stage/lib/bomb'", "sparse")


def test_total_over_the_command_line_limit(scene: Scene) -> None:
    archive = _archive(scene, "xz", [_file("stage/lib/big", b"x" * 4096)])
    limit = ("--max-extract-size", "2K")
    message = _refused(scene, archive.name, "'stage/lib/big'", "past 2.0 KiB", options=limit)
    assert "declares 4096 bytes" in message


def test_zstd_window_too_large(scene: Scene) -> None:
    params = zstandard.ZstdCompressionParameters(window_log=28, compression_level=3)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()
    archive = scene.artifacts / f"{NAME}.tar.zst"
    archive.write_bytes(stream.compress(_tar(_base())) + stream.flush())
    _refused(scene, archive.name, "256.0 MiB window")


def test_zstd_frame_declaring_a_huge_content(scene: Scene) -> None:
    # Magic, a descriptor with an 8-byte content size and single segment, the size (1 PiB), one
    # empty last raw block: nothing needs decoding before the size is refused.
    header = zstandard.FRAME_HEADER + bytes([0xE0]) + (1 << 50).to_bytes(8, "little")
    archive = scene.artifacts / f"{NAME}.tar.zst"
    archive.write_bytes(header + b"\x01\x00\x00")
    _refused(scene, archive.name, "declare 1048576.0 GiB of content")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("stage/lib/" + "n" * 300, "file name of 300 bytes"),
        ("stage/" + "p/" * 2100 + "f", "once extracted"),
    ],
)
def test_path_too_long_for_the_os(scene: Scene, kind: str, name: str, needle: str) -> None:
    archive = _archive(scene, kind, [_file(name, b"x")])
    _refused(scene, archive.name, needle)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("xz", "stage/lib/\x1b]0;owned\x07\x1b[2J"),
        ("zst", "stage/lib/\x1b]0;owned\x07\x1b[2J"),
        ("zst", "stage/lib/a\nerror: fake second line"),
    ],
)
def test_control_characters_in_names(scene: Scene, kind: str, name: str) -> None:
    archive = _archive(scene, kind, [_file(name, b"x")])
    _refused(scene, archive.name, repr(name), "control characters")


@pytest.mark.parametrize("kind", ["xz"])
def test_control_characters_in_link_targets(scene: Scene, kind: str) -> None:
    link = (_info("stage/lib/libx.so", tarfile.SYMTYPE, "libx.so.1\x1b[2J"), None)
    archive = _archive(scene, kind, [link])
    _refused(scene, archive.name, "'stage/lib/libx.so'", "control characters")


# --- side files that are not regular files ------------------------------------------------


@pytest.mark.parametrize("make", ["fifo", "symlink"])
def test_checksum_file_that_is_not_a_file(scene: Scene, make: str) -> None:
    archive = _archive(scene, "xz", [])
    sidecar = archive.with_name(archive.name + ".sha256sum")
    if make == "fifo":
        os.mkfifo(sidecar)
    else:
        sidecar.symlink_to(scene.canary)
    word = "a FIFO" if make == "fifo" else "a symlink"
    _refused(scene, sidecar.name, word, "not a regular file")


@pytest.mark.parametrize("make", ["fifo", "symlink"])
def test_manifest_that_is_not_a_file(scene: Scene, make: str) -> None:
    artifact = make_artifact(scene.artifacts, NAME, {"lib/libx.so.1": b"x"})
    manifest = artifact / "artifact_manifest.txt"
    manifest.unlink()
    if make == "fifo":
        os.mkfifo(manifest)
    else:
        manifest.symlink_to(scene.canary)
    word = "a FIFO" if make == "fifo" else "a symlink"
    _refused(scene, f"{NAME}/artifact_manifest.txt", word, "not a regular file")


# --- directory artifacts ------------------------------------------------------------------


def test_directory_symlink_escaping_through_the_tree(scene: Scene) -> None:
    (up, _), target = _up_chain(scene.canary)
    deep = up.name.removeprefix("stage/")
    make_artifact(
        scene.artifacts,
        NAME,
        {deep: Link(up.linkname), "lib/libx.so.1": b"x", "esc": Link(target)},
    )
    _refused(scene, f"{NAME}/stage/esc", f"leaves artifact {NAME}", "through the links")


@pytest.mark.parametrize("what", ["directory", "archive"])
def test_symlinked_artifact(scene: Scene, tmp_path: Path, what: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if what == "directory":
        real = make_artifact(elsewhere, NAME, {"lib/libx.so.1": b"x"})
        link = scene.artifacts / NAME
    else:
        real = elsewhere / f"{NAME}.tar.xz"
        real.write_bytes(lzma.compress(_tar(_base())))
        link = scene.artifacts / real.name
    link.symlink_to(real)
    _refused(scene, link.name, "is a symlink", "not followed")


def test_link_chain_across_artifacts_leaving_the_tree(scene: Scene) -> None:
    # Each artifact's link stays inside its own tree; merged into one family tree, and resolved
    # as the kernel would (`share/esc` -> `share/hop/..`, `share/hop` -> `..`), they climb out.
    shutil.copytree(SAMPLE, scene.artifacts, symlinks=True, dirs_exist_ok=True)
    make_artifact(scene.artifacts, "rocwmma_dev_generic", {"share/hop": Link("..")})
    make_artifact(scene.artifacts, "flatbuffers_dev_generic", {"share/esc": Link("hop/..")})
    _refused(scene, "symlink share/esc leads out of the installed tree")
