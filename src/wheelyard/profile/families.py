"""GPU families and their targets, read from the profile's ``families.toml``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wheelyard.errors import ProfileError, UnknownFamilyError
from wheelyard.profile.tomlfile import read_toml

GENERIC = "generic"
_TARGET = re.compile(r"^gfx([0-9]+)([0-9a-z]?)$")
_FAMILY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


def target_sort_key(target: str) -> tuple[int, int, str]:
    """Numeric order: gfx90a < gfx942 < gfx1100 (never plain string order).

    The last character of a target is a hexadecimal stepping (gfx90a, gfx90c), the rest the
    major/minor number, so ``gfx90a`` is 90/0xa and ``gfx1151`` is 115/1.
    """
    match = _TARGET.match(target)
    if match is None:
        return (1 << 30, 0, target)
    digits = match.group(1) + match.group(2)
    return (int(digits[:-1] or "0"), int(digits[-1], 16), target)


def identifier(family: str) -> str:
    """A family name as a Python identifier fragment: ``gfx120X-all`` -> ``gfx120X_all``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", family)


@dataclass(frozen=True, kw_only=True)
class Family:
    name: str
    targets: tuple[str, ...]

    @property
    def ident(self) -> str:
        return identifier(self.name)


@dataclass(frozen=True, kw_only=True)
class FamilyRegistry:
    families: tuple[Family, ...]

    @classmethod
    def load(cls, path: Path) -> FamilyRegistry:
        data = read_toml(path)
        table = data.get("families")
        if not isinstance(table, dict) or not table:
            raise ProfileError(path, "no [families.NAME] tables found")
        families = []
        for name, body in sorted(table.items()):
            targets = body.get("targets") if isinstance(body, dict) else None
            if not _FAMILY_NAME.match(name) or "_" in name:
                raise ProfileError(path, f"family name {name!r} must not contain '_'")
            if not isinstance(targets, list) or not targets:
                raise ProfileError(path, f"family {name!r} needs a non-empty 'targets' list")
            bad = [t for t in targets if not isinstance(t, str) or not _TARGET.match(t)]
            if bad:
                raise ProfileError(path, f"family {name!r} has invalid targets {bad}")
            ordered = tuple(sorted(set(targets), key=target_sort_key))
            families.append(Family(name=name, targets=ordered))
        return cls(families=tuple(families))

    def names(self) -> list[str]:
        """Every valid family name: the named families, then every single target."""
        named = [family.name for family in self.families]
        return named + self.all_targets()

    def all_targets(self) -> list[str]:
        targets = {t for family in self.families for t in family.targets}
        return sorted(targets, key=target_sort_key)

    def get(self, name: str) -> Family:
        for family in self.families:
            if family.name == name:
                return family
        if name in self.all_targets():
            return Family(name=name, targets=(name,))
        raise UnknownFamilyError(name, self.names())

    def resolve(self, names: Iterable[str]) -> tuple[Family, ...]:
        """Look up the requested families, dropping repeats, in sorted order."""
        return tuple(self.get(name) for name in sorted(set(names)))
