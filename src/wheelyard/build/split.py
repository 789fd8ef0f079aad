"""Plan which package owns every installed file of the selected artifacts.

Each file is excluded by a named rule, owned by exactly one runtime package, or taken as
devel-only content; anything else is an error listing the files. Ownership is tracked per
package instance (:mod:`wheelyard.dedup`), and every family is planned from the generic
artifacts plus its own only, so a multi-family build gives each family exactly what a
single-family build would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from wheelyard.artifacts import Artifact, StagedFile
from wheelyard.build.ownership import Ownership, PackageInstance
from wheelyard.errors import SplitError
from wheelyard.profile import GENERIC, Family, PackageDef, Profile


@dataclass(frozen=True, kw_only=True)
class FamilyView:
    """Everything a family ships: the merged installed tree of generic + family artifacts."""

    family: Family
    tree: dict[str, StagedFile]  # installed path -> file, excluded files left out
    devel_only: tuple[StagedFile, ...]


@dataclass(frozen=True, kw_only=True)
class SplitPlan:
    families: tuple[Family, ...]
    ownership: Ownership
    views: tuple[FamilyView, ...]
    excluded: tuple[tuple[StagedFile, str], ...]  # (file, rule name)

    def view(self, family: Family) -> FamilyView:
        return next(view for view in self.views if view.family == family)


def _runtime_candidates(profile: Profile, staged: StagedFile, *, family: str) -> list[PackageDef]:
    name = staged.artifact
    return [
        package
        for package in profile.runtime_packages()
        if (package.scope == "family" or family == GENERIC)
        and any(
            rule.matches(name=name.name, component=name.component, family=family, path=staged.path)
            for rule in package.takes
        )
    ]


def _devel_takes(profile: Profile, staged: StagedFile, *, family: str) -> bool:
    devel = profile.devel_package()
    name = staged.artifact
    return devel is not None and any(
        rule.matches(name=name.name, component=name.component, family=family, path=staged.path)
        for rule in devel.takes
    )


def _exclusion(profile: Profile, staged: StagedFile) -> str | None:
    name = staged.artifact
    for rule in profile.excludes:
        if rule.matches(name=name.name, component=name.component, path=staged.path):
            return rule.name
    return None


@dataclass(kw_only=True)
class _Assignment:
    """What the split found so far; :meth:`check` turns the problems into one error each."""

    profile: Profile
    families: Sequence[Family]
    ownership: Ownership = field(default_factory=Ownership)
    excluded: list[tuple[StagedFile, str]] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    unowned: list[str] = field(default_factory=list)
    untaken: set[str] = field(default_factory=set)
    devel_only: dict[str, list[StagedFile]] = field(default_factory=lambda: defaultdict(list))
    trees: dict[str, dict[str, list[StagedFile]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.trees = {f.name: defaultdict(list) for f in self.families}

    def add_artifact(self, artifact: Artifact) -> None:
        family = artifact.name.family
        if family != GENERIC and family not in self.trees:
            return
        targets = [f for f in self.families if family in (GENERIC, f.name)]
        shipped = sum(self._add_file(artifact, staged, targets) for staged in artifact.files)
        if (
            artifact.files
            and not shipped
            and not all(_exclusion(self.profile, s) for s in artifact.files)
        ):
            self.untaken.add(str(artifact.name))

    def _add_file(self, artifact: Artifact, staged: StagedFile, targets: list[Family]) -> bool:
        """File ``staged`` under its package; return whether something ships it."""
        family = artifact.name.family
        rule = _exclusion(self.profile, staged)
        if rule is not None:
            self.excluded.append((staged, rule))
            return False
        candidates = _runtime_candidates(self.profile, staged, family=family)
        if len(candidates) > 1:
            keys = ", ".join(p.key for p in candidates)
            self.ambiguous.append(f"{artifact.name}/{staged.path} (packages {keys})")
            return False
        for target in targets:
            self.trees[target.name][staged.path].append(staged)
        if candidates:
            package = candidates[0]
            instances = (
                [PackageInstance(definition=package, family=None)]
                if package.scope == "generic"
                else [PackageInstance(definition=package, family=f) for f in targets]
            )
            for instance in instances:
                self.ownership.add(instance, staged)
            return True
        if _devel_takes(self.profile, staged, family=family):
            for target in targets:
                self.devel_only[target.name].append(staged)
            return True
        self.unowned.append(f"{artifact.name}/{staged.path}")
        return False

    def check(self) -> None:
        if self.ambiguous:
            raise SplitError(
                "files taken by more than one package",
                self.ambiguous,
                hint="narrow the [[package.take]] rules in packages.toml so one package takes each",
            )
        if self.untaken:
            raise SplitError(
                "artifacts that no package takes and no rule excludes",
                sorted(self.untaken),
                hint="add the artifact name to a package's take rules or an [[exclude]] rule",
            )
        if self.unowned:
            raise SplitError(
                "files that no package owns and no rule excludes",
                self.unowned,
                hint="extend a package's take rules (artifacts, components, paths) or add an "
                "[[exclude]] rule with a reason",
            )
        clashes = [
            f"{family}: {path} from " + " and ".join(sorted(str(s.artifact) for s in sources))
            for family, tree in sorted(self.trees.items())
            for path, sources in sorted(tree.items())
            if len(sources) > 1
        ]
        if clashes:
            raise SplitError(
                "the same installed path comes from two artifacts of one family",
                clashes,
                hint="remove the file from one of the artifacts; wheelyard never lets one "
                "silently overwrite the other",
            )

    def plan(self) -> SplitPlan:
        views = tuple(
            FamilyView(
                family=family,
                tree={path: srcs[0] for path, srcs in sorted(self.trees[family.name].items())},
                devel_only=tuple(sorted(self.devel_only[family.name], key=lambda s: s.path)),
            )
            for family in self.families
        )
        return SplitPlan(
            families=tuple(self.families),
            ownership=self.ownership,
            views=views,
            excluded=tuple(
                sorted(self.excluded, key=lambda item: (str(item[0].artifact), item[0].path))
            ),
        )


def plan_split(
    profile: Profile, families: Sequence[Family], artifacts: Sequence[Artifact]
) -> SplitPlan:
    """Assign every file of ``artifacts`` (generic + the families') to its package."""
    assignment = _Assignment(profile=profile, families=families)
    for artifact in sorted(artifacts, key=lambda a: a.name):
        assignment.add_artifact(artifact)
    assignment.check()
    return assignment.plan()
