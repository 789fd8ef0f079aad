"""One small module per subcommand, each with ``configure_parser`` and ``execute``.

A command module provides ``configure_parser(subparsers, name)`` which adds its parser and sets
``execute`` as the parser default, and ``execute(args) -> int`` which calls one library function.
"""

from __future__ import annotations

from types import ModuleType

from wheelyard.cli import (
    build,
    families,
    fetch_artifacts,
    index,
    promote,
    publish,
    release_preflight,
    release_smoke,
    test_family,
    upload,
    version,
)

COMMANDS: dict[str, ModuleType] = {
    "build": build,
    "families": families,
    "fetch-artifacts": fetch_artifacts,
    "index": index,
    "test": test_family,
    "upload": upload,
    "promote": promote,
    "publish": publish,
    "release-preflight": release_preflight,
    "release-smoke": release_smoke,
    "version": version,
}
