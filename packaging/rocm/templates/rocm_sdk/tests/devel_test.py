"""The devel wheel: ``rocm-sdk init`` and ``path``, hard links, RECORD, devel libraries."""

from __future__ import annotations

import csv
import os
import unittest
from pathlib import Path

from rocm_sdk import _devel, _info, _record
from rocm_sdk.tests import utils


class DevelTest(unittest.TestCase):
    def test_devel(self) -> None:
        """devel"""
        info = utils.info()
        try:
            paths = _devel.locate(info)
        except _info.RocmSdkError as exc:
            self.skipTest(str(exc))
        with self.subTest(check="devel init"):
            ran = utils.cli("init")
            initialized = ran.returncode == 0
            if not initialized:
                self.fail(ran.describe())
        if not initialized:
            with self.subTest(check="devel paths"):
                self.skipTest("rocm-sdk init failed")
            return
        expected = {"root": paths.root, "bin": paths.bin_dir, "cmake": paths.cmake_dir}
        for flag in sorted(expected):
            with self.subTest(check=f"rocm-sdk path --{flag}"):
                ran = utils.cli("path", f"--{flag}")
                printed = ran.stdout.strip()
                if ran.returncode != 0 or Path(printed) != expected[flag]:
                    self.fail(f"printed {printed!r} ({ran.describe()}), expected {expected[flag]}")
                self.assertTrue(Path(printed).is_dir(), f"{printed} is not a directory")
        with self.subTest(check="devel cmake config"):
            if not paths.layout.cmake_config:
                self.skipTest("this build names no cmake config")
            self.assertTrue(paths.cmake_config.is_file(), f"{paths.cmake_config} does not exist")
        with self.subTest(check="devel hard links"):
            self._hard_links(paths)
        with self.subTest(check="devel files in RECORD"):
            self._recorded(paths)
        for path, ran in utils.load_each(utils.shared_libraries(paths.root)):
            with self.subTest(check=f"load {utils.relative_name(path)}"):
                if ran.returncode != 0:
                    self.fail(ran.describe())

    def _hard_links(self, paths: _devel.DevelPaths) -> None:
        links = [e for e in _devel.read_manifest(paths.manifest) if e["type"] == "runtime-link"]
        wrong = []
        for entry in links:
            devel_file = paths.root.joinpath(*entry["path"].split("/"))
            runtime = _devel.runtime_file(paths, entry["path"], entry["target"])
            try:
                a, b = os.stat(devel_file, follow_symlinks=False), os.stat(runtime)
                same = (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)
            except OSError:
                same = False
            if not same:
                wrong.append(entry["path"])
        if wrong:
            self.fail(
                f"{len(wrong)} of {len(links)} devel files are not hard links of their runtime "
                "files: " + ", ".join(wrong[:5])
            )

    def _recorded(self, paths: _devel.DevelPaths) -> None:
        record = _record.find_record(paths.site_packages, paths.package.dist, paths.info.version)
        if record is None:
            self.skipTest(f"{paths.package.dist} has no RECORD (not installed by pip or uv)")
        with open(record, encoding="utf-8", newline="") as handle:
            listed = {row[0] for row in csv.reader(handle) if row}
        module = paths.module_dir.name
        unlisted = []
        for directory, dirs, files in os.walk(str(paths.root)):
            dirs.sort()
            links = [d for d in dirs if os.path.islink(os.path.join(directory, d))]
            for name in sorted(files + links):
                rel = os.path.relpath(os.path.join(directory, name), str(paths.site_packages))
                if rel.replace(os.sep, "/") not in listed:
                    unlisted.append(rel)
        if unlisted:
            self.fail(
                f"{len(unlisted)} expanded files are not in {record} (pip uninstall would leave "
                f"them): " + ", ".join(unlisted[:5])
            )
        self.assertIn(f"{module}/{_devel.LOCK_FILE}", listed)
