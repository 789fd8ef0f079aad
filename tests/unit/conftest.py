"""Fixtures of the rocm_sdk runtime tests: tiny native libraries, and a fake installed tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from _rocm_sdk_env import Env, Native, build_native, make_env


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> Native:
    """The runtime tests' shared libraries, compiled once per test session."""
    return build_native(tmp_path_factory.mktemp("native"))


@pytest.fixture
def env(tmp_path: Path, native: Native) -> Env:
    """A site-packages with the rocm packages laid out as pip installs them."""
    return make_env(tmp_path, native)
