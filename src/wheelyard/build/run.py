"""``build_wheels``: artifacts in, a verified wheel set, manifest and closure report out.

The whole build happens in a temporary directory beside ``--out``; ``dist/`` and the reports
are moved into place only when everything succeeded, so a failed build leaves ``--out`` as it was.
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
from wheelyard.build.split import plan_split
from wheelyard.build.wheelset import PlannedWheel, plan_wheels
from wheelyard.errors import SplitError, UsageError
from wheelyard.profile import GENERIC, Family, Profile, compute_version, load_profile
from wheelyard.report import Reporter, human_size
from wheelyard.wheelfile import WrittenWheel, write_wheels

DEFAULT_SOURCE_DATE_EPOCH = 315532800  # 1980-01-01, the earliest time a ZIP entry can hold
MANIFEST_NAME = "build-manifest.json"
CLOSURE_REPORT_NAME = "closure-report.json"


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    families: tuple[str, ...]
    artifacts: Path
    out: Path
    profile: Path
    version: str | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    compression_level: int = 6
    source_date_epoch: int = DEFAULT_SOURCE_DATE_EPOCH


@dataclass(frozen=True, kw_only=True)
class BuiltFile:
    path: str  # relative to --out
    sha256: str
    size: int
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
    dangling: tuple[str, ...]
    runpath_edits: dict[str, int]


def build(options: BuildOptions, *, reporter: Reporter) -> BuildResult:
    """Run the whole build; raise a WheelyardError naming the problem on bad input."""
    if options.jobs < 1:
        raise UsageError("--jobs", f"must be at least 1, not {options.jobs}")
    if not 0 <= options.compression_level <= 9:
        raise UsageError("--compression-level", "must be between 0 and 9")
    profile = load_profile(options.profile)
    families = profile.families.resolve(options.families or profile.default_families)
    version = compute_version(options.version, base_version=profile.base_version)
    out = options.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        result = _build_into(options, profile, families, version, staging, reporter)
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataclasses.replace(result, out=out)


def _build_into(
    options: BuildOptions,
    profile: Profile,
    families: tuple[Family, ...],
    version: str,
    staging: Path,
    reporter: Reporter,
) -> BuildResult:
    names = [f.name for f in families]
    reporter.line(f"building {', '.join(names)} version {version} from {options.artifacts}")
    sources = select(find_artifacts(options.artifacts), names)
    work = staging / "work"
    read = _read_artifacts(sources, work / "extract", reporter)
    reporter.line(f"read {len(read)} artifacts ({sum(len(a.files) for a in read)} entries)")
    plan = plan_split(profile, families, read)
    dangling: list[str] = []
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
    )
    dangling = sorted(set(dangling))
    if dangling and profile.dangling_symlinks == "error":
        raise SplitError(
            "dangling symlinks",
            dangling,
            hint="fix the links in the artifacts or set [elf] "
            "dangling_symlinks = 'warn' in the profile",
        )
    written = _write(wheels, options, staging, reporter)
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
                for p, w in zip(wheels, written, strict=True)
            ),
            key=lambda f: f.path,
        )
    )
    _write_json(
        staging / MANIFEST_NAME,
        {
            "schema": 1,
            "profile": profile.name,
            "version": version,
            "families": names,
            "source_date_epoch": options.source_date_epoch,
            "files": [
                {
                    "path": f.path,
                    "sha256": f.sha256,
                    "size": f.size,
                    "package": f.package,
                    "family": f.family,
                    "kind": f.kind,
                }
                for f in files
            ],
        },
    )
    _write_json(staging / CLOSURE_REPORT_NAME, runpaths.report.to_json())
    return BuildResult(
        out=staging,
        version=version,
        families=tuple(names),
        files=files,
        closure_totals=dict(runpaths.report.totals),
        external=tuple(runpaths.report.external),
        dangling=tuple(dangling),
        runpath_edits=runpaths.edits,
    )


def _read_artifacts(
    sources: list[ArtifactSource], extract_to: Path, reporter: Reporter
) -> list[Artifact]:
    """Read every artifact; archives are extracted with progress over their compressed bytes."""
    archived = sum(s.path.stat().st_size for s in sources if s.is_archive)
    if not archived:
        return [read_artifact(s, extract_to=extract_to) for s in sources]
    read = []
    with reporter.progress("extracting archives", archived) as bar:
        for source in sources:
            read.append(read_artifact(source, extract_to=extract_to))
            if source.is_archive:
                bar.advance(source.path.stat().st_size)
    return read


def _write(
    wheels: list[PlannedWheel], options: BuildOptions, staging: Path, reporter: Reporter
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
            compression_level=options.compression_level,
            jobs=options.jobs,
            source_date_epoch=options.source_date_epoch,
            progress=bar.advance,
        )


def _write_json(path: Path, document: object) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _move_into_place(staging: Path, out: Path) -> None:
    """Swap the new dist/ and reports into ``out``; the old ones go only after that worked."""
    out.mkdir(parents=True, exist_ok=True)
    old = staging / "previous"
    old.mkdir()
    for name in ("dist", MANIFEST_NAME, CLOSURE_REPORT_NAME):
        if (out / name).exists():
            (out / name).replace(old / name)
    for name in ("dist", MANIFEST_NAME, CLOSURE_REPORT_NAME):
        (staging / name).replace(out / name)


def summarize(result: BuildResult, reporter: Reporter) -> None:
    rows = [(f.path, f.files, human_size(f.size), f.sha256[:12]) for f in result.files]
    reporter.table(f"wheels ({result.version})", ["wheel", "files", "size", "sha256"], rows)
    totals = result.closure_totals
    reporter.table(
        "ELF dependency closure",
        ["ELF files", "NEEDED", "same wheel", "dependency", "system", "external", "missing"],
        [
            [
                totals.get(k, 0)
                for k in (
                    "files",
                    "needed",
                    "same_wheel",
                    "dependency",
                    "system",
                    "external",
                    "missing",
                )
            ]
        ],
    )
    edits = result.runpath_edits
    reporter.line(
        f"RUNPATH: {edits.get('unchanged', 0)} already right, {edits.get('in-place', 0)} edited "
        f"in place, {edits.get('appended', 0)} appended, {edits.get('patchelf', 0)} rewritten by "
        "patchelf"
    )
    if result.external:
        reporter.line("external libraries expected on the system: " + ", ".join(result.external))
    for line in result.dangling:
        reporter.line(f"warning: dangling symlink dropped: {line}")
    reporter.line(f"wrote {len(result.files)} wheels to {result.out / 'dist'}")
    reporter.outputs(
        {
            "version": result.version,
            "dist": str(result.out / "dist"),
            "families": " ".join(result.families),
        }
    )
