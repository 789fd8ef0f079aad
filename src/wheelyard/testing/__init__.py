"""Testing built wheels: fresh environments, the safe install, and a bounded ``rocm-sdk test``."""

from wheelyard.testing.installers import (
    INSTALLERS,
    Installer,
    InstallerName,
    InstallSource,
    PipInstaller,
    UvInstaller,
    installer_for,
    isolated_environment,
)
from wheelyard.testing.run import (
    FamilyTestOptions,
    FamilyTestPlan,
    plan_test,
    requirement,
    run_test,
)
from wheelyard.testing.sources import (
    FamilySource,
    WheelLocation,
    constraints,
    family_source,
    http_fetch,
    manifest_version,
)

__all__ = [
    "INSTALLERS",
    "FamilySource",
    "InstallSource",
    "Installer",
    "InstallerName",
    "PipInstaller",
    "FamilyTestOptions",
    "FamilyTestPlan",
    "UvInstaller",
    "WheelLocation",
    "constraints",
    "family_source",
    "http_fetch",
    "installer_for",
    "isolated_environment",
    "manifest_version",
    "plan_test",
    "requirement",
    "run_test",
]
