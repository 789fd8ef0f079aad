"""Input artifacts: names, manifests, the installed tree, and safe archive extraction."""

from wheelyard.artifacts.catalog import (
    Artifact,
    ArtifactName,
    ArtifactSource,
    StagedFile,
    find_artifacts,
    read_artifact,
    select,
)

__all__ = [
    "Artifact",
    "ArtifactName",
    "ArtifactSource",
    "StagedFile",
    "find_artifacts",
    "read_artifact",
    "select",
]
