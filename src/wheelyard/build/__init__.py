"""The build: split artifacts into packages, assemble payloads, and write the wheel set."""

from wheelyard.build.run import (
    DEFAULT_SOURCE_DATE_EPOCH,
    BuildOptions,
    BuildResult,
    build,
    summarize,
)

__all__ = ["DEFAULT_SOURCE_DATE_EPOCH", "BuildOptions", "BuildResult", "build", "summarize"]
