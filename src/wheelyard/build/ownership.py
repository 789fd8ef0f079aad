"""Per-package ownership tracking.

TheRock kept one global "already populated" set for all packages and families, so the second
family of a multi-family build found its libraries "already populated" and shipped an empty
wheel. Here each package instance (a package definition, plus the family for per-family ones)
keeps its own files; looking a path up across packages only considers instances of the same
family or generic ones, and every iteration is sorted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from wheelyard.artifacts import StagedFile
from wheelyard.profile import GENERIC, Family, PackageDef


@dataclass(frozen=True, kw_only=True)
class PackageInstance:
    definition: PackageDef
    family: Family | None  # None for generic packages

    @property
    def key(self) -> str:
        base = self.definition.key
        return base if self.family is None else f"{base}@{self.family.name}"

    @property
    def dist_name(self) -> str:
        return self.definition.dist_name(self.family)

    @property
    def module(self) -> str:
        return self.definition.module(self.family)

    @property
    def family_name(self) -> str:
        return GENERIC if self.family is None else self.family.name

    def sort_key(self) -> tuple[str, str]:
        return (self.family_name, self.definition.key)


@dataclass
class Ownership:
    """Which package instance owns which installed path; one table per instance."""

    _files: dict[PackageInstance, dict[str, StagedFile]] = field(default_factory=dict)

    def add(self, instance: PackageInstance, staged: StagedFile) -> None:
        """Record ``staged`` for ``instance``; a second file at the same path is ignored here
        because the split reports such clashes with both artifacts named."""
        self._files.setdefault(instance, {}).setdefault(staged.path, staged)

    def instances(self) -> list[PackageInstance]:
        return sorted(self._files, key=PackageInstance.sort_key)

    def files(self, instance: PackageInstance) -> list[StagedFile]:
        return [self._files[instance][path] for path in sorted(self._files.get(instance, {}))]

    def owner(self, path: str, family: Family) -> PackageInstance | None:
        """The instance shipping ``path`` for ``family``: same family first, then generic."""
        for wanted in (family.name, GENERIC):
            for instance in self.instances():
                if instance.family_name == wanted and path in self._files[instance]:
                    return instance
        return None

    def __iter__(self) -> Iterator[PackageInstance]:
        return iter(self.instances())
