from __future__ import annotations

from pathlib import Path

import pytest

from wheelyard.errors import ProfileError, UnknownFamilyError
from wheelyard.profile.families import FamilyRegistry, identifier, target_sort_key

PROFILE = Path(__file__).resolve().parents[2] / "packaging" / "rocm"


@pytest.fixture(scope="module")
def registry() -> FamilyRegistry:
    return FamilyRegistry.load(PROFILE / "families.toml")


def test_every_reference_family_is_defined(registry: FamilyRegistry) -> None:
    expected = {
        "gfx90X-dcgpu": ("gfx908", "gfx90a"),
        "gfx94X-dcgpu": ("gfx942",),
        "gfx950-dcgpu": ("gfx950",),
        "gfx101X-dgpu": ("gfx1010", "gfx1011", "gfx1012"),
        "gfx103X-all": tuple(f"gfx103{i}" for i in range(7)),
        "gfx110X-all": ("gfx1100", "gfx1101", "gfx1102", "gfx1103"),
        "gfx110X-dgpu": ("gfx1100", "gfx1101", "gfx1102"),
        "gfx115X-all": ("gfx1150", "gfx1151", "gfx1152", "gfx1153"),
        "gfx120X-all": ("gfx1200", "gfx1201"),
        "gfx125X-dcgpu": ("gfx1250",),
    }
    assert {f.name: f.targets for f in registry.families} == expected


def test_targets_sort_numerically_not_as_strings() -> None:
    targets = ["gfx1100", "gfx942", "gfx90a", "gfx908", "gfx1030", "gfx950"]
    assert sorted(targets, key=target_sort_key) == [
        "gfx908",
        "gfx90a",
        "gfx942",
        "gfx950",
        "gfx1030",
        "gfx1100",
    ]


def test_single_target_is_a_family(registry: FamilyRegistry) -> None:
    family = registry.get("gfx1151")
    assert family.targets == ("gfx1151",)
    assert "gfx1151" in registry.names()


def test_unknown_family_lists_valid_ones(registry: FamilyRegistry) -> None:
    with pytest.raises(UnknownFamilyError) as info:
        registry.get("gfx999X-all")
    assert "gfx999X-all" in str(info.value)
    assert "gfx120X-all" in str(info.value)


def test_resolve_sorts_and_dedups(registry: FamilyRegistry) -> None:
    names = [f.name for f in registry.resolve(["gfx94X-dcgpu", "gfx120X-all", "gfx94X-dcgpu"])]
    assert names == ["gfx120X-all", "gfx94X-dcgpu"]


def test_identifier() -> None:
    assert identifier("gfx120X-all") == "gfx120X_all"


def test_bad_families_file(tmp_path: Path) -> None:
    path = tmp_path / "families.toml"
    path.write_text("[families.bad_name]\ntargets = ['gfx942']\n")
    with pytest.raises(ProfileError, match="must not contain '_'"):
        FamilyRegistry.load(path)
    path.write_text("not toml [")
    with pytest.raises(ProfileError, match="invalid TOML"):
        FamilyRegistry.load(path)
    with pytest.raises(ProfileError, match="cannot read"):
        FamilyRegistry.load(tmp_path / "missing.toml")
