"""Release-only steps: preflight, per-wheel verification and smoke, promotion, publishing."""

from wheelyard.release.checks import Check, failures, report_checks
from wheelyard.release.github import DEFAULT_API_URL, WorkflowRun, urllib_fetch, workflow_runs
from wheelyard.release.preflight import PreflightOptions, git_runner, preflight
from wheelyard.release.promote import Promotion, promote
from wheelyard.release.publish import PlannedFile, publish
from wheelyard.release.smoke import SmokeOptions, find_wheels, smoke
from wheelyard.release.to_bucket import (
    BucketPlan,
    BucketPromotion,
    promote_to_bucket,
    release_prefix,
)
from wheelyard.release.verify import WheelFacts, verify_wheel

__all__ = [
    "BucketPlan",
    "BucketPromotion",
    "DEFAULT_API_URL",
    "Check",
    "PlannedFile",
    "PreflightOptions",
    "Promotion",
    "SmokeOptions",
    "WheelFacts",
    "WorkflowRun",
    "failures",
    "find_wheels",
    "git_runner",
    "preflight",
    "promote",
    "promote_to_bucket",
    "publish",
    "release_prefix",
    "report_checks",
    "smoke",
    "urllib_fetch",
    "verify_wheel",
    "workflow_runs",
]
