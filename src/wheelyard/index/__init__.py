"""Package indexes: flat find-links pages, PEP 503/691 simple pages, PEP 658 metadata, merging."""

from wheelyard.index.fetch import FetchLimits, make_fetch
from wheelyard.index.write import IndexPlan, make_index

__all__ = ["FetchLimits", "IndexPlan", "make_fetch", "make_index"]
