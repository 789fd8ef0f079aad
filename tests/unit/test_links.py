from __future__ import annotations

from pathlib import Path

import pytest

from wheelyard.artifacts.catalog import ArtifactName, StagedFile
from wheelyard.build.links import TreeLinks, runtime_payload
from wheelyard.elf.read import ElfInfo
from wheelyard.errors import SplitError

ART = ArtifactName(name="core-hip", component="lib", family="generic")


def _lib(soname: str | None, *, executable: bool = False) -> ElfInfo:
    return ElfInfo(
        machine="x86_64",
        bits=64,
        elf_type="ET_DYN",
        is_executable=executable,
        soname=soname,
        needed=(),
        rpath=(),
        runpath=(),
        glibc=(2, 17),
    )


def _file(path: str, *, executable: bool = False) -> StagedFile:
    return StagedFile(
        artifact=ART,
        path=path,
        source=Path("/src") / path,
        kind="file",
        size=1,
        executable=executable,
    )


def _link(path: str, target: str) -> StagedFile:
    return StagedFile(
        artifact=ART,
        path=path,
        source=Path("/src") / path,
        kind="symlink",
        size=0,
        link_target=target,
    )


def _tree(*files: StagedFile) -> dict[str, StagedFile]:
    return {f.path: f for f in files}


def test_library_stored_under_soname_and_aliases_dropped() -> None:
    real = _file("lib/libamdhip64.so.7.1.25000", executable=True)
    tree = _tree(
        real,
        _link("lib/libamdhip64.so.7", "libamdhip64.so.7.1.25000"),
        _link("lib/libamdhip64.so", "libamdhip64.so.7"),
    )
    links = TreeLinks(tree=tree, elf={real.source: _lib("libamdhip64.so.7")})
    dangling: list[str] = []
    payload = runtime_payload(list(tree.values()), links, on_dangling=dangling.append)
    assert [(p.path, p.staged.path, p.executable) for p in payload] == [
        ("lib/libamdhip64.so.7", "lib/libamdhip64.so.7.1.25000", True)
    ]
    assert links.is_library_alias("lib/libamdhip64.so")
    assert dangling == []


def test_library_without_soname_keeps_its_name() -> None:
    real = _file("lib/libplugin.so")
    links = TreeLinks(tree=_tree(real), elf={real.source: _lib(None)})
    assert links.stored_path("lib/libplugin.so") == "lib/libplugin.so"


def test_symlinked_executable_is_stored_as_a_copy() -> None:
    clang = _file("lib/llvm/bin/clang", executable=True)
    tree = _tree(
        clang,
        _link("bin/amdclang", "../lib/llvm/bin/clang"),
        _link("lib/llvm/bin/clang++", "clang"),
    )
    links = TreeLinks(tree=tree, elf={clang.source: _lib(None, executable=True)})
    payload = runtime_payload(list(tree.values()), links, on_dangling=lambda _: None)
    assert [(p.path, p.staged.path, p.executable) for p in payload] == [
        ("bin/amdclang", "lib/llvm/bin/clang", True),
        ("lib/llvm/bin/clang", "lib/llvm/bin/clang", True),
        ("lib/llvm/bin/clang++", "lib/llvm/bin/clang", True),
    ]


def test_directory_links_and_dangling_links() -> None:
    header = _file("lib/clang/20/include/stddef.h")
    tree = _tree(header, _link("lib/clang/current", "20"), _link("bin/hipcc.pl", "../nowhere"))
    links = TreeLinks(tree=tree, elf={header.source: None})
    assert links.resolve("lib/clang/current").kind == "dir"
    assert links.resolve("bin/hipcc.pl").kind == "dangling"
    dangling: list[str] = []
    payload = runtime_payload(list(tree.values()), links, on_dangling=dangling.append)
    assert [p.path for p in payload] == ["lib/clang/20/include/stddef.h"]
    assert dangling == ["core-hip_lib_generic/bin/hipcc.pl -> ../nowhere"]


def test_link_loop_is_dangling() -> None:
    tree = _tree(_link("a", "b"), _link("b", "a"))
    assert TreeLinks(tree=tree, elf={}).resolve("a").kind == "dangling"


def test_two_libraries_claiming_one_soname() -> None:
    one, two = _file("lib/libx.so.1.0"), _file("lib/libx.so.1.1")
    with pytest.raises(SplitError, match="SONAME names clash") as info:
        TreeLinks(
            tree=_tree(one, two), elf={one.source: _lib("libx.so.1"), two.source: _lib("libx.so.1")}
        )
    assert "lib/libx.so.1.1" in str(info.value)


def test_links_through_a_directory_link_are_followed() -> None:
    tree = _tree(
        _file("lib/llvm/bin/clang", executable=True),
        _link("llvm", "lib/llvm"),
        _link("bin/clang", "../llvm/bin/clang"),
    )
    links = TreeLinks(tree=tree, elf={})
    resolution = links.resolve("bin/clang")
    assert (resolution.kind, resolution.path) == ("file", "lib/llvm/bin/clang")


def test_dot_dot_applies_where_a_link_led_not_to_its_text() -> None:
    # Each link alone stays inside; together, resolved as the kernel does, they climb out.
    tree = _tree(_file("sub/x"), _link("sub/up", ".."), _link("y", "sub/up/.."))
    links = TreeLinks(tree=tree, elf={})
    with pytest.raises(SplitError, match="leads out of the installed tree") as caught:
        links.resolve("y")
    assert "y" in str(caught.value)


def test_a_missing_directory_in_the_middle_is_dangling() -> None:
    tree = _tree(_file("lib/a"), _link("lib/b", "missing/../a"))
    links = TreeLinks(tree=tree, elf={})
    assert links.resolve("lib/b").kind == "dangling"
