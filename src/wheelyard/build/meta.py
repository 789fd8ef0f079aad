"""Distribution metadata: METADATA, WHEEL, entry points, and the per-family meta wheel."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wheelyard import __version__
from wheelyard.errors import ProfileError
from wheelyard.profile import Family, Profile
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

    def render(self) -> bytes:
        lines = [
            f"Metadata-Version: {METADATA_VERSION}",
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Summary: {self.summary}",
            f"License-Expression: {self.license}",
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


def dist_info_document(
    *,
    version: str,
    family: Family,
    packages: Mapping[str, Mapping[str, object]],
    libraries: Mapping[str, Mapping[str, str]],
    preload: Sequence[str],
    console_scripts: Mapping[str, Mapping[str, object]],
    devel: Mapping[str, object],
) -> dict[str, object]:
    return {
        "version": version,
        "family": family.name,
        "targets": list(family.targets),
        "packages": {key: dict(packages[key]) for key in sorted(packages)},
        "libraries": {key: dict(libraries[key]) for key in sorted(libraries)},
        "preload": [name for name in preload if name in libraries],
        "console_scripts": {key: dict(console_scripts[key]) for key in sorted(console_scripts)},
        "devel": dict(devel),
    }
