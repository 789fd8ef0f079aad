"""The profile: GPU families, package definitions, the TOML reader and the build's version."""

from wheelyard.profile.definitions import (
    ConsoleScript,
    LibraryDef,
    PackageDef,
    Profile,
    glob_match,
    load_profile,
)
from wheelyard.profile.families import GENERIC, Family, FamilyRegistry, target_sort_key
from wheelyard.profile.location import checkout_root, default_artifacts, default_profile
from wheelyard.profile.tomlfile import read_toml
from wheelyard.profile.version import (
    RELEASE_TYPES,
    ReleaseSpec,
    ReleaseType,
    check_successor,
    is_publishable,
    release_version,
)
from wheelyard.profile.version import compute as compute_version

__all__ = [
    "GENERIC",
    "RELEASE_TYPES",
    "ConsoleScript",
    "Family",
    "FamilyRegistry",
    "LibraryDef",
    "PackageDef",
    "Profile",
    "ReleaseSpec",
    "ReleaseType",
    "check_successor",
    "checkout_root",
    "compute_version",
    "default_artifacts",
    "default_profile",
    "glob_match",
    "is_publishable",
    "load_profile",
    "read_toml",
    "release_version",
    "target_sort_key",
]
