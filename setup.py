"""Build hook: the default profile (``packaging/rocm``) ships inside the package.

Everything else is in pyproject.toml. A regular (non-editable) build copies ``packaging/rocm``
to ``wheelyard/profiles/rocm`` in the wheel, where ``wheelyard.profile.default_profile()`` finds
it once installed; an editable install reads the checkout's ``packaging/rocm`` instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROFILE = Path(__file__).resolve().parent / "packaging" / "rocm"


class BuildPyWithProfile(build_py):
    """``build_py`` plus a copy of the profile into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "wheelyard" / "profiles" / "rocm"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(PROFILE, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))


setup(cmdclass={"build_py": BuildPyWithProfile})
