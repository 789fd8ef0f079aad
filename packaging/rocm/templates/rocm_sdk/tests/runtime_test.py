"""The runtime wheels: installed beside ``rocm_sdk``, libraries load, console scripts start."""

from __future__ import annotations

import unittest
from typing import List

import rocm_sdk
from rocm_sdk import _info
from rocm_sdk.tests import utils

SCRIPT_TIMEOUT = 120


class RuntimeTest(unittest.TestCase):
    def test_installed(self) -> None:
        """runtime packages installed"""
        info = utils.info()
        installed = utils.installed_packages(info)
        for package in info.runtime_packages():
            directory = installed.get(package.key)
            if directory is None:
                if package.required:
                    with self.subTest(check=f"installed {package.dist}"):
                        self.fail(f"{package.dist} is not installed; {info.install_hint(package)}")
                continue
            with self.subTest(check=f"{package.module} beside rocm_sdk"):
                if directory.parent != _info.HERE.parent:
                    self.fail(f"{directory} is not beside {_info.HERE} (mixed install locations)")

    def test_library_table(self) -> None:
        """library table"""
        info = utils.info()
        installed = utils.installed_packages(info)
        missing: List[str] = []
        for library in info.libraries:
            if not library.built or library.package not in installed:
                continue
            try:
                rocm_sdk.find_libraries(library.name)
            except (FileNotFoundError, ModuleNotFoundError):
                missing.append(f"{library.name} ({library.linux})")
        if missing:
            self.fail(
                f"listed in rocm_sdk but missing from the installed wheels: {', '.join(missing)}"
            )

    def test_libraries_load(self) -> None:
        """shared libraries load"""
        info = utils.info()
        installed = utils.installed_packages(info)
        for package in info.runtime_packages():
            directory = installed.get(package.key)
            if directory is None:
                if not package.required:
                    with self.subTest(check=f"load {package.module}"):
                        hint = info.install_hint(package)
                        self.skipTest(f"{package.dist} not installed ({hint})")
                continue
            for path, ran in utils.load_each(utils.shared_libraries(directory)):
                with self.subTest(check=f"load {utils.relative_name(path)}"):
                    if ran.returncode != 0:
                        self.fail(ran.describe())

    def test_console_scripts(self) -> None:
        """console scripts"""
        info = utils.info()
        installed = utils.installed_packages(info)
        devel = info.devel_package()
        devel_installed = devel is not None and _info.package_dir(devel) is not None
        for name in sorted(info.console_scripts):
            script = info.console_scripts[name]
            with self.subTest(check=f"console script {name}"):
                package = info.packages.get(script.package)
                if package is None or script.package not in installed:
                    dist = package.dist if package is not None else script.package
                    self.skipTest(f"{dist} not installed")
                self._check_script(script, devel_installed)

    def _check_script(self, script: _info.ConsoleScript, devel_installed: bool) -> None:
        found = utils.find_script(script.name)
        if found is None:
            self.fail(f"not installed in {', '.join(utils.script_dirs())}")
        ran = utils.run([found, *script.test_args], timeout=SCRIPT_TIMEOUT)
        if ran.loader_failed():
            self.fail(f"cannot start: {ran.describe()}")
        if script.needs_gpu and not utils.gpu_present():
            self.skipTest(f"needs a GPU and {utils.KFD_DEVICE} is absent ({ran.describe()})")
        if script.needs_devel and not devel_installed:
            self.skipTest(f"needs the devel files, not installed ({ran.describe()})")
        if ran.returncode != 0:
            self.fail(ran.describe())

    def test_versions(self) -> None:
        """versions"""
        from importlib import metadata

        info = utils.info()
        installed = utils.installed_packages(info)
        dists = [info.meta] + [info.packages[key].dist for key in sorted(installed)]
        devel = info.devel_package()
        if devel is not None and _info.package_dir(devel) is not None:
            dists.append(devel.dist)
        extras = sorted(
            package.extra
            for package in info.packages.values()
            if package.extra and package.dist in dists
        )
        wrong = []
        for dist in dists:
            try:
                found = metadata.version(dist)
            except metadata.PackageNotFoundError:
                found = "no metadata"
            if found != info.version:
                wrong.append(f"{dist} {found}")
        if wrong:
            wanted = f"{info.meta}[{','.join(extras)}]" if extras else info.meta
            self.fail(
                f"expected every package at {info.version}, found: {', '.join(wrong)}; "
                f'reinstall with: pip install "{wanted}=={info.version}"'
            )

    def test_gpu_family(self) -> None:
        """gpu family"""
        info = utils.info()
        if not utils.gpu_present():
            self.skipTest(f"no GPU visible ({utils.KFD_DEVICE} absent)")
        gpus = utils.gpu_targets()
        if not gpus:
            self.skipTest(f"no GPU agents listed in {utils.KFD_TOPOLOGY}")
        if not any(gpu in info.targets for gpu in gpus):
            self.fail(
                f"this machine's GPUs ({', '.join(gpus)}) are not covered by the installed "
                f"family {info.family} ({';'.join(info.targets)}); install the rocm packages "
                "of a family that covers them"
            )
