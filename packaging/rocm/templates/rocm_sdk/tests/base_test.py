"""The ``rocm-sdk`` command and the Python API (TheRock's names and behaviour)."""

from __future__ import annotations

import os
import re
import sys
import unittest
import warnings
from pathlib import Path
from typing import List, Pattern, Union

import rocm_sdk
from rocm_sdk import _dist_info
from rocm_sdk.tests import utils

_GFX = re.compile(r"gfx[0-9a-z]+")
_DIST_INFO_NAMES = (
    "ALL_PACKAGES",
    "ALL_LIBRARIES",
    "PackageEntry",
    "LibraryEntry",
    "AVAILABLE_TARGET_FAMILIES",
    "DEFAULT_TARGET_FAMILY",
    "PY_PACKAGE_SUFFIX_NONCE",
    "LINUX_TARGET_FAMILIES",
    "WINDOWS_TARGET_FAMILIES",
    "determine_target_family",
    "discover_current_target_family",
    "get_target_family_platform_marker",
    "build_per_target_extras",
    "build_install_requires",
    "__version__",
)


def _usable_libraries() -> List[str]:
    """Short names of the table that this build has and whose wheel is installed, core first."""
    installed = utils.installed_packages(utils.info())
    entries = [
        entry
        for entry in _dist_info.ALL_LIBRARIES.values()
        if entry.built and entry.package.logical_name in installed
    ]
    entries.sort(key=lambda e: (e.package.logical_name != "core", e.shortname != "amdhip64"))
    return [entry.shortname for entry in entries]


class CommandTest(unittest.TestCase):
    def _ok(self, *args: str) -> str:
        ran = utils.cli(*args)
        if ran.returncode != 0:
            self.fail(ran.describe())
        return ran.stdout.strip()

    def test_help(self) -> None:
        """rocm-sdk --help"""
        self.assertIn("usage", self._ok("--help").lower())

    def test_version_flag(self) -> None:
        """rocm-sdk --version"""
        self.assertEqual(self._ok("--version"), rocm_sdk.__version__)

    def test_version(self) -> None:
        """rocm-sdk version"""
        out = self._ok("version")
        self.assertIn(".", out)
        self.assertEqual(out, utils.info().version)

    def test_targets(self) -> None:
        """rocm-sdk targets"""
        targets = [part for part in self._ok("targets").split(";") if part]
        if not targets or not all(_GFX.fullmatch(target) for target in targets):
            self.fail(f"printed {targets!r}, expected gfx targets")

    def test_console_script(self) -> None:
        """rocm-sdk console script"""
        script = utils.find_script("rocm-sdk")
        if script is None:
            self.fail(f"not installed in {', '.join(utils.script_dirs())}")
        ran = utils.run([script, "version"])
        self.assertEqual(ran.returncode, 0, ran.describe())

    def test_main_imports_quietly(self) -> None:
        """import rocm_sdk.__main__"""
        ran = utils.run([sys.executable, "-c", "import rocm_sdk.__main__ as m; m.main"])
        self.assertEqual((ran.returncode, ran.stdout, ran.stderr), (0, "", ""), ran.describe())


class ApiTest(unittest.TestCase):
    def setUp(self) -> None:
        self._saved = os.environ.pop(rocm_sdk.PRELOAD_ENV, None)
        rocm_sdk._ALL_CDLLS.clear()

    def tearDown(self) -> None:
        os.environ.pop(rocm_sdk.PRELOAD_ENV, None)
        if self._saved is not None:
            os.environ[rocm_sdk.PRELOAD_ENV] = self._saved

    def _names(self, count: int) -> List[str]:
        names = _usable_libraries()[:count]
        if not names:
            self.skipTest("no library of the table is installed")
        return names

    def test_dist_info_names(self) -> None:
        """_dist_info names"""
        missing = [name for name in _DIST_INFO_NAMES if not hasattr(_dist_info, name)]
        self.assertEqual(missing, [])
        self.assertEqual(_dist_info.__version__, rocm_sdk.__version__)
        self.assertIn(_dist_info.DEFAULT_TARGET_FAMILY, _dist_info.AVAILABLE_TARGET_FAMILIES)

    def test_target_family(self) -> None:
        """determine_target_family"""
        self.assertIn(_dist_info.determine_target_family(), _dist_info.AVAILABLE_TARGET_FAMILIES)

    def test_preload(self) -> None:
        """initialize_process(preload_shortnames=...)"""
        names = self._names(2)
        rocm_sdk.initialize_process(preload_shortnames=names)
        self.assertEqual(sorted(set(names) & set(rocm_sdk._ALL_CDLLS)), sorted(names))

    def test_env_preload(self) -> None:
        """initialize_process with ROCM_SDK_PRELOAD_LIBRARIES"""
        names = self._names(2)
        for separator in (",", ";"):
            with self.subTest(check=f"ROCM_SDK_PRELOAD_LIBRARIES separated by {separator!r}"):
                rocm_sdk._ALL_CDLLS.clear()
                value = f" {separator}" + f"{separator} ".join(names) + f"{separator} {separator}"
                os.environ[rocm_sdk.PRELOAD_ENV] = value
                rocm_sdk.initialize_process()
                self.assertEqual(sorted(rocm_sdk._ALL_CDLLS), sorted(names))
        with self.subTest(check="ROCM_SDK_PRELOAD_LIBRARIES with an unknown name"):
            os.environ[rocm_sdk.PRELOAD_ENV] = "no-such-library"
            with self.assertRaisesRegex(RuntimeError, rocm_sdk.PRELOAD_ENV):
                rocm_sdk.initialize_process()
            rocm_sdk.initialize_process(env_override=False)

    def test_check_version(self) -> None:
        """initialize_process(check_version=...)"""
        version = rocm_sdk.__version__
        matching: List[Union[str, Pattern[str]]] = [
            version,
            "*",
            version.split(".")[0] + ".*",
            re.compile(r".+"),
        ]
        for wanted in matching:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                rocm_sdk.initialize_process(check_version=wanted, fail_on_version_mismatch=True)
                rocm_sdk.initialize_process(check_version=wanted)
        text = "compiled against a ROCm version matching"
        mismatching: List[Union[str, Pattern[str]]] = ["bad", version + ".1", re.compile("bad")]
        for wanted in mismatching:
            with self.assertRaisesRegex(RuntimeError, text):
                rocm_sdk.initialize_process(check_version=wanted, fail_on_version_mismatch=True)
            with self.assertWarnsRegex(UserWarning, text):
                rocm_sdk.initialize_process(check_version=wanted)

    def test_find_libraries(self) -> None:
        """find_libraries"""
        for name in _usable_libraries():
            with self.subTest(check=f"find_libraries {name}"):
                (path,) = rocm_sdk.find_libraries(name)
                self.assertTrue(Path(path).is_absolute() and Path(path).is_file(), path)
        with (
            self.subTest(check="find_libraries of an unknown name"),
            self.assertRaisesRegex(ModuleNotFoundError, "Unknown rocm library"),
        ):
            rocm_sdk.find_libraries("no-such-library")
