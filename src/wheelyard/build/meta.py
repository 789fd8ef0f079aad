"""Distribution metadata: METADATA, WHEEL, entry points, and the per-family meta wheel."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from wheelyard import __version__
from wheelyard.errors import ProfileError
from wheelyard.profile import ConsoleScript, Family, PackageDef, Profile
from wheelyard.wheelfile import FileEntry

METADATA_VERSION = "2.4"


@dataclass(frozen=True, kw_only=True)
class Requirement:
    name: str
    version: str
    extra: str | None = None

    def render(self) -> str:
        text = f"{self.name}=={self.version}"
        return text if self.extra is None else f'{text}; extra == "{self.extra}"'


@dataclass(frozen=True, kw_only=True)
class Metadata:
    name: str
    version: str
    summary: str
    description: str
    requires_python: str
    license: str
    homepage: str | None = None
    requires: tuple[Requirement, ...] = ()
    license_files: tuple[str, ...] = ()  # PEP 639: paths below <name>.dist-info/licenses/

    def render(self) -> bytes:
        lines = [
            f"Metadata-Version: {METADATA_VERSION}",
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Summary: {self.summary}",
            f"License-Expression: {self.license}",
            *(f"License-File: {path}" for path in self.license_files),
            f"Requires-Python: {self.requires_python}",
        ]
        if self.homepage:
            lines.append(f"Project-URL: Homepage, {self.homepage}")
        extras = sorted({r.extra for r in self.requires if r.extra is not None})
        lines.extend(f"Provides-Extra: {extra}" for extra in extras)
        lines.extend(f"Requires-Dist: {r.render()}" for r in self.requires)
        lines.append("Description-Content-Type: text/markdown")
        return ("\n".join(lines) + "\n\n" + self.description.rstrip() + "\n").encode("utf-8")


def render_wheel_file(tag: str) -> bytes:
    return (
        "Wheel-Version: 1.0\n"
        f"Generator: wheelyard {__version__}\n"
        "Root-Is-Purelib: false\n"
        f"Tag: {tag}\n"
    ).encode()


def render_entry_points(scripts: Mapping[str, str]) -> bytes:
    rows = [f"{name} = {target}" for name, target in sorted(scripts.items())]
    return ("[console_scripts]\n" + "\n".join(rows) + "\n").encode()


def describe(summary: str, version: str, family: Family | None, install_hint: str) -> str:
    lines = [f"# {summary}", "", f"Version {version}."]
    if family is not None:
        lines.append(f"GPU family {family.name} (targets: {', '.join(family.targets)}).")
    lines += ["", "Install:", "", "```", install_hint, "```"]
    return "\n".join(lines)


def render_console_module(dist_name: str, scripts: Mapping[str, str]) -> bytes:
    """``<module>/_console.py``: console scripts exec the packaged program, argv[0] kept."""
    table = json.dumps(dict(sorted(scripts.items())), indent=4)
    return f'''"""Console scripts of {dist_name}: run a packaged program under the script's name."""

import os
import sys

_SCRIPTS = {table}


def main():
    name = os.path.basename(sys.argv[0])
    for suffix in ("-script.py", ".exe"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    relative = _SCRIPTS.get(name)
    if relative is None:
        sys.exit(name + ": not a console script of {dist_name}; known: " + ", ".join(_SCRIPTS))
    program = os.path.join(os.path.dirname(os.path.abspath(__file__)), relative)
    os.execv(program, [name] + sys.argv[1:])
'''.encode()


def package_init(dist_name: str) -> bytes:
    return f'"""Installed files of the {dist_name} distribution (no Python API)."""\n'.encode()


def meta_runtime_entries(profile: Profile, dist_info: Mapping[str, object]) -> list[FileEntry]:
    """The runtime module copied from the profile's templates, plus ``_dist_info.json``."""
    module = profile.runtime_module
    templates = profile.templates_dir
    sources = sorted(path for path in templates.rglob("*.py") if "__pycache__" not in path.parts)
    if not any(path.name == "__init__.py" for path in sources):
        raise ProfileError(templates, "the runtime module template has no __init__.py")
    entries = [
        FileEntry(arcname=f"{module}/{path.relative_to(templates).as_posix()}", source=path)
        for path in sources
    ]
    payload = json.dumps(dist_info, indent=2, sort_keys=True) + "\n"
    entries.append(FileEntry(arcname=f"{module}/_dist_info.json", data=payload.encode()))
    return entries


DIST_INFO_SCHEMA = 2


def _family_template(template: str) -> str:
    """Profile placeholders as the runtime spells them (TheRock's ``{target_family}``)."""
    return template.replace("{family_ident}", "{target_family_ident}").replace(
        "{family}", "{target_family}"
    )


def _package_document(package: PackageDef, family: Family, shipped: bool) -> dict[str, object]:
    own = family if package.scope == "family" else None
    return {
        "dist": package.dist_name(own),
        "module": package.module(own),
        "extra": package.extra,
        "dist_template": _family_template(package.name),
        "module_template": _family_template(package.install_dir),
        "required": package.kind == "runtime" and package.extra is None and not package.optional,
        "shipped": shipped,
    }


def dist_info_document(
    *,
    profile: Profile,
    version: str,
    family: Family,
    shipped: Collection[str],
    files: Mapping[str, Collection[str]],
    scripts: Sequence[tuple[str, ConsoleScript, str]],
    devel: Mapping[str, object],
) -> dict[str, object]:
    """``rocm_sdk/_dist_info.json`` of ``family``'s meta wheel.

    ``shipped``: keys of the packages with a wheel in this family's view; ``files``: paths of
    each runtime package's payload (a library of the table is ``built`` when one matches its
    Linux glob); ``scripts``: (package key, script, path used) of the console scripts shipped.
    """
    libraries = [
        {
            "name": row.name,
            "package": row.package,
            "linux": row.linux,
            "windows": row.windows,
            "optional": row.optional,
            "built": any(row.matches(path) for path in files.get(row.package, ())),
        }
        for row in profile.libraries
    ]
    return {
        "schema": DIST_INFO_SCHEMA,
        "version": version,
        "family": family.name,
        "targets": list(family.targets),
        "meta": profile.meta,
        "py_package_suffix_nonce": "",
        "target_families": {
            "available": [family.name],
            "default": family.name,
            "linux": [],
            "windows": [],
            "targets": {family.name: list(family.targets)},
        },
        "packages": {
            package.key: _package_document(package, family, package.key in shipped)
            for package in sorted(profile.packages, key=lambda p: p.key)
        },
        "libraries": libraries,
        "console_scripts": {
            script.name: {
                "package": key,
                "path": path,
                "test_args": list(script.test_args),
                "needs_gpu": script.needs_gpu,
                "needs_devel": script.needs_devel,
            }
            for key, script, path in sorted(scripts, key=lambda item: item[1].name)
        },
        "devel": dict(devel),
    }
