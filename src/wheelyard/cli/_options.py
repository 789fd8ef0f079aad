"""Options several subcommands share, declared once."""

from __future__ import annotations

import argparse
from pathlib import Path

from wheelyard.profile import default_profile

DEFAULT_PROFILE = default_profile()  # the checkout's packaging/rocm, or the packaged copy


def add_profile_argument(parser: argparse.ArgumentParser, *, purpose: str = "") -> None:
    """``--profile DIR``, defaulting to the ROCm profile."""
    parser.add_argument(
        "--profile",
        type=Path,
        default=DEFAULT_PROFILE,
        help=f"profile directory{purpose} (default: {DEFAULT_PROFILE})",
    )
