"""License files per wheel (PEP 639): the shipped artifacts' license files, the profile's own.

A wheel carries, below ``<name>.dist-info/licenses/``, the license files of every artifact it
ships a file of: the installed paths of that artifact (any component, the same family) matching
the profile's ``[licenses] globs``, under the same relative path (``share/doc/hip/LICENSE.txt``),
plus the profile's own license file under its file name. They are copies: the files keep their
normal place (the devel tree, or an exclusion) too. Symlinked license files are not followed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wheelyard.artifacts import ArtifactName, StagedFile
from wheelyard.build.split import SplitPlan
from wheelyard.profile import Profile
from wheelyard.wheelfile import FileEntry

LICENSES_DIR = "licenses"


@dataclass(frozen=True, kw_only=True)
class LicenseIndex:
    """The license files of the artifacts read, by (artifact name, family)."""

    files: Mapping[tuple[str, str], Mapping[str, Path]]  # -> installed path -> bytes on disk
    own: Path | None  # the profile's license file

    def entries(self, dist_info: str, artifacts: Iterable[ArtifactName]) -> tuple[FileEntry, ...]:
        """The wheel entries (``<dist_info>/licenses/...``) for a wheel shipping ``artifacts``."""
        chosen: dict[str, Path] = {}
        if self.own is not None:
            chosen[self.own.name] = self.own
        for key in sorted({(a.name, a.family) for a in artifacts}):
            for path, source in sorted(self.files.get(key, {}).items()):
                chosen.setdefault(path, source)
        return tuple(
            FileEntry(arcname=f"{dist_info}/{LICENSES_DIR}/{path}", source=source)
            for path, source in sorted(chosen.items())
        )


def license_file_names(dist_info: str, entries: Iterable[FileEntry]) -> tuple[str, ...]:
    """The ``License-File`` values of ``entries``: their paths below the licenses directory."""
    prefix = f"{dist_info}/{LICENSES_DIR}/"
    return tuple(sorted(e.arcname[len(prefix) :] for e in entries if e.arcname.startswith(prefix)))


def index_licenses(profile: Profile, plan: SplitPlan) -> LicenseIndex:
    """Find the license files among every file the split saw (shipped, devel-only, excluded)."""
    staged: list[StagedFile] = [s for view in plan.views for s in view.tree.values()]
    staged += [s for s, _rule in plan.excluded]
    files: dict[tuple[str, str], dict[str, Path]] = defaultdict(dict)
    for item in staged:
        if item.kind == "file" and profile.licenses.matches(item.path):
            files[(item.artifact.name, item.artifact.family)].setdefault(item.path, item.source)
    return LicenseIndex(files=dict(files), own=profile.licenses.file)
