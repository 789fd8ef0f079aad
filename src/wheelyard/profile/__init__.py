"""The profile: GPU families, package definitions, the TOML reader and the build's version."""

from wheelyard.profile.definitions import PackageDef, Profile, glob_match, load_profile
from wheelyard.profile.families import GENERIC, Family, FamilyRegistry, target_sort_key
from wheelyard.profile.tomlfile import read_toml
from wheelyard.profile.version import compute as compute_version

__all__ = [
    "GENERIC",
    "Family",
    "FamilyRegistry",
    "PackageDef",
    "Profile",
    "compute_version",
    "glob_match",
    "load_profile",
    "read_toml",
    "target_sort_key",
]
