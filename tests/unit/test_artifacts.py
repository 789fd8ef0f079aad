from __future__ import annotations

import hashlib
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from tests.conftest import Link

from wheelyard.artifacts.catalog import ArtifactName, find_artifacts, read_artifact, select
from wheelyard.artifacts.extract import extract_archive
from wheelyard.errors import ArtifactError


@pytest.mark.parametrize(
    ("text", "name", "component", "family"),
    [
        ("core-hip_lib_generic", "core-hip", "lib", "generic"),
        ("blas_lib_gfx94X-dcgpu", "blas", "lib", "gfx94X-dcgpu"),
        ("sysdeps-amd-mesa_run_gfx1151", "sysdeps-amd-mesa", "run", "gfx1151"),
    ],
)
def test_parse_names(text: str, name: str, component: str, family: str) -> None:
    parsed = ArtifactName.parse(text)
    assert (parsed.name, parsed.component, parsed.family) == (name, component, family)
    assert str(parsed) == text


@pytest.mark.parametrize(
    "text",
    ["core_hip_lib_generic", "blas-lib-generic", "blas_bin_generic", "blas_lib_", "_lib_generic"],
)
def test_malformed_names(text: str) -> None:
    with pytest.raises(ArtifactError, match="malformed artifact name"):
        ArtifactName.parse(text)


def test_tree_merges_stage_roots_and_skips_missing_ones(
    artifact_factory: Callable[..., Path],
) -> None:
    path = artifact_factory(
        "blas_lib_gfx94X-dcgpu",
        {"lib/librocblas.so.5": b"x", "lib/librocblas.so": Link("librocblas.so.5")},
        root="math-libs/BLAS/stage",
        extra_roots=("math-libs/never-built/stage",),
    )
    extra = path / "other" / "stage" / "share"
    extra.mkdir(parents=True)
    (extra / "doc.txt").write_text("doc")
    (path / "artifact_manifest.txt").write_text(
        "math-libs/BLAS/stage\nmath-libs/never-built/stage\n\nother/stage\n"
    )
    sources = find_artifacts(path.parent)
    artifact = read_artifact(sources[0], extract_to=path.parent / "x")
    files = {f.path: f for f in artifact.files}
    assert sorted(files) == ["lib/librocblas.so", "lib/librocblas.so.5", "share/doc.txt"]
    assert files["lib/librocblas.so"].kind == "symlink"
    assert files["lib/librocblas.so"].link_target == "librocblas.so.5"


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "blas_lib_generic" / "lib").mkdir(parents=True)
    source = find_artifacts(tmp_path)[0]
    with pytest.raises(ArtifactError, match="artifact_manifest.txt is missing"):
        read_artifact(source, extract_to=tmp_path / "x")


def test_manifest_root_escaping(artifact_factory: Callable[..., Path]) -> None:
    path = artifact_factory("blas_lib_generic", {"a": b"a"})
    (path / "artifact_manifest.txt").write_text("../../etc\n")
    with pytest.raises(ArtifactError, match="leaves the artifact"):
        read_artifact(find_artifacts(path.parent)[0], extract_to=path.parent / "x")


def test_symlink_escaping_the_artifact(artifact_factory: Callable[..., Path]) -> None:
    path = artifact_factory("blas_lib_generic", {"lib/evil": Link("../../../../etc/passwd")})
    with pytest.raises(ArtifactError, match="leaves artifact"):
        read_artifact(find_artifacts(path.parent)[0], extract_to=path.parent / "x")


def test_absolute_symlink_is_refused(artifact_factory: Callable[..., Path]) -> None:
    path = artifact_factory("blas_lib_generic", {"lib/evil": Link("/etc/passwd")})
    with pytest.raises(ArtifactError, match="leaves artifact"):
        read_artifact(find_artifacts(path.parent)[0], extract_to=path.parent / "x")


def test_misnamed_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "not-an-artifact").mkdir()
    (tmp_path / "README.md").write_text("ignored")
    with pytest.raises(ArtifactError, match="malformed artifact name 'not-an-artifact'"):
        find_artifacts(tmp_path)


def test_select_keeps_generic_and_requested(tmp_path: Path) -> None:
    for name in ("a_lib_generic", "b_lib_gfx94X-dcgpu", "b_lib_gfx120X-all"):
        (tmp_path / name).mkdir()
    chosen = select(find_artifacts(tmp_path), ["gfx120X-all"])
    assert [str(s.name) for s in chosen] == ["a_lib_generic", "b_lib_gfx120X-all"]


# --- archives -----------------------------------------------------------------------------


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _good_members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    link = tarfile.TarInfo("stage/lib/libx.so")
    link.type = tarfile.SYMTYPE
    link.linkname = "libx.so.1"
    return [
        _file("artifact_manifest.txt", b"stage\n"),
        _file("stage/lib/libx.so.1", b"ELF?"),
        (link, None),
    ]


def _write_archive(directory: Path, name: str, raw: bytes, kind: str = "xz") -> Path:
    if kind == "xz":
        path = directory / f"{name}.tar.xz"
        path.write_bytes(lzma.compress(raw))
    else:
        path = directory / f"{name}.tar.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    return path


@pytest.mark.parametrize("kind", ["xz", "zst"])
def test_archives_extract(tmp_path: Path, kind: str) -> None:
    archive = _write_archive(tmp_path, "x_lib_generic", _tar_bytes(_good_members()), kind)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (tmp_path / f"{archive.name}.sha256sum").write_text(f"{digest}  {archive.name}\n")
    sources = find_artifacts(tmp_path)
    assert sources[0].is_archive
    artifact = read_artifact(sources[0], extract_to=tmp_path / "extract")
    assert sorted(f.path for f in artifact.files) == ["lib/libx.so", "lib/libx.so.1"]


def test_checksum_mismatch(tmp_path: Path) -> None:
    archive = _write_archive(tmp_path, "x_lib_generic", _tar_bytes(_good_members()))
    (tmp_path / f"{archive.name}.sha256sum").write_text("0" * 64 + f"  {archive.name}\n")
    with pytest.raises(ArtifactError, match="does not match"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["xz", "zst"])
def test_truncated_archive(tmp_path: Path, kind: str) -> None:
    archive = _write_archive(tmp_path, "x_lib_generic", _tar_bytes(_good_members()), kind)
    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial").exists()


def test_garbage_archive(tmp_path: Path) -> None:
    archive = tmp_path / "x_lib_generic.tar.xz"
    archive.write_bytes(os.urandom(300))
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        extract_archive(archive, tmp_path / "out")


def _hostile(kind: str) -> tarfile.TarInfo:
    if kind == "traversal":
        info, _ = _file("../../evil", b"")
    elif kind == "absolute":
        info, _ = _file("/tmp/evil", b"")
    elif kind == "symlink":
        info = tarfile.TarInfo("stage/lib/evil")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../../etc/passwd"
    elif kind == "hardlink":
        info = tarfile.TarInfo("stage/lib/evil")
        info.type = tarfile.LNKTYPE
        info.linkname = "../outside"
    else:
        info = tarfile.TarInfo("stage/dev/null")
        info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink", "device"])
def test_hostile_members_are_refused(tmp_path: Path, kind: str) -> None:
    members = _good_members() + [(_hostile(kind), None)]
    archive = _write_archive(tmp_path, "x_lib_generic", _tar_bytes(members))
    with pytest.raises(ArtifactError) as info:
        extract_archive(archive, tmp_path / "out" / "x_lib_generic")
    assert archive.name in str(info.value)
    assert not (tmp_path / "out" / "x_lib_generic").exists()
    assert not list((tmp_path / "out").glob("*")), "nothing half-written"
    assert not (tmp_path / "evil").exists()


# --- the confined extractor: what it accepts ------------------------------------------------


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _extract(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], **kw: int
) -> Path:
    archive = _write_archive(tmp_path, "x_lib_generic", _tar_bytes(members), "zst")
    return extract_archive(archive, tmp_path / "out" / "x_lib_generic", **kw)


def _refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], match: str
) -> None:
    with pytest.raises(ArtifactError, match=match):
        _extract(tmp_path, members)
    assert not list((tmp_path / "out").iterdir()), "nothing half-written"


def test_modes_are_masked_and_hard_links_share_the_file(tmp_path: Path) -> None:
    setuid, _ = _file("stage/bin/tool", b"#!/bin/sh\n")
    setuid.mode = 0o6777
    shared, _ = _file("stage/share/open", b"data")
    shared.mode = 0o666
    directory = tarfile.TarInfo("stage/share")
    directory.type = tarfile.DIRTYPE
    directory.mode = 0o1777
    root = _extract(
        tmp_path,
        [
            (setuid, b"#!/bin/sh\n"),
            (shared, b"data"),
            (directory, None),
            _link("stage/bin/tool2", "stage/bin/tool", tarfile.LNKTYPE),
        ],
    )
    assert stat.S_IMODE((root / "stage/bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "stage/share/open").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "stage/share").stat().st_mode) == 0o755
    assert (root / "stage/bin/tool2").stat().st_ino == (root / "stage/bin/tool").stat().st_ino


def test_dangling_and_chained_links_inside_are_kept(tmp_path: Path) -> None:
    root = _extract(
        tmp_path,
        [
            *_good_members(),
            _link("stage/lib/libx.so.0", "libx.so"),  # through an earlier link
            _link("stage/bin/gone", "../share/missing"),  # dangles, but inside
            _link("stage/lib/up", ".."),
            _link("stage/lib/self", "up/lib/libx.so.1"),
        ],
    )
    assert (root / "stage/lib/libx.so.0").read_bytes() == b"ELF?"
    assert os.readlink(root / "stage/bin/gone") == "../share/missing"


def test_large_files_and_multiple_frames(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    first = _tar_bytes([_file("artifact_manifest.txt", b"stage\n"), _file("stage/big", data)])
    compressor = zstandard.ZstdCompressor()
    archive = tmp_path / "x_lib_generic.tar.zst"
    half = len(first) // 2  # two frames: the stream must be read across them
    archive.write_bytes(compressor.compress(first[:half]) + compressor.compress(first[half:]))
    root = extract_archive(archive, tmp_path / "out" / "x")
    assert (root / "stage/big").read_bytes() == data


def test_concatenated_xz_streams(tmp_path: Path) -> None:
    raw = _tar_bytes(_good_members())
    archive = tmp_path / "x_lib_generic.tar.xz"
    archive.write_bytes(lzma.compress(raw[:700]) + lzma.compress(raw[700:]))
    root = extract_archive(archive, tmp_path / "out" / "x")
    assert (root / "stage/lib/libx.so.1").read_bytes() == b"ELF?"


# --- the confined extractor: what it refuses ------------------------------------------------


def test_link_made_escaping_by_a_later_member(tmp_path: Path) -> None:
    # 'stage/l -> m/../..' stays inside while m is absent; m -> .. turns it into stage/../..
    members = [*_good_members(), _link("stage/l", "m/../.."), _link("stage/m", "..")]
    _refused(tmp_path, members, r"'stage/m' -> '\.\.' changes what the earlier symlink 'stage/l'")


def test_symlink_loop(tmp_path: Path) -> None:
    members = [*_good_members(), _link("stage/a", "b"), _link("stage/b", "a")]
    _refused(tmp_path, members, "a loop")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ([_link("stage/lib/up", ".."), _file("stage/lib/up/x", b"")], "below the symlink"),
        ([_file("stage/lib/libx.so.1/x", b"")], "below the file"),
        ([_file("stage/lib", b"")], "earlier members were extracted into"),
        ([_link("stage/h", "stage/lib", tarfile.LNKTYPE)], "names a dir"),
        ([_link("stage/h", "stage/lib/libx.so", tarfile.LNKTYPE)], "names a symlink"),
        ([_link("stage/h", "stage/lib/up/lib/libx.so.1", tarfile.LNKTYPE)], "names nothing"),
        ([_link("stage/h", "../x", tarfile.LNKTYPE)], "leaves the artifact"),
        ([_link("stage/abs", "/etc/passwd")], "absolute target"),
        ([(tarfile.TarInfo("stage/p"), None)], ""),  # a control: plain empty file passes
    ],
)
def test_refused_members(
    tmp_path: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]], match: str
) -> None:
    if not match:
        _extract(tmp_path, [*_good_members(), *extra])
        return
    _refused(tmp_path, [*_good_members(), *extra], match)


@pytest.mark.parametrize("member_type", [tarfile.FIFOTYPE, tarfile.BLKTYPE, b"V"])
def test_special_members(tmp_path: Path, member_type: bytes) -> None:
    special = tarfile.TarInfo("stage/special")
    special.type = member_type
    _refused(tmp_path, [*_good_members(), (special, None)], "'stage/special' is ")


def test_explicit_directory_twice(tmp_path: Path) -> None:
    directory = tarfile.TarInfo("stage/lib")
    directory.type = tarfile.DIRTYPE
    _refused(tmp_path, [*_good_members(), (directory, None), (directory, None)], "appears twice")


def test_declared_sizes_are_summed_against_the_limit(tmp_path: Path) -> None:
    members = [*_good_members(), _file("stage/a", b"a" * 600), _file("stage/b", b"b" * 600)]
    archive = _write_archive(tmp_path, "x_lib_generic", _tar_bytes(members))
    with pytest.raises(ArtifactError, match="'stage/b' declares 600 bytes"):
        extract_archive(archive, tmp_path / "out" / "x", max_bytes=1000)
    extract_archive(archive, tmp_path / "out" / "x", max_bytes=1300)


def test_oversized_pax_header_is_not_read_into_memory(tmp_path: Path) -> None:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 1 << 40
    raw = header.tobuf(tarfile.GNU_FORMAT) + b"\0" * (20 << 20)
    archive = tmp_path / "x_lib_generic.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor(level=1).compress(raw))
    with pytest.raises(ArtifactError, match="tar headers of the first member are larger"):
        extract_archive(archive, tmp_path / "out" / "x")


def test_data_after_the_end_is_read_and_bounded(tmp_path: Path) -> None:
    raw = _tar_bytes(_good_members()) + b"\0" * (20 << 20)
    archive = tmp_path / "x_lib_generic.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor(level=1).compress(raw))
    with pytest.raises(ArtifactError, match="after the end of the tar archive"):
        extract_archive(archive, tmp_path / "out" / "x")


# --- side files and directory artifacts ---------------------------------------------------


@pytest.mark.timeout(10)
def test_fifo_checksum_file_does_not_block(tmp_path: Path) -> None:
    archive = _write_archive(tmp_path, "x_lib_generic", _tar_bytes(_good_members()))
    os.mkfifo(tmp_path / f"{archive.name}.sha256sum")
    with pytest.raises(ArtifactError, match="is a FIFO, not a regular file"):
        extract_archive(archive, tmp_path / "out")


def test_oversized_manifest(artifact_factory: Callable[..., Path]) -> None:
    path = artifact_factory("blas_lib_generic", {"a": b"a"})
    (path / "artifact_manifest.txt").write_text("stage\n" + "#" * (2 << 20))
    with pytest.raises(ArtifactError, match="at most 1048576 allowed"):
        read_artifact(find_artifacts(path.parent)[0], extract_to=path.parent / "x")


def test_directory_link_escaping_through_another_link(
    artifact_factory: Callable[..., Path],
) -> None:
    # As text, 'a/up/../../etc' is 'etc' inside the stage; followed, a/up is the stage itself.
    files = {"a/up": Link(".."), "evil": Link("a/up/../../etc"), "lib/x": b"x"}
    path = artifact_factory("blas_lib_generic", files)
    with pytest.raises(ArtifactError, match="evil: symlink to 'a/up/../../etc' leaves artifact"):
        read_artifact(find_artifacts(path.parent)[0], extract_to=path.parent / "x")


def test_directory_file_name_with_control_characters(
    artifact_factory: Callable[..., Path],
) -> None:
    path = artifact_factory("blas_lib_generic", {"lib/a\x1b[2Jb": b"x"})
    with pytest.raises(ArtifactError, match=r"'lib/a\\x1b\[2Jb' contains control characters"):
        read_artifact(find_artifacts(path.parent)[0], extract_to=path.parent / "x")


def test_symlinked_artifacts_are_named_not_skipped(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "blas_lib_generic"
    real.mkdir(parents=True)
    listing = tmp_path / "artifacts"
    listing.mkdir()
    (tmp_path / "elsewhere" / "README.md").write_text("read me")
    (listing / "README.md").symlink_to(tmp_path / "elsewhere" / "README.md")
    (listing / "notes.txt").symlink_to(tmp_path / "nowhere")  # dangling
    assert find_artifacts(listing) == []
    (listing / "blas_lib_generic").symlink_to(real)
    with pytest.raises(ArtifactError, match="blas_lib_generic: is a symlink"):
        find_artifacts(listing)


def test_fifo_named_like_an_archive(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "blas_lib_generic.tar.xz")
    with pytest.raises(ArtifactError, match="not a regular file"):
        find_artifacts(tmp_path)


def test_zstd_cut_at_a_member_boundary_is_noticed(tmp_path: Path) -> None:
    # zstandard's reader ends quietly at a cut frame; tar would then see a clean end of archive
    # after the first member, and a smaller tree would pass as the whole artifact.
    raw = _tar_bytes(_good_members())
    boundary = 512 + 512  # the manifest's header and data block
    compressor = zstandard.ZstdCompressor()
    first, second = compressor.compress(raw[:boundary]), compressor.compress(raw[boundary:])
    archive = tmp_path / "x_lib_generic.tar.zst"
    archive.write_bytes(first + second[:8])
    with pytest.raises(ArtifactError, match="corrupt or truncated archive .the file ends inside"):
        extract_archive(archive, tmp_path / "out" / "x")
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    archive.write_bytes(skippable + first + second)
    assert (extract_archive(archive, tmp_path / "out" / "x") / "artifact_manifest.txt").is_file()
    archive.write_bytes(first + second + b"trailing garbage")
    with pytest.raises(ArtifactError, match="no zstd frame at byte"):
        extract_archive(archive, tmp_path / "out" / "x")
