"""Uploads: the per-run S3 layout, S3 and local-directory backends, and fetching a run's artifacts.

boto3 is imported only when an S3 client is made (``open_backend`` for S3, ``make_client``).
"""

from wheelyard.upload.apply import ObjectResult, UploadResult, apply_upload
from wheelyard.upload.backend import (
    BACKENDS,
    Backend,
    BackendKind,
    Destination,
    StoredObject,
    open_backend,
)
from wheelyard.upload.client import describe_error, make_client
from wheelyard.upload.fetch import (
    FetchPlan,
    ListedObject,
    RemoteArchive,
    fetch_archives,
    list_run,
    plan_fetch,
)
from wheelyard.upload.github import GitHubRun
from wheelyard.upload.layout import (
    PLATFORMS,
    RELEASE_TYPES,
    BucketRules,
    Platform,
    ReleaseType,
    RunLocation,
    check_relative_key,
    install_commands,
    load_bucket_rules,
    parse_bucket_rules,
    select_location,
)
from wheelyard.upload.plan import PlannedObject, UploadPlan, plan_upload
from wheelyard.upload.summary import FIND_LINKS_OUTPUT, report_plan, report_upload

__all__ = [
    "BACKENDS",
    "FIND_LINKS_OUTPUT",
    "PLATFORMS",
    "RELEASE_TYPES",
    "Backend",
    "BackendKind",
    "BucketRules",
    "Destination",
    "FetchPlan",
    "GitHubRun",
    "ListedObject",
    "ObjectResult",
    "Platform",
    "PlannedObject",
    "ReleaseType",
    "RemoteArchive",
    "RunLocation",
    "StoredObject",
    "UploadPlan",
    "UploadResult",
    "apply_upload",
    "check_relative_key",
    "describe_error",
    "fetch_archives",
    "install_commands",
    "list_run",
    "load_bucket_rules",
    "make_client",
    "open_backend",
    "parse_bucket_rules",
    "plan_fetch",
    "plan_upload",
    "report_plan",
    "report_upload",
    "select_location",
]
