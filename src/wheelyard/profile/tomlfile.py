"""Reading the profile's TOML files, with errors that name the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from wheelyard.errors import ProfileError


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ProfileError(path, f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path, f"invalid TOML: {exc}") from None
