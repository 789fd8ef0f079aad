"""The profile: ``packages.toml`` and ``families.toml`` loaded into frozen dataclasses.

Another project packages its own artifacts by writing another profile directory; nothing here
knows about ROCm by name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wheelyard.errors import ProfileError
from wheelyard.profile.families import GENERIC, Family, FamilyRegistry
from wheelyard.profile.tomlfile import read_toml

Scope = Literal["generic", "family"]
Kind = Literal["runtime", "devel"]
COMPONENTS = ("lib", "run", "dev", "dbg", "doc", "test")


@functools.lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(pattern: str, path: str) -> bool:
    """Match a posix path against a glob where ``*`` stays in one segment and ``**`` spans."""
    return _glob_regex(pattern).match(path) is not None


def _matches_name(patterns: tuple[str, ...], name: str) -> bool:
    return any(glob_match(pattern, name) for pattern in patterns)


@dataclass(frozen=True, kw_only=True)
class TakeRule:
    artifacts: tuple[str, ...]
    components: tuple[str, ...]
    families: tuple[Literal["family", "generic"], ...]
    paths: tuple[str, ...] = ()

    def matches(self, *, name: str, component: str, family: str, path: str) -> bool:
        """Does this rule take ``path`` of artifact ``name_component_family``?

        ``family`` is the artifact's family (``generic`` or the family being built).
        """
        family_kind = "generic" if family == GENERIC else "family"
        return (
            component in self.components
            and family_kind in self.families
            and _matches_name(self.artifacts, name)
            and (not self.paths or _matches_name(self.paths, path))
        )


@dataclass(frozen=True, kw_only=True)
class ExcludeRule:
    name: str
    reason: str
    artifacts: tuple[str, ...] = ("*",)
    components: tuple[str, ...] = COMPONENTS
    paths: tuple[str, ...] = ()

    def matches(self, *, name: str, component: str, path: str) -> bool:
        return (
            component in self.components
            and _matches_name(self.artifacts, name)
            and (not self.paths or _matches_name(self.paths, path))
        )


@dataclass(frozen=True, kw_only=True)
class ConsoleScript:
    name: str
    path: str
    test_args: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PackageDef:
    key: str
    kind: Kind
    name: str
    scope: Scope
    install_dir: str
    summary: str
    extra: str | None = None
    requires: tuple[str, ...] = ()
    optional: bool = False
    must_contain: tuple[str, ...] = ()
    takes: tuple[TakeRule, ...] = ()
    console_scripts: tuple[ConsoleScript, ...] = ()

    def _fill(self, template: str, family: Family | None) -> str:
        if family is None:
            return template
        return template.replace("{family}", family.name).replace("{family_ident}", family.ident)

    def dist_name(self, family: Family | None) -> str:
        return self._fill(self.name, family)

    def module(self, family: Family | None) -> str:
        return self._fill(self.install_dir, family)

    def summary_for(self, family: Family | None) -> str:
        return self._fill(self.summary, family)


@dataclass(frozen=True, kw_only=True)
class DevelSettings:
    cmake_dir: str = "lib/cmake"
    bin_dir: str = "bin"
    cmake_config: str | None = None


@dataclass(frozen=True, kw_only=True)
class Profile:
    root: Path
    name: str
    base_version: str
    default_families: tuple[str, ...]
    sample_families: tuple[str, ...]
    meta: str
    runtime_module: str
    console_script: str
    summary: str
    license: str
    requires_python: str
    homepage: str | None
    preload: tuple[str, ...]
    min_glibc: tuple[int, int]
    dangling_symlinks: Literal["error", "warn"]
    append_min_size: int
    allow_external: frozenset[str]
    excludes: tuple[ExcludeRule, ...]
    packages: tuple[PackageDef, ...]
    devel: DevelSettings
    families: FamilyRegistry

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates" / self.runtime_module

    def package(self, key: str) -> PackageDef:
        for package in self.packages:
            if package.key == key:
                return package
        raise KeyError(key)

    def runtime_packages(self) -> tuple[PackageDef, ...]:
        return tuple(p for p in self.packages if p.kind == "runtime")

    def devel_package(self) -> PackageDef | None:
        return next((p for p in self.packages if p.kind == "devel"), None)


def load_profile(root: Path) -> Profile:
    """Read and validate ``root/packages.toml`` and ``root/families.toml``."""
    if not root.is_dir():
        raise ProfileError(root, "not a directory")
    families = FamilyRegistry.load(root / "families.toml")
    path = root / "packages.toml"
    data = read_toml(path)
    return _Reader(path, data, families, root).profile()


class _Reader:
    """Turns the TOML tables into dataclasses, naming the table at fault on any error."""

    def __init__(self, path: Path, data: dict[str, Any], families: FamilyRegistry, root: Path):
        self.path = path
        self.data = data
        self.families = families
        self.root = root

    def fail(self, where: str, problem: str) -> ProfileError:
        return ProfileError(self.path, f"{where}: {problem}")

    def strings(
        self, table: dict[str, Any], key: str, where: str, default: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        value = table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, f"'{key}' must be a list of strings")
        return tuple(value)

    def string(
        self, table: dict[str, Any], key: str, where: str, default: str | None = None
    ) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"'{key}' must be a non-empty string")
        return value

    def size_mib(self, table: dict[str, Any], key: str, where: str, default: int) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(where, f"'{key}' must be a whole number of MiB, 0 or more")
        return value

    def profile(self) -> Profile:
        top = self.data.get("profile")
        if not isinstance(top, dict):
            raise self.fail("[profile]", "missing table")
        elf = self.data.get("elf", {})
        closure = self.data.get("closure", {})
        devel = self.data.get("devel", {})
        glibc = self.string(elf, "min_glibc", "[elf]", "2.17")
        match = re.fullmatch(r"2\.(\d+)", glibc)
        if match is None:
            raise self.fail("[elf]", f"min_glibc {glibc!r} must look like 2.28")
        dangling = self.string(elf, "dangling_symlinks", "[elf]", "error")
        if dangling not in ("error", "warn"):
            raise self.fail("[elf]", "dangling_symlinks must be 'error' or 'warn'")
        packages = self.packages()
        profile = Profile(
            root=self.root,
            name=self.string(top, "name", "[profile]"),
            base_version=self.string(top, "base_version", "[profile]"),
            default_families=self.strings(top, "default_families", "[profile]"),
            sample_families=self.strings(top, "sample_families", "[profile]"),
            meta=self.string(top, "meta", "[profile]"),
            runtime_module=self.string(top, "runtime_module", "[profile]"),
            console_script=self.string(top, "console_script", "[profile]"),
            summary=self.string(top, "summary", "[profile]"),
            license=self.string(top, "license", "[profile]", "Proprietary"),
            requires_python=self.string(top, "requires_python", "[profile]", ">=3.9"),
            homepage=top.get("homepage"),
            preload=self.strings(top, "preload", "[profile]"),
            min_glibc=(2, int(match.group(1))),
            dangling_symlinks="error" if dangling == "error" else "warn",
            append_min_size=self.size_mib(elf, "append_runpath_min_mib", "[elf]", 0) << 20,
            allow_external=frozenset(self.strings(closure, "allow_external", "[closure]")),
            excludes=self.excludes(),
            packages=packages,
            devel=DevelSettings(
                cmake_dir=self.string(devel, "cmake_dir", "[devel]", "lib/cmake"),
                bin_dir=self.string(devel, "bin_dir", "[devel]", "bin"),
                cmake_config=devel.get("cmake_config"),
            ),
            families=self.families,
        )
        for name in profile.default_families + profile.sample_families:
            if name not in self.families.names():
                raise self.fail("[profile]", f"family {name!r} is not in families.toml")
        if not profile.templates_dir.is_dir():
            raise ProfileError(profile.templates_dir, "runtime module template directory missing")
        return profile

    def excludes(self) -> tuple[ExcludeRule, ...]:
        rules = []
        for index, table in enumerate(self.data.get("exclude", [])):
            where = f"[[exclude]] #{index + 1}"
            rules.append(
                ExcludeRule(
                    name=self.string(table, "name", where),
                    reason=self.string(table, "reason", where),
                    artifacts=self.strings(table, "artifacts", where, ("*",)),
                    components=self.strings(table, "components", where, COMPONENTS),
                    paths=self.strings(table, "paths", where),
                )
            )
        return tuple(rules)

    def packages(self) -> tuple[PackageDef, ...]:
        tables = self.data.get("package")
        if not isinstance(tables, list) or not tables:
            raise self.fail("[[package]]", "no packages defined")
        packages = [self.package(index, table) for index, table in enumerate(tables)]
        keys = [p.key for p in packages]
        if len(set(keys)) != len(keys):
            raise self.fail("[[package]]", f"duplicate keys in {keys}")
        for package in packages:
            unknown = sorted(set(package.requires) - set(keys))
            if unknown:
                raise self.fail(f"package {package.key!r}", f"requires unknown packages {unknown}")
        if sum(p.kind == "devel" for p in packages) > 1:
            raise self.fail("[[package]]", "at most one package may have kind = 'devel'")
        return tuple(packages)

    def package(self, index: int, table: dict[str, Any]) -> PackageDef:
        where = f"[[package]] #{index + 1}"
        key = self.string(table, "key", where)
        where = f"package {key!r}"
        kind = table.get("kind", "runtime")
        scope = table.get("scope")
        if kind not in ("runtime", "devel"):
            raise self.fail(where, "kind must be 'runtime' or 'devel'")
        if scope not in ("generic", "family"):
            raise self.fail(where, "scope must be 'generic' or 'family'")
        name = self.string(table, "name", where)
        install_dir = self.string(table, "install_dir", where)
        if scope == "family" and "{family" not in name:
            raise self.fail(where, "a per-family package needs {family} in its name")
        takes = []
        for number, rule in enumerate(table.get("take", [])):
            rule_where = f"{where} take #{number + 1}"
            families = self.strings(rule, "families", rule_where, (scope,))
            if not set(families) <= {"family", "generic"}:
                raise self.fail(rule_where, "families may hold 'family' and 'generic'")
            components = self.strings(rule, "components", rule_where)
            if not set(components) <= set(COMPONENTS):
                raise self.fail(rule_where, f"components must be among {list(COMPONENTS)}")
            takes.append(
                TakeRule(
                    artifacts=self.strings(rule, "artifacts", rule_where),
                    components=components,
                    families=tuple("family" if f == "family" else "generic" for f in families),
                    paths=self.strings(rule, "paths", rule_where),
                )
            )
        scripts = []
        for script_name, body in sorted(table.get("console_scripts", {}).items()):
            script_where = f"{where} console_scripts.{script_name}"
            scripts.append(
                ConsoleScript(
                    name=script_name,
                    path=self.string(body, "path", script_where),
                    test_args=self.strings(body, "test_args", script_where),
                )
            )
        return PackageDef(
            key=key,
            kind="devel" if kind == "devel" else "runtime",
            name=name,
            scope="family" if scope == "family" else "generic",
            install_dir=install_dir,
            summary=self.string(table, "summary", where, name),
            extra=table.get("extra"),
            requires=self.strings(table, "requires", where),
            optional=bool(table.get("optional", False)),
            must_contain=self.strings(table, "must_contain", where),
            takes=tuple(takes),
            console_scripts=tuple(scripts),
        )
