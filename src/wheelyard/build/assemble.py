"""From a split plan to the files each wheel stores: payloads, RUNPATH fix-up, devel trees.

Everything here is a plan over data, except :func:`fix_runpaths`, which edits copies of the ELF
files that need a new RUNPATH in the work directory (the input artifacts are never touched).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from wheelyard.artifacts import StagedFile
from wheelyard.build.devel import DevelEntry, runtime_link_target
from wheelyard.build.links import Payload, TreeLinks, runtime_payload
from wheelyard.build.ownership import PackageInstance
from wheelyard.build.split import FamilyView, SplitPlan
from wheelyard.elf import (
    MANYLINUX_SYSTEM_LIBS,
    ClosureReport,
    ElfInfo,
    ShippedElf,
    check_closure,
    check_names,
    check_shadowing,
    plan_runpaths,
    read_elf,
    set_runpath,
)
from wheelyard.errors import ElfError, SplitError
from wheelyard.profile import GENERIC, Profile
from wheelyard.report import printable
from wheelyard.wheelfile import same_bytes


def read_elf_facts(files: Iterable[StagedFile], *, jobs: int) -> dict[Path, ElfInfo | None]:
    """ELF facts of every regular file (None for non-ELF files), keyed by source path."""
    names: dict[Path, str] = {}
    for staged in files:
        if staged.kind == "file":
            names.setdefault(staged.source, f"{staged.artifact}/{staged.path}")
    sources = sorted(names)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        infos = list(pool.map(lambda source: read_elf(source, name=names[source]), sources))
    return dict(zip(sources, infos, strict=True))


def tree_links(plan: SplitPlan, elf_facts: Mapping[Path, ElfInfo | None]) -> dict[str, TreeLinks]:
    """Link facts per family view, plus one over the generic files alone.

    Generic packages are resolved against generic files only, so what they store never depends
    on which families a build names.
    """
    links = {view.family.name: TreeLinks(tree=view.tree, elf=elf_facts) for view in plan.views}
    generic_tree = {
        path: staged
        for path, staged in plan.views[0].tree.items()
        if staged.artifact.family == GENERIC
    }
    links[GENERIC] = TreeLinks(tree=generic_tree, elf=elf_facts)
    return links


def runtime_payloads(
    plan: SplitPlan, links: Mapping[str, TreeLinks], *, on_dangling: Callable[[str], None]
) -> dict[PackageInstance, list[Payload]]:
    payloads = {}
    for instance in plan.ownership:
        payloads[instance] = runtime_payload(
            plan.ownership.files(instance), links[instance.family_name], on_dangling=on_dangling
        )
    return payloads


def dependencies(instances: Iterable[PackageInstance]) -> dict[str, list[str]]:
    """Distribution -> the distributions it requires (same family or generic)."""
    by_key = {(i.definition.key, i.family_name): i for i in instances}
    depends: dict[str, list[str]] = {}
    for instance in by_key.values():
        names = []
        for key in instance.definition.requires:
            target = by_key.get((key, instance.family_name)) or by_key.get((key, GENERIC))
            if target is not None:
                names.append(target.dist_name)
        depends[instance.dist_name] = sorted(names)
    return depends


@dataclass(frozen=True, kw_only=True)
class RunpathResult:
    sources: dict[tuple[str, str], Path]  # (dist, stored path) -> file to store
    report: ClosureReport
    edits: dict[str, int]  # "unchanged" / "in-place" / "appended" / "patchelf" -> count
    copies: int  # edited copies written to the work directory (one per distinct content + edit)


def fix_runpaths(
    profile: Profile,
    payloads: Mapping[PackageInstance, list[Payload]],
    elf_facts: Mapping[Path, ElfInfo | None],
    *,
    workdir: Path,
    jobs: int,
) -> RunpathResult:
    """Plan every RUNPATH, check the closure, and patch copies of the files that need it."""
    shipped = []
    for instance, files in payloads.items():
        for item in files:
            info = elf_facts.get(item.staged.source)
            if info is not None:
                shipped.append(
                    ShippedElf(
                        wheel=instance.dist_name,
                        install_dir=instance.module,
                        path=item.path,
                        info=info,
                        family=None if instance.family_name == GENERIC else instance.family_name,
                        origin=f"{item.staged.artifact}/{item.staged.path}",
                    )
                )
    check_names(shipped)
    check_shadowing(shipped)
    plan, report = plan_runpaths(
        sorted(shipped, key=lambda s: (s.wheel, s.path)),
        dependencies(payloads),
        system=MANYLINUX_SYSTEM_LIBS,
        allow_external=profile.allow_external,
    )
    check_closure(report)
    edits = {"unchanged": 0, "in-place": 0, "appended": 0, "patchelf": 0}
    needed: list[tuple[tuple[str, str], Path, tuple[str, ...]]] = []
    for instance, files in sorted(payloads.items(), key=lambda kv: kv[0].sort_key()):
        for item in files:
            key = (instance.dist_name, item.path)
            info = elf_facts.get(item.staged.source)
            if info is None or key not in plan:
                continue
            wanted = plan[key]
            if tuple(info.runpath) == wanted and not info.rpath:
                edits["unchanged"] += 1
                continue
            needed.append((key, item.staged.source, wanted))
    todo = _share_edits(needed, jobs=jobs)
    sources: dict[tuple[str, str], Path] = {}

    def patch(
        job: tuple[tuple[str, tuple[str, ...]], list[tuple[tuple[str, str], Path]]],
    ) -> tuple[str, Path, list[tuple[str, str]]]:
        (content, wanted), users = job
        target = (
            workdir
            / content[:2]
            / f"{content}-{hashlib.sha256(repr(wanted).encode()).hexdigest()[:16]}"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(users[0][1], target)
        try:
            how = set_runpath(target, wanted, append_min_size=profile.append_min_size)
        except ElfError as exc:
            (dist, path), _ = users[0]
            shown = printable(f"{dist}/{path}")
            raise ElfError(shown, f"RUNPATH edit failed: {exc.message}", hint=exc.hint) from None
        return how, target, [user for user, _ in users]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for how, target, users in pool.map(patch, sorted(todo.items())):
            edits[how] += len(users)
            for user in users:
                sources[user] = target
    return RunpathResult(sources=sources, report=report, edits=edits, copies=len(todo))


def _share_edits(
    needed: Iterable[tuple[tuple[str, str], Path, tuple[str, ...]]], *, jobs: int
) -> dict[tuple[str, tuple[str, ...]], list[tuple[tuple[str, str], Path]]]:
    """Group the files to edit so that equal content given the same RUNPATH is edited once.

    Two families' copies of one library (TheRock's 1.3 GB librocsparse in every family) are
    different input files with the same bytes: they share one edited copy. Only files of the
    same size given the same edit are compared, byte by byte (a fraction of hashing's cost).
    """
    needed = list(needed)
    groups: dict[tuple[int, tuple[str, ...]], set[Path]] = {}
    for _, source, wanted in needed:
        groups.setdefault((source.stat().st_size, wanted), set()).add(source)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        classes = pool.map(_equal_classes, [sorted(paths) for _, paths in sorted(groups.items())])
        representative = {path: first for mapping in classes for path, first in mapping.items()}
    todo: dict[tuple[str, tuple[str, ...]], list[tuple[tuple[str, str], Path]]] = {}
    for key, source, wanted in needed:
        identity = hashlib.sha256(os.fsencode(representative[source])).hexdigest()
        todo.setdefault((identity, wanted), []).append((key, source))
    return todo


def _equal_classes(paths: list[Path]) -> dict[Path, Path]:
    """Each path (same size, sorted) -> the first path with the same bytes."""
    firsts: list[Path] = []
    found = {}
    for path in paths:
        found[path] = next((first for first in firsts if same_bytes(first, path)), path)
        if found[path] == path:
            firsts.append(path)
    return found


def devel_entries(
    view: FamilyView,
    plan: SplitPlan,
    links: TreeLinks,
    payloads: Mapping[PackageInstance, list[Payload]],
    runtime_sources: Mapping[tuple[str, str], Path],
    *,
    on_dangling: Callable[[str], None],
) -> list[DevelEntry]:
    """The family's full tree: runtime files as links into their wheels, the rest as files."""
    entries: dict[str, DevelEntry] = {}
    stored: dict[str, tuple[PackageInstance, Payload]] = {}
    for instance, files in payloads.items():
        if instance.family_name not in (GENERIC, view.family.name):
            continue
        for item in files:
            if item.path == links.stored_path(item.staged.path):
                stored[item.path] = (instance, item)
    for path, (instance, item) in sorted(stored.items()):
        target = runtime_link_target(path, module=instance.module, module_path=item.path)
        source = runtime_sources.get((instance.dist_name, item.path), item.staged.source)
        entries[path] = DevelEntry(
            path=path, type="runtime-link", target=target, source=source, executable=item.executable
        )
    devel_only = {s.path for s in view.devel_only}
    for path, staged in sorted(view.tree.items()):
        if path in entries:
            continue
        owner = plan.ownership.owner(path, view.family)
        if staged.kind == "file":
            stored_path = links.stored_path(path)
            if owner is not None and stored_path in entries:
                entries[path] = DevelEntry(
                    path=path,
                    type="symlink",
                    target=posixpath.relpath(stored_path, posixpath.dirname(path) or "."),
                )
            elif path in devel_only or owner is None:
                entries[path] = DevelEntry(
                    path=path, type="file", source=staged.source, executable=staged.executable
                )
            else:
                raise SplitError(
                    "runtime file missing from its wheel",
                    [path],
                    hint="this is a wheelyard bug; please report it",
                )
            continue
        if links.resolve(path).kind == "dangling":
            if owner is None:  # runtime-owned ones were reported with their wheel
                on_dangling(f"{staged.artifact}/{path} -> {staged.link_target}")
            continue
        assert staged.link_target is not None
        entries[path] = DevelEntry(path=path, type="symlink", target=staged.link_target)
    return [entries[path] for path in sorted(entries)]
