"""Index pages: rendering, escaping, determinism, checks, merging and the write step."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin

import pytest
from tests.conftest import PROFILE
from tests.integration._synthetic_dist import VERSION, make_synthetic_dist, namespace_hashes

from wheelyard.__main__ import main
from wheelyard.errors import IndexError_
from wheelyard.index import source as index_source
from wheelyard.index.confine import KnownFamilies, check_family, check_targets
from wheelyard.index.merge import Response, read_existing_index
from wheelyard.index.render import (
    IndexFile,
    LandingInfo,
    Namespace,
    href_for,
    namespaces_from,
    parse_filename,
    plan_pages,
    render_flat_page,
    render_landing_page,
    render_project_json,
    render_project_page,
    render_simple_root,
    render_simple_root_json,
)
from wheelyard.index.write import make_index, plan_index, write_index
from wheelyard.profile import load_profile

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_M = "c" * 64
LIBS = "rocm-sdk-libraries-gfx120x-all"
DEVEL = "rocm-sdk-devel-gfx120x-all"


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.tags: list[str] = []
        self._text: list[str] | None = None
        self._attrs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self._attrs, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._text is not None:
            self.anchors.append((self._attrs, "".join(self._text)))
            self._text = None


def anchors(page: bytes) -> _Anchors:
    parser = _Anchors()
    parser.feed(page.decode("utf-8"))
    parser.close()
    return parser


def entry(filename: str, location: str, **kwargs: object) -> IndexFile:
    project, _, rest = filename.partition("-")
    fields: dict[str, object] = {
        "filename": filename,
        "project": project.replace("_", "-"),
        "version": rest.split("-")[0],
        "location": location,
        "sha256": SHA_A,
        "size": 1234,
        "requires_python": ">=3.9",
        "metadata_sha256": SHA_M,
    }
    fields.update(kwargs)
    return IndexFile(**fields)  # type: ignore[arg-type]


def family_namespace() -> Namespace:
    return Namespace(
        name="gfx120X-all",
        files=(
            entry("rocm-7.10.0-py3-none-any.whl", "gfx120X-all/rocm-7.10.0-py3-none-any.whl"),
            entry("rocm_sdk_core-7.10.0-py3-none-any.whl", "rocm_sdk_core-7.10.0-py3-none-any.whl"),
        ),
    )


# --- rendering ---------------------------------------------------------------------------


def test_flat_page_links_family_and_generic_files_relative_with_hashes() -> None:
    page = render_flat_page(family_namespace())
    links = {text: attrs for attrs, text in anchors(page).anchors}
    assert links["rocm-7.10.0-py3-none-any.whl"]["href"] == (
        f"rocm-7.10.0-py3-none-any.whl#sha256={SHA_A}"
    )
    assert links["rocm_sdk_core-7.10.0-py3-none-any.whl"]["href"] == (
        f"../rocm_sdk_core-7.10.0-py3-none-any.whl#sha256={SHA_A}"
    )
    for attrs in links.values():
        assert attrs["data-requires-python"] == ">=3.9"
        assert attrs["data-core-metadata"] == f"sha256={SHA_M}"
        assert attrs["data-dist-info-metadata"] == f"sha256={SHA_M}"
    assert b'data-requires-python="&gt;=3.9"' in page


def test_project_page_is_pep503_with_repository_version_and_relative_links() -> None:
    ns = family_namespace()
    files = ns.projects["rocm-sdk-core"]
    page = render_project_page(ns, "rocm-sdk-core", files)
    assert b'<meta name="pypi:repository-version" content="1.1">' in page
    ((attrs, text),) = anchors(page).anchors
    assert text == "rocm_sdk_core-7.10.0-py3-none-any.whl"
    assert attrs["href"] == f"../../../{text}#sha256={SHA_A}"
    base = "http://host/run/gfx120X-all/simple/rocm-sdk-core/"
    assert urljoin(base, attrs["href"] or "").startswith(f"http://host/run/{text}")


def test_simple_root_lists_normalised_projects_in_html_and_json() -> None:
    ns = family_namespace()
    root = anchors(render_simple_root(ns)).anchors
    assert [(attrs["href"], text) for attrs, text in root] == [
        ("rocm/", "rocm"),
        ("rocm-sdk-core/", "rocm-sdk-core"),
    ]
    document = json.loads(render_simple_root_json(ns))
    assert document == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "rocm"}, {"name": "rocm-sdk-core"}],
    }


def test_project_json_is_pep691_with_pep700_size_and_versions() -> None:
    ns = Namespace(
        name="gfx120X-all",
        files=(
            entry("rocm-7.9.0-py3-none-any.whl", "gfx120X-all/rocm-7.9.0-py3-none-any.whl"),
            entry(
                "rocm-7.10.0-py3-none-any.whl",
                "gfx120X-all/rocm-7.10.0-py3-none-any.whl",
                sha256=SHA_B,
                size=99,
                yanked="broken",
            ),
        ),
    )
    document = json.loads(render_project_json(ns, "rocm", ns.projects["rocm"]))
    assert document["meta"] == {"api-version": "1.1"}
    assert document["name"] == "rocm"
    assert document["versions"] == ["7.9.0", "7.10.0"]  # PEP 440 order, not string order
    newest = document["files"][1]
    assert newest == {
        "filename": "rocm-7.10.0-py3-none-any.whl",
        "url": "../../rocm-7.10.0-py3-none-any.whl",
        "hashes": {"sha256": SHA_B},
        "size": 99,
        "requires-python": ">=3.9",
        "core-metadata": {"sha256": SHA_M},
        "dist-info-metadata": {"sha256": SHA_M},
        "yanked": "broken",
    }
    assert document["files"][0]["yanked"] is False
    assert "upload-time" not in newest


def test_href_quotes_local_version_plus_and_keeps_absolute_urls() -> None:
    assert href_for("gfx120X-all/rocm-7.12.0.dev0+abc-py3-none-any.whl", "gfx120X-all") == (
        "rocm-7.12.0.dev0%2Babc-py3-none-any.whl"
    )
    assert href_for("x.whl", "gfx120X-all/simple/x") == "../../../x.whl"
    assert href_for("gfx120X-all/x.whl", "") == "gfx120X-all/x.whl"
    url = "https://bucket.s3.amazonaws.com/1-linux/python/x.whl"
    assert href_for(url, "gfx120X-all") == url


HOSTILE = "evil\"<>&'<script>x.whl"


def test_hostile_filename_and_metadata_are_escaped_everywhere() -> None:
    hostile = IndexFile(
        filename=HOSTILE,
        project="ev\"<>&'il",
        version="1<2&\"3'",
        location=f"gfx120X-all/{HOSTILE}",
        sha256=SHA_A,
        size=1,
        requires_python="<4\"><script>alert(1)</script>&'",
        metadata_sha256=SHA_M,
        yanked='"><b>yanked</b>',
    )
    ns = Namespace(name="gfx120X-all", files=(hostile,))
    pages = {
        "flat": render_flat_page(ns),
        "project": render_project_page(ns, hostile.project, (hostile,)),
        "landing": render_landing_page([ns], LandingInfo()),
    }
    for name, page in pages.items():
        parsed = anchors(page)
        assert "script" not in parsed.tags, name
        assert "b" not in parsed.tags, name
        links = [(attrs, text) for attrs, text in parsed.anchors if text == HOSTILE]
        assert len(links) == 1, name
        attrs = links[0][0]
        assert unquote((attrs["href"] or "").partition("#")[0]).endswith(HOSTILE), name
        if name != "landing":
            assert attrs["data-requires-python"] == hostile.requires_python
            assert attrs["data-yanked"] == hostile.yanked
    root = anchors(render_simple_root(ns))
    assert [text for _attrs, text in root.anchors] == [hostile.project]
    assert "script" not in root.tags
    document = json.loads(render_project_json(ns, hostile.project, (hostile,)))
    assert document["files"][0]["filename"] == HOSTILE
    assert document["files"][0]["requires-python"] == hostile.requires_python


def test_invalid_digest_is_refused() -> None:
    with pytest.raises(IndexError_, match="not 64 lowercase hex"):
        entry("rocm-1-py3-none-any.whl", "x/rocm-1-py3-none-any.whl", sha256="ABC")


def test_plan_is_deterministic_and_writes_flat_pages_last() -> None:
    files = [
        entry(f"p{i}-1.{j}-py3-none-any.whl", f"gfx{i % 2}/p{i}-1.{j}-py3-none-any.whl")
        for i in range(6)
        for j in range(3)
    ]
    shuffled = files[:]
    random.Random(4).shuffle(shuffled)
    first = plan_pages(namespaces_from({"gfx0": files, "gfx1": files}), landing=LandingInfo())
    second = plan_pages(
        namespaces_from({"gfx1": shuffled, "gfx0": list(reversed(shuffled))}),
        landing=LandingInfo(),
    )
    assert [(p.path, p.data) for p in first] == [(p.path, p.data) for p in second]
    assert [p.path for p in first[-2:]] == ["gfx0/index.html", "gfx1/index.html"]
    assert first[-3].path == "index.html"


def test_landing_page_lists_families_sizes_and_safe_install_commands() -> None:
    page = render_landing_page(
        [family_namespace()], LandingInfo(base_url="https://example.org/run/")
    ).decode()
    assert (
        'pip install "rocm[libraries,devel]" --pre '
        "--find-links=https://example.org/run/gfx120X-all/index.html"
    ) in page.replace("&quot;", '"')
    assert "--index https://example.org/run/gfx120X-all/simple/ --default-index" in page
    assert "1.2 KiB" in page
    assert "rocm-sdk-core" in page


# --- reading a dist, checks and the write step ----------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_index_of_a_build_lists_every_file_with_manifest_hashes(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build")
    make_index(dist=dist)
    for family in ("gfx120X-all", "gfx94X-dcgpu"):
        page = (dist / family / "index.html").read_bytes()
        links = {text: attrs for attrs, text in anchors(page).anchors}
        hashes = namespace_hashes(dist, family)
        assert set(links) == set(hashes)
        assert len(links) == 4
        for name, attrs in links.items():
            href, _, fragment = (attrs["href"] or "").partition("#")
            assert fragment == f"sha256={hashes[name][0]}"
            target = (dist / family / unquote(href)).resolve()
            assert target.is_file()
            sidecar = target.with_name(target.name + ".metadata").read_bytes()
            with zipfile.ZipFile(target) as archive:
                (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
                assert sidecar == archive.read(metadata)
            assert attrs["data-core-metadata"] == f"sha256={hashlib.sha256(sidecar).hexdigest()}"
    # generic wheels are stored once, beside the family directories
    assert len(list(dist.rglob("rocm_sdk_core-*.whl"))) == 1
    assert (dist / "index.html").is_file()


def test_manifest_hashes_are_trusted_and_other_files_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = make_synthetic_dist(tmp_path / "build")
    hashed: list[Path] = []
    real_hash = index_source.hash_file

    def spy(path: Path) -> tuple[str, int]:
        hashed.append(path)
        return real_hash(path)

    monkeypatch.setattr(index_source, "hash_file", spy)
    make_index(dist=dist)
    assert hashed == []
    (tmp_path / "build" / "build-manifest.json").unlink()
    make_index(dist=dist)
    assert len(hashed) == 7


def test_output_is_byte_identical_across_runs_and_directories(tmp_path: Path) -> None:
    first = make_synthetic_dist(tmp_path / "a")
    second = make_synthetic_dist(tmp_path / "b")
    make_index(dist=first)
    os.utime(second / "gfx120X-all", (1, 1))
    make_index(dist=second)
    assert snapshot(first) == snapshot(second)
    before = snapshot(first)
    make_index(dist=first)
    assert snapshot(first) == before
    assert not [p for p in first.rglob("*") if p.name.endswith(".tmp")]


def test_flat_pages_are_replaced_last_and_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = make_synthetic_dist(tmp_path / "build")
    replaced: list[str] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        assert Path(src).name.endswith(".tmp")
        replaced.append(Path(dst).relative_to(dist).as_posix())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    make_index(dist=dist)
    assert replaced[-2:] == ["gfx120X-all/index.html", "gfx94X-dcgpu/index.html"]
    assert replaced[-3] == "index.html"
    assert all(name.endswith(".metadata") for name in replaced[:7])


def test_incomplete_set_is_refused_naming_the_missing_project(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build", skip=["rocm-sdk-devel-gfx120X-all"])
    before = snapshot(dist)
    with pytest.raises(IndexError_, match="incomplete") as caught:
        make_index(dist=dist)
    assert "rocm-sdk-devel-gfx120X-all==" in str(caught.value)
    assert "gfx94X" not in str(caught.value)
    assert "wheelyard build" in str(caught.value)
    assert snapshot(dist) == before


def test_family_without_meta_wheel_is_refused(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build", skip=["rocm"], manifest=False)
    with pytest.raises(IndexError_, match="no meta wheel"):
        make_index(dist=dist)


def test_meta_pin_to_another_version_is_refused(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build", manifest=False)
    for path in dist.glob("*/rocm_sdk_libraries_*.whl"):
        path.unlink()
    make_synthetic_dist(tmp_path / "other", version="7.9.0")
    for path in (tmp_path / "other" / "dist").glob("*/rocm_sdk_libraries_*.whl"):
        shutil.copy(path, dist / path.parent.name / path.name)
    with pytest.raises(IndexError_, match=f"requires rocm-sdk-libraries-gfx120X-all=={VERSION}"):
        make_index(dist=dist)


def test_same_filename_twice_in_one_namespace_is_refused(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build", manifest=False)
    core = next(dist.glob("rocm_sdk_core-*.whl"))
    shutil.copy(core, dist / "gfx120X-all" / core.name)
    with pytest.raises(IndexError_, match="also in the generic files"):
        make_index(dist=dist)


def test_manifest_out_of_date_with_dist_is_refused(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build")
    next(dist.glob("gfx94X-dcgpu/rocm_sdk_devel_*.whl")).unlink()
    with open(next(dist.glob("gfx120X-all/rocm-*.whl")), "ab") as handle:
        handle.write(b"x")
    with pytest.raises(IndexError_) as caught:
        make_index(dist=dist)
    assert "missing from" in str(caught.value)
    assert "bytes on disk, manifest says" in str(caught.value)


def test_stale_project_pages_are_removed(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build", manifest=False)
    stale = dist / "gfx120X-all" / "simple" / "gone"
    stale.mkdir(parents=True)
    (stale / "index.html").write_text("old")
    make_index(dist=dist)
    assert not stale.exists()


# --- merging ------------------------------------------------------------------------------


def test_merge_from_directory_keeps_old_version_and_adds_new(tmp_path: Path) -> None:
    old = make_synthetic_dist(tmp_path / "old", version="7.9.0")
    make_index(dist=old)
    new = make_synthetic_dist(tmp_path / "new")
    plan = make_index(dist=new, merge_from=[str(old)])
    assert {ns.name: ns.kept for ns in plan.namespaces} == {"gfx120X-all": 4, "gfx94X-dcgpu": 4}
    document = json.loads((new / "gfx120X-all" / "simple" / "rocm" / "index.json").read_text())
    assert document["versions"] == ["7.9.0", VERSION]
    old_hashes = namespace_hashes(old, "gfx120X-all")
    for item in document["files"]:
        target = new / "gfx120X-all" / "simple" / "rocm" / item["url"]
        assert target.is_file()
        assert (target.parent / (target.name + ".metadata")).is_file()
        if "7.9.0" in item["filename"]:
            assert item["hashes"]["sha256"] == old_hashes[item["filename"]][0]
            assert os.path.samefile(target, old / "gfx120X-all" / item["filename"])
    # merging again, in place, changes nothing
    before = snapshot(new)
    make_index(dist=new, merge_from=[str(new)])
    assert snapshot(new) == before


def test_merge_refuses_a_filename_whose_bytes_changed(tmp_path: Path) -> None:
    old = make_synthetic_dist(tmp_path / "old")
    make_index(dist=old)
    new = make_synthetic_dist(
        tmp_path / "new", salt="respin", salted=["rocm-sdk-devel-gfx94X-dcgpu"]
    )
    before = snapshot(new)
    with pytest.raises(IndexError_, match="change their content") as caught:
        make_index(dist=new, merge_from=[str(old)])
    message = str(caught.value)
    assert f"gfx94X-dcgpu: rocm_sdk_devel_gfx94x_dcgpu-{VERSION}-py3-none-any.whl" in message
    assert message.count(".whl") == 1
    assert "postN" in message
    assert snapshot(new) == before


def _fake_server(root: Path, base: str, *, json_pages: bool = True) -> tuple[object, list[str]]:
    log: list[str] = []

    def fetch(method: str, url: str, accept: str) -> Response:
        log.append(f"{method} {url}")
        relative = unquote(url[len(base) :])
        path = root / relative
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file() or (not json_pages and path.name == "index.json"):
            return Response(url=url, status=404, content_type="", headers={}, body=b"")
        kind = "application/vnd.pypi.simple.v1+json" if path.suffix == ".json" else "text/html"
        body = b"" if method == "HEAD" else path.read_bytes()
        headers = {"content-length": str(path.stat().st_size)}
        return Response(url=url, status=200, content_type=kind, headers=headers, body=body)

    return fetch, log


@pytest.mark.parametrize("page", ["gfx120X-all/index.html", "gfx120X-all/simple/"])
@pytest.mark.parametrize("json_pages", [True, False])
def test_merge_from_url_keeps_absolute_links(tmp_path: Path, page: str, json_pages: bool) -> None:
    old = make_synthetic_dist(tmp_path / "old", version="7.9.0")
    make_index(dist=old)
    base = "http://127.0.0.1:9/run1/"
    fetch, log = _fake_server(old, base, json_pages=json_pages)
    existing = read_existing_index(base + page, fetch=fetch)  # type: ignore[arg-type]
    assert set(existing.namespaces) == {"gfx120X-all"}
    files = {f.filename: f for f in existing.namespaces["gfx120X-all"]}
    hashes = namespace_hashes(old, "gfx120X-all")
    assert {name: (f.sha256, f.size) for name, f in files.items()} == hashes
    core = files["rocm_sdk_core-7.9.0-py3-none-any.whl"]
    assert core.location == base + core.filename
    assert core.metadata_sha256 is not None
    assert core.requires_python == ">=3.9"
    heads = [line for line in log if line.startswith("HEAD")]
    assert bool(heads) == (page.endswith("index.html") or not json_pages)

    new = make_synthetic_dist(tmp_path / "new")
    plan = plan_index(dist=new, merge_from=[base + page], fetch=fetch)  # type: ignore[arg-type]
    write_index(plan)
    links = [
        attrs["href"]
        for attrs, _ in anchors((new / "gfx120X-all" / "index.html").read_bytes()).anchors
    ]
    assert f"{base}rocm_sdk_core-7.9.0-py3-none-any.whl#sha256={hashes[core.filename][0]}" in links
    new_core = f"rocm_sdk_core-{VERSION}-py3-none-any.whl"
    assert f"../{new_core}#sha256={namespace_hashes(new, 'gfx120X-all')[new_core][0]}" in links
    assert not list(new.rglob("*7.9.0*"))  # nothing downloaded


def test_merge_from_url_names_the_family_explicitly(tmp_path: Path) -> None:
    old = make_synthetic_dist(tmp_path / "old", version="7.9.0")
    make_index(dist=old)
    (old / "gfx94X-dcgpu").rename(old / "latest")
    fetch, _log = _fake_server(old, "http://127.0.0.1:9/x/")
    url = "http://127.0.0.1:9/x/latest/index.html"
    assert set(read_existing_index(url, fetch=fetch).namespaces) == {"latest"}  # type: ignore[arg-type]
    existing = read_existing_index(f"gfx94X-dcgpu={url}", fetch=fetch)  # type: ignore[arg-type]
    assert set(existing.namespaces) == {"gfx94X-dcgpu"}
    assert len(existing.namespaces["gfx94X-dcgpu"]) == 4


def test_merge_from_url_refuses_a_changed_file(tmp_path: Path) -> None:
    old = make_synthetic_dist(tmp_path / "old")
    make_index(dist=old)
    fetch, _log = _fake_server(old, "http://127.0.0.1:9/")
    new = make_synthetic_dist(tmp_path / "new", salt="respin", salted=["rocm-sdk-core"])
    with pytest.raises(IndexError_, match="change their content"):
        plan_index(dist=new, merge_from=["http://127.0.0.1:9/gfx94X-dcgpu/simple/"], fetch=fetch)  # type: ignore[arg-type]


def test_merge_from_a_damaged_index_is_refused(tmp_path: Path) -> None:
    old = make_synthetic_dist(tmp_path / "old", version="7.9.0")
    make_index(dist=old)
    page = old / "gfx94X-dcgpu" / "simple" / "rocm" / "index.json"
    page.write_text(page.read_text()[:-20])
    with pytest.raises(IndexError_, match="not valid JSON"):
        read_existing_index(str(old))
    page.write_text(json.dumps({"files": [{"filename": "x"}]}))
    with pytest.raises(IndexError_, match="malformed PEP 691 file entry"):
        read_existing_index(str(old))


def test_merge_from_something_else_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IndexError_, match="neither a directory nor"):
        read_existing_index(str(tmp_path / "missing"))
    with pytest.raises(IndexError_, match="no <family>/simple/index.json"):
        read_existing_index(str(tmp_path))


# --- confinement: names, links and targets ------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    ["../../evil-1.0.tar.gz", "..-1.0.tar.gz", "a\x1bb-1.0.tar.gz", "x\\y-1.0.tar.gz", ""],
)
def test_filenames_and_projects_must_be_single_safe_components(filename: str) -> None:
    with pytest.raises(IndexError_) as caught:
        parse_filename(filename)
    assert "\x1b" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("..", "relative path step"),
        (".", "relative path step"),
        ("", "empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("gfx\x1b[2J", "control"),
        (".hidden", "starts with a dot"),
        ("generic", "the index uses that name"),
        ("index.html", "the index uses that name"),
        ("gfx999", "not in the profile's families"),
    ],
)
def test_family_names_are_checked_against_the_profile(name: str, says: str) -> None:
    known = KnownFamilies.from_registry(load_profile(PROFILE).families)
    with pytest.raises(IndexError_, match=says) as caught:
        check_family(name, "--merge-from URL", known)
    assert str(caught.value).startswith("index: --merge-from URL: ")
    assert "\x1b" not in str(caught.value)
    assert "valid families: " in str(caught.value)
    for good in ("gfx120X-all", "gfx94X-dcgpu", "gfx1151"):
        check_family(good, "--merge-from URL", known)


@pytest.mark.parametrize(
    "source",
    ["file:///etc/", "gfx94X-dcgpu=file:///etc/", "ftp://127.0.0.1/x/", "data:,x", "FILE:/etc"],
)
def test_only_http_merge_sources_are_fetched(source: str) -> None:
    def fetch(method: str, url: str, accept: str) -> Response:
        raise AssertionError(f"fetched {url}")

    with pytest.raises(IndexError_, match="only http:// and https:// URLs are fetched"):
        read_existing_index(source, fetch=fetch)


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "data:text/plain,x",
        " javascript:x",
        "file:///etc/passwd",
        "ftp://h/x",
    ],
)
def test_links_with_other_schemes_are_refused(href: str) -> None:
    wheel = "rocm-1.0-py3-none-any.whl"
    page = f'<a href="{href}/{wheel}#sha256={SHA_A}">{wheel}</a>'.encode()
    document = json.dumps({"files": [{"url": href, "hashes": {"sha256": SHA_A}}]}).encode()

    def fetch(method: str, url: str, accept: str) -> Response:
        json_page = url.endswith(".json")
        return Response(
            url=url,
            status=200,
            content_type="application/vnd.pypi.simple.v1+json" if json_page else "text/html",
            headers={},
            body=document if json_page else page,
        )

    for url in ("http://h/gfx94X-dcgpu/index.html", "http://h/gfx94X-dcgpu/simple/x.json"):
        with pytest.raises(IndexError_, match="only http\\(s\\) links are merged"):
            read_existing_index(url, fetch=fetch)


def test_a_local_index_may_not_link_other_schemes(tmp_path: Path) -> None:
    old = make_synthetic_dist(tmp_path / "old", version="7.9.0")
    make_index(dist=old)
    page = old / "gfx94X-dcgpu" / "simple" / "rocm" / "index.json"
    document = json.loads(page.read_text())
    document["files"][0]["url"] = "file:///etc/passwd"
    page.write_text(json.dumps(document))
    with pytest.raises(IndexError_, match="only http\\(s\\) links are merged"):
        read_existing_index(str(old))


def test_every_target_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("canary")
    plan = plan_index(dist=dist)
    (dist / "gfx94X-dcgpu" / "simple").mkdir(parents=True)
    (dist / "gfx94X-dcgpu" / "simple" / "rocm").symlink_to(outside)
    (dist / "index.html").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(IndexError_, match="nothing was written") as caught:
        write_index(plan)
    message = str(caught.value)
    assert "gfx94X-dcgpu/simple/rocm/index.html resolves into" in message
    assert "index.html is a directory where the index needs a file" in message
    assert snapshot(tmp_path) == before
    with pytest.raises(IndexError_, match="would be both a file and a directory"):
        check_targets(dist, ["a/b", "a"], [], [])
    with pytest.raises(IndexError_, match="unsafe path component"):
        check_targets(dist, ["gfx94X-dcgpu/../../x"], [], [])


def test_stale_pages_behind_a_link_out_of_dist_are_not_deleted(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build")
    make_index(dist=dist)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("canary")
    (dist / "gfx94X-dcgpu" / "simple" / "gone").symlink_to(outside)
    with pytest.raises(IndexError_, match="gone/index.html resolves into"):
        make_index(dist=dist)
    assert (outside / "index.html").read_text() == "canary"


def test_a_dist_directory_outside_the_profile_is_refused(tmp_path: Path) -> None:
    dist = make_synthetic_dist(tmp_path / "build", families=["gfx120X-all", "gfx999"])
    families = load_profile(PROFILE).families
    with pytest.raises(IndexError_, match="'gfx999' is not in the profile's families"):
        make_index(dist=dist, families=families)
    assert not (dist / "gfx120X-all" / "index.html").exists()


# --- command line ---------------------------------------------------------------------------


def test_cli_indexes_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = make_synthetic_dist(tmp_path / "build")
    assert main(["index", "--dist", str(dist)]) == 0
    captured = capsys.readouterr()
    summary = captured.out + captured.err  # the table is a result: stdout (stderr before)
    assert "gfx120X-all" in summary
    assert "gfx94X-dcgpu" in summary
    assert (dist / "gfx94X-dcgpu" / "index.html").is_file()


def test_cli_reports_an_incomplete_set_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = make_synthetic_dist(tmp_path / "build", skip=["rocm-sdk-core"])
    assert main(["index", "--dist", str(dist)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: index: the package set is incomplete")
    assert "Traceback" not in err


@pytest.mark.parametrize("how", ["symlink", "same-size-other-bytes"])
def test_merge_from_directory_imports_only_its_own_listed_bytes(tmp_path: Path, how: str) -> None:
    old = make_synthetic_dist(tmp_path / "old", version="7.9.0")
    make_index(dist=old)
    listed = next((old / "gfx120X-all").glob("rocm-7.9.0-*.whl"))
    canary = tmp_path / "outside" / "canary.whl"
    canary.parent.mkdir()
    canary.write_bytes(b"x" * listed.stat().st_size)  # same size, other bytes
    os.utime(canary, (1_000_000_000, 1_000_000_000))
    before_canary = (canary.read_bytes(), canary.stat().st_mode, canary.stat().st_mtime_ns)
    listed.unlink()
    if how == "symlink":
        listed.symlink_to(canary)
    else:
        listed.write_bytes(canary.read_bytes())
    new = make_synthetic_dist(tmp_path / "new")
    make_index(dist=new)
    before = snapshot(new)
    expected = "is a link or lies outside" if how == "symlink" else "sha256 differs"
    with pytest.raises(IndexError_, match=expected):
        make_index(dist=new, merge_from=[str(old)])
    assert snapshot(new) == before
    assert (canary.read_bytes(), canary.stat().st_mode, canary.stat().st_mtime_ns) == before_canary
    assert canary.stat().st_nlink == 1  # never hard-linked into --dist
