from __future__ import annotations

import hashlib
import io
import lzma
import os
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
