"""Where the default profile and the sample artifacts are: a checkout's, or the packaged copy.

Run from the repository (an editable install, ``src/wheelyard``), the default profile is the
checkout's ``packaging/rocm`` and the default artifacts its ``samples/rocm-artifacts``. An installed
wheelyard carries the profile as package data (``wheelyard/profiles/rocm``, copied at build time by
``setup.py``) and has no default artifacts.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_PROFILE_NAME = "rocm"
_PACKAGE = Path(__file__).resolve().parent.parent  # .../wheelyard


def checkout_root() -> Path | None:
    """The repository when wheelyard runs from its source checkout, else None."""
    root = _PACKAGE.parent.parent
    if (
        _PACKAGE.parent.name == "src"
        and (root / "pyproject.toml").is_file()
        and (root / "packaging" / DEFAULT_PROFILE_NAME / "packages.toml").is_file()
    ):
        return root
    return None


def default_profile() -> Path:
    """The checkout's ``packaging/rocm``, or the copy installed with the package."""
    root = checkout_root()
    if root is not None:
        return root / "packaging" / DEFAULT_PROFILE_NAME
    return _PACKAGE / "profiles" / DEFAULT_PROFILE_NAME


def default_artifacts() -> Path | None:
    """The checkout's sample artifacts; None outside the repository (``--artifacts`` needed)."""
    root = checkout_root()
    sample = None if root is None else root / "samples" / "rocm-artifacts"
    return sample if sample is not None and sample.is_dir() else None
