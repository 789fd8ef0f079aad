"""The profile: ``packages.toml`` and ``families.toml`` loaded into frozen dataclasses.

Another project packages its own artifacts by writing another profile directory; nothing here
knows about ROCm by name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

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
    """A console script running a program of its package; left out if no path is present."""

    name: str
    paths: tuple[str, ...]  # candidates in the package's tree, the first present is used
    test_args: tuple[str, ...] = ()  # what ``rocm-sdk test`` runs it with
    needs_gpu: bool = False  # may fail without a GPU (the test skips it without /dev/kfd)
    needs_devel: bool = False  # meant to run with the devel files (skipped without them)

    @property
    def path(self) -> str:
        return self.paths[0]

    def resolve(self, files: Collection[str]) -> str | None:
        """The first candidate path among ``files``, or None."""
        return next((path for path in self.paths if path in files), None)


@dataclass(frozen=True, kw_only=True)
class LibraryDef:
    """A ``[[library]]`` row: the short name ``find_libraries`` knows a library by."""

    name: str
    package: str  # key of the package that ships it
    linux: str  # glob below the package's install directory, e.g. lib/libamdhip64.so*
    windows: str = ""  # likewise for Windows; "" when it does not exist there
    optional: bool = False  # may be missing from a build without being an error

    def matches(self, path: str) -> bool:
        return glob_match(self.linux, path)


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
    license_expression: str | None = None  # SPDX; None: the profile's [licenses] expression

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
class LicenseSettings:
    """``[licenses]``: which artifact files are license files, and the profile's own."""

    globs: tuple[str, ...] = ()  # installed paths, e.g. share/doc/*/LICENSE*
    file: Path | None = None  # the profile's license file, shipped in every wheel

    def matches(self, path: str) -> bool:
        return _matches_name(self.globs, path)


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
    min_glibc: tuple[int, int]
    dangling_symlinks: Literal["error", "warn"]
    append_min_size: int
    allow_external: frozenset[str]
    excludes: tuple[ExcludeRule, ...]
    packages: tuple[PackageDef, ...]
    libraries: tuple[LibraryDef, ...]
    devel: DevelSettings
    families: FamilyRegistry
    licenses: LicenseSettings = LicenseSettings()
    # [artifacts] max_extracted_gib: the most one artifact archive may expand to.
    max_extracted_bytes: int = 32 << 30

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

    def max_extracted(self) -> int:
        table = self.data.get("artifacts", {})
        value = table.get("max_extracted_gib", 32) if isinstance(table, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail("[artifacts]", "'max_extracted_gib' must be a whole number, 1 or more")
        return value << 30

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
            license=self.license_expression(
                self.licenses_table(),
                "[licenses]",
                "expression",
                self.string(top, "license", "[profile]", "Proprietary"),
            ),
            requires_python=self.string(top, "requires_python", "[profile]", ">=3.9"),
            homepage=top.get("homepage"),
            min_glibc=(2, int(match.group(1))),
            dangling_symlinks="error" if dangling == "error" else "warn",
            append_min_size=self.size_mib(elf, "append_runpath_min_mib", "[elf]", 0) << 20,
            allow_external=frozenset(self.strings(closure, "allow_external", "[closure]")),
            excludes=self.excludes(),
            packages=packages,
            libraries=self.libraries({p.key for p in packages}),
            devel=DevelSettings(
                cmake_dir=self.string(devel, "cmake_dir", "[devel]", "lib/cmake"),
                bin_dir=self.string(devel, "bin_dir", "[devel]", "bin"),
                cmake_config=devel.get("cmake_config"),
            ),
            families=self.families,
            licenses=self.licenses(),
            max_extracted_bytes=self.max_extracted(),
        )
        for name in profile.default_families + profile.sample_families:
            if name not in self.families.names():
                raise self.fail("[profile]", f"family {name!r} is not in families.toml")
        if not profile.templates_dir.is_dir():
            raise ProfileError(profile.templates_dir, "runtime module template directory missing")
        return profile

    def license_expression(
        self, table: dict[str, Any], where: str, key: str, default: str | None
    ) -> str:
        """An SPDX expression, canonicalized (``mit`` becomes ``MIT``); PEP 639 asks for one."""
        text = self.string(table, key, where, default)
        try:
            return canonicalize_license_expression(text)
        except InvalidLicenseExpression:
            raise self.fail(where, f"'{key}' {text!r} is not an SPDX license expression") from None

    def licenses_table(self) -> dict[str, Any]:
        table = self.data.get("licenses", {})
        if isinstance(table, dict):
            return table
        raise self.fail("[licenses]", "must be a table")

    def licenses(self) -> LicenseSettings:
        table = self.licenses_table()
        name = table.get("file")
        if name is not None and (not isinstance(name, str) or not name):
            raise self.fail("[licenses]", "'file' must be a path relative to the profile")
        file = None if name is None else self.root / name
        if file is not None and not file.is_file():
            raise ProfileError(file, "the profile's license file ([licenses] file) is missing")
        return LicenseSettings(globs=self.strings(table, "globs", "[licenses]"), file=file)

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

    def flag(self, table: dict[str, Any], key: str, where: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(where, f"'{key}' must be true or false")
        return value

    def libraries(self, package_keys: set[str]) -> tuple[LibraryDef, ...]:
        tables = self.data.get("library", [])
        if not isinstance(tables, list):
            raise self.fail("[[library]]", "must be an array of tables")
        rows = []
        for index, table in enumerate(tables):
            where = f"[[library]] #{index + 1}"
            name = self.string(table, "name", where)
            where = f"library {name!r}"
            package = self.string(table, "package", where)
            if package not in package_keys:
                raise self.fail(where, f"package {package!r} is not a [[package]] key")
            windows = table.get("windows", "")
            if not isinstance(windows, str):
                raise self.fail(where, "'windows' must be a string")
            rows.append(
                LibraryDef(
                    name=name,
                    package=package,
                    linux=self.string(table, "linux", where),
                    windows=windows,
                    optional=self.flag(table, "optional", where),
                )
            )
        names = [row.name for row in rows]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise self.fail("[[library]]", f"short names listed twice: {repeated}")
        return tuple(rows)

    def console_script(self, name: str, body: Any, where: str) -> ConsoleScript:
        if not isinstance(body, dict):
            raise self.fail(where, "must be a table")
        paths = body.get("path")
        if isinstance(paths, str):
            paths = [paths]
        if (
            not isinstance(paths, list)
            or not paths
            or not all(isinstance(p, str) and p for p in paths)
        ):
            raise self.fail(where, "'path' must be a path or a non-empty list of paths")
        return ConsoleScript(
            name=name,
            paths=tuple(paths),
            test_args=self.strings(body, "test_args", where),
            needs_gpu=self.flag(body, "needs_gpu", where),
            needs_devel=self.flag(body, "needs_devel", where),
        )

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
        scripts = [s.name for p in packages for s in p.console_scripts]
        repeated = sorted({n for n in scripts if scripts.count(n) > 1})
        if repeated:
            raise self.fail("[[package]]", f"console scripts declared twice: {repeated}")
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
        scripts = [
            self.console_script(script_name, body, f"{where} console_scripts.{script_name}")
            for script_name, body in sorted(table.get("console_scripts", {}).items())
        ]
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
            license_expression=(
                self.license_expression(table, where, "license_expression", None)
                if "license_expression" in table
                else None
            ),
        )
