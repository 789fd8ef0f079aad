"""``release_preflight``: the tag exists, is on the main branch, and its commit has green CI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wheelyard import proc
from wheelyard.errors import WheelyardError
from wheelyard.release.checks import Check
from wheelyard.release.github import DEFAULT_API_URL, Fetch, urllib_fetch, workflow_runs

TagKind = Literal["annotated", "lightweight", "any"]
GitRunner = Callable[[Sequence[str]], tuple[int, str]]


@dataclass(frozen=True, kw_only=True)
class PreflightOptions:
    tag: str
    repo: str  # OWNER/NAME on GitHub
    git_dir: Path = Path()
    main_branch: str = "main"
    tag_kind: TagKind = "annotated"
    api_url: str = DEFAULT_API_URL
    workflow: str = "ci.yml"


def git_runner(repository: Path) -> GitRunner:
    """``git -C repository ARGS``: (exit code, stripped output)."""

    def run(args: Sequence[str]) -> tuple[int, str]:
        result = proc.run(["git", "-C", str(repository), *args], check=False, timeout=60)
        return result.returncode, (result.stdout or "").strip()

    return run


def _main_ref(git: GitRunner, branch: str) -> str | None:
    for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        if git(["rev-parse", "-q", "--verify", f"{ref}^{{commit}}"])[0] == 0:
            return ref
    return None


def git_checks(options: PreflightOptions, git: GitRunner) -> tuple[list[Check], str | None]:
    """The tag's checks and its commit (None when there is no such tag)."""
    subject = f"tag {options.tag}"
    ref = f"refs/tags/{options.tag}"
    code, kind = git(["cat-file", "-t", ref])
    if code != 0:
        missing = Check(
            subject=subject, name="tag-exists", ok=False, detail="no such tag; fetch tags?"
        )
        return [missing], None
    checks = [Check(subject=subject, name="tag-exists", ok=True)]
    actual = "annotated" if kind == "tag" else "lightweight"
    wanted = options.tag_kind
    checks.append(
        Check(
            subject=subject,
            name="tag-kind",
            ok=wanted in ("any", actual),
            detail=actual if wanted in ("any", actual) else f"{actual}, expected {wanted}",
        )
    )
    code, commit = git(["rev-parse", f"{ref}^{{commit}}"])
    if code != 0:
        checks.append(Check(subject=subject, name="tag-commit", ok=False, detail=commit))
        return checks, None
    main = _main_ref(git, options.main_branch)
    if main is None:
        detail = f"no branch {options.main_branch} (local or origin)"
        checks.append(Check(subject=subject, name="on-main-branch", ok=False, detail=detail))
        return checks, commit
    code, _ = git(["merge-base", "--is-ancestor", commit, main])
    detail = f"{commit[:12]} {'is' if code == 0 else 'is not'} reachable from {main}"
    checks.append(Check(subject=subject, name="on-main-branch", ok=code == 0, detail=detail))
    return checks, commit


def ci_check(options: PreflightOptions, commit: str, token: str | None, fetch: Fetch) -> Check:
    subject = f"commit {commit[:12]}"
    try:
        runs = workflow_runs(
            api_url=options.api_url,
            repo=options.repo,
            workflow=options.workflow,
            head_sha=commit,
            token=token,
            fetch=fetch,
        )
    except WheelyardError as exc:
        return Check(subject=subject, name="ci-green", ok=False, detail=exc.message)
    green = [run for run in runs if run.green]
    if green:
        return Check(subject=subject, name="ci-green", ok=True, detail=f"run {green[0].id}")
    if not runs:
        detail = f"no {options.workflow} run for this commit"
    else:
        states = sorted({run.conclusion or run.status for run in runs})
        detail = f"{len(runs)} run(s) of {options.workflow}, none successful: {', '.join(states)}"
    return Check(subject=subject, name="ci-green", ok=False, detail=detail)


def preflight(
    options: PreflightOptions,
    *,
    token: str | None,
    git: GitRunner | None = None,
    fetch: Fetch = urllib_fetch,
) -> list[Check]:
    """Every preflight check; the CI check runs only when the tag resolved to a commit."""
    checks, commit = git_checks(options, git or git_runner(options.git_dir))
    if commit is not None:
        checks.append(ci_check(options, commit, token, fetch))
    return checks
