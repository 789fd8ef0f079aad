"""Package indexes: flat find-links pages, PEP 503/691 simple pages, PEP 658 metadata, merging."""

from wheelyard.index.fetch import FetchLimits, make_fetch
from wheelyard.index.merge import ExistingIndex, merge_namespaces, read_index_dir
from wheelyard.index.render import (
    JSON_CONTENT_TYPE,
    IndexFile,
    LandingInfo,
    Page,
    namespaces_from,
    plan_pages,
)
from wheelyard.index.write import IndexPlan, make_index

__all__ = [
    "JSON_CONTENT_TYPE",
    "ExistingIndex",
    "FetchLimits",
    "IndexFile",
    "IndexPlan",
    "LandingInfo",
    "Page",
    "make_fetch",
    "make_index",
    "merge_namespaces",
    "namespaces_from",
    "plan_pages",
    "read_index_dir",
]
