from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import PROFILE, Link

from wheelyard.artifacts.catalog import Artifact, find_artifacts, read_artifact
from wheelyard.build.split import SplitPlan, plan_split
from wheelyard.errors import SplitError
from wheelyard.profile.definitions import Profile, load_profile

FAMILIES = ("gfx94X-dcgpu", "gfx120X-all")


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile(PROFILE)


def _tree(factory: Callable[..., Path]) -> Path:
    factory(
        "core-hip_lib_generic",
        {"lib/libamdhip64.so.7": b"hip", "lib/libx.so": Link("libamdhip64.so.7")},
    )
    factory("core-hip_dev_generic", {"include/hip/hip.h": b"h"})
    factory("core-hip_test_generic", {"bin/test": b"t"})
    factory("prim_dev_generic", {"include/rocprim/rocprim.hpp": b"p"})
    factory("fft_lib_gfx94X-dcgpu", {})
    for family in FAMILIES:
        factory(
            f"blas_lib_{family}",
            {"lib/librocblas.so.5": b"blas", f"lib/rocblas/{family}.dat": family},
        )
    return factory.directory  # type: ignore[attr-defined,no-any-return]


def _read(directory: Path) -> list[Artifact]:
    return [read_artifact(s, extract_to=directory / ".x") for s in find_artifacts(directory)]


def _plan(profile: Profile, directory: Path, families: tuple[str, ...]) -> SplitPlan:
    return plan_split(profile, profile.families.resolve(families), _read(directory))


def _owned(plan: SplitPlan) -> dict[str, list[tuple[str, str]]]:
    return {
        instance.key: [(str(f.artifact), f.path) for f in plan.ownership.files(instance)]
        for instance in plan.ownership
    }


def test_every_family_gets_its_own_libraries(
    profile: Profile, artifact_factory: Callable[..., Path]
) -> None:
    # TheRock #3486/#3608: one global "already populated" set left the second family empty.
    plan = _plan(profile, _tree(artifact_factory), FAMILIES)
    owned = _owned(plan)
    for family in FAMILIES:
        assert (f"blas_lib_{family}", "lib/librocblas.so.5") in owned[f"libraries@{family}"]
        assert (f"blas_lib_{family}", f"lib/rocblas/{family}.dat") in owned[f"libraries@{family}"]
    assert ("core-hip_lib_generic", "lib/libamdhip64.so.7") in owned["core"]
    assert ("core-hip_dev_generic", "include/hip/hip.h") in owned["core"]


def test_multi_family_equals_single_family(
    profile: Profile, artifact_factory: Callable[..., Path]
) -> None:
    directory = _tree(artifact_factory)
    together = _owned(_plan(profile, directory, FAMILIES))
    for family in FAMILIES:
        alone = _owned(_plan(profile, directory, (family,)))
        assert {k: v for k, v in together.items() if "@" not in k or k.endswith(family)} == alone


def test_exclusions_and_devel_only(profile: Profile, artifact_factory: Callable[..., Path]) -> None:
    plan = _plan(profile, _tree(artifact_factory), ("gfx120X-all",))
    assert [(f.path, rule) for f, rule in plan.excluded] == [("bin/test", "test-components")]
    view = plan.views[0]
    assert [f.path for f in view.devel_only] == ["include/rocprim/rocprim.hpp"]
    assert "bin/test" not in view.tree
    assert plan.ownership.owner("lib/librocblas.so.5", view.family).key == "libraries@gfx120X-all"
    assert plan.ownership.owner("lib/libamdhip64.so.7", view.family).key == "core"
    assert plan.ownership.owner("include/rocprim/rocprim.hpp", view.family) is None


def test_unowned_files_are_listed(profile: Profile, artifact_factory: Callable[..., Path]) -> None:
    directory = _tree(artifact_factory)
    artifact_factory("mystery_lib_generic", {"lib/libmystery.so": b"?", "share/m.txt": b"?"})
    with pytest.raises(SplitError, match="no package takes") as info:
        _plan(profile, directory, ("gfx120X-all",))
    assert "mystery_lib_generic" in str(info.value)


def test_clash_between_two_artifacts_of_one_family(
    profile: Profile, artifact_factory: Callable[..., Path]
) -> None:
    directory = _tree(artifact_factory)
    artifact_factory("rand_lib_gfx120X-all", {"lib/librocblas.so.5": b"other"})
    with pytest.raises(SplitError, match="same installed path") as info:
        _plan(profile, directory, ("gfx120X-all",))
    text = str(info.value)
    assert "lib/librocblas.so.5" in text
    assert "blas_lib_gfx120X-all" in text
    assert "rand_lib_gfx120X-all" in text


def test_no_clash_across_families(profile: Profile, artifact_factory: Callable[..., Path]) -> None:
    # Both families install lib/librocblas.so.5; they are different views, not a clash.
    plan = _plan(profile, _tree(artifact_factory), FAMILIES)
    assert len(plan.views) == 2


def test_ambiguous_profile_is_reported(
    profile: Profile, artifact_factory: Callable[..., Path]
) -> None:
    import dataclasses

    directory = _tree(artifact_factory)
    core = profile.package("core")
    libraries = profile.package("libraries")
    greedy_rule = dataclasses.replace(libraries.takes[0], artifacts=("*",))
    greedy = dataclasses.replace(libraries, takes=(greedy_rule,))
    changed = dataclasses.replace(
        profile, packages=tuple(greedy if p.key == "libraries" else p for p in profile.packages)
    )
    assert core in changed.packages
    with pytest.raises(SplitError, match="more than one package"):
        plan_split(changed, changed.families.resolve(["gfx120X-all"]), _read(directory))
