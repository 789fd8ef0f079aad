"""One small module per subcommand, each with ``configure_parser`` and ``execute``.

A command module provides ``configure_parser(subparsers, name)`` which adds its parser and sets
``execute`` as the parser default, and ``execute(args) -> int`` which calls one library function.
"""

from __future__ import annotations

from types import ModuleType

from wheelyard.cli import build, index

COMMANDS: dict[str, ModuleType] = {
    "build": build,
    "index": index,
}
