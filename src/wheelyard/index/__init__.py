"""Package indexes: flat find-links pages, PEP 503/691 simple pages, PEP 658 metadata, merging."""

from wheelyard.index.write import IndexPlan, make_index

__all__ = ["IndexPlan", "make_index"]
