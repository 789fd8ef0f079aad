"""Every error wheelyard reports on purpose.

Each error names the file or argument at fault and says what to do about it. Only
``wheelyard.__main__`` catches :class:`WheelyardError`; it prints ``str(error)`` without a
traceback and exits with ``error.exit_code``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

_MAX_LISTED = 20


def format_list(items: Iterable[object], *, limit: int = _MAX_LISTED) -> str:
    """Render items one per line, indented, cut after ``limit`` with a count of the rest."""
    rows = [str(item) for item in items]
    shown = rows[:limit]
    text = "\n".join(f"  {row}" for row in shown)
    if len(rows) > limit:
        text += f"\n  ... and {len(rows) - limit} more"
    return text


class WheelyardError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  -> {hint}")


class UsageError(WheelyardError):
    """A command-line argument is wrong."""

    exit_code = 2

    def __init__(self, argument: str, problem: str, *, hint: str | None = None) -> None:
        self.argument = argument
        super().__init__(f"argument {argument}: {problem}", hint=hint)


class ProfileError(WheelyardError):
    """The profile directory (families.toml, packages.toml, templates) is missing or invalid."""

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(
            f"profile {path}: {problem}",
            hint=hint or "fix the profile file or pass another one with --profile DIR",
        )


class UnknownFamilyError(WheelyardError):
    """A GPU family that the profile does not define; suggests near misses."""

    exit_code = 2

    def __init__(self, family: str, valid: Iterable[str]) -> None:
        self.family = family
        names = list(valid)
        folded = [name for name in names if name.lower() == family.lower()]
        close = folded or difflib.get_close_matches(family, names, n=3, cutoff=0.7)
        if folded:
            hint = f"did you mean {folded[0]!r}? Family names are case-sensitive"
        elif close:
            hint = "did you mean " + " or ".join(repr(name) for name in close) + "?"
        else:
            hint = "run `wheelyard families` to list the families and targets of the profile"
        super().__init__(f"unknown GPU family {family!r}", hint=hint)


class ArtifactError(WheelyardError):
    """An input artifact (directory or archive) is malformed or unsafe."""

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(
            f"artifact {path}: {problem}",
            hint=hint or "rebuild or re-download this artifact, or remove it from --artifacts",
        )


class WheelError(WheelyardError):
    """A wheel could not be written: a bad entry, or a source file that vanished or changed.

    ``path`` is the file at fault: the wheel being written or the source file being read.
    """

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}", hint=hint)


class SplitError(WheelyardError):
    """Files could not be assigned to exactly one package."""

    def __init__(self, problem: str, items: Iterable[object], *, hint: str) -> None:
        listed = format_list(items)
        super().__init__(f"{problem}:\n{listed}", hint=hint)


class VersionError(WheelyardError):
    """A version string that is not valid for the release being made."""

    exit_code = 2

    def __init__(self, version: str, problem: str, *, hint: str | None = None) -> None:
        self.version = version
        super().__init__(
            f"version {version!r}: {problem}",
            hint=hint or "pass a PEP 440 version such as 7.10.0, 7.10.0rc1 or 7.10.0.dev0",
        )


class ElfError(WheelyardError):
    """An ELF file could not be read, patched, or its dependencies resolved."""

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path) if not isinstance(path, Path) else path
        super().__init__(f"ELF file {path}: {problem}", hint=hint)


class ClosureError(WheelyardError):
    """Shared libraries needed by files in the wheels are provided by no wheel."""

    def __init__(self, missing: Iterable[object]) -> None:
        super().__init__(
            "shared libraries needed but provided by no wheel of the set:\n" + format_list(missing),
            hint="add the artifact that provides them, or allow the names in the profile's "
            "[closure] allow_external list",
        )


class LibraryNameError(WheelyardError):
    """ELF files name libraries unsafely (a '/' in a NEEDED) or two files provide one name."""

    def __init__(self, problem: str, items: Iterable[object], *, hint: str) -> None:
        rows = [str(item) for item in items]
        text = f"{problem}: {rows[0]}" if len(rows) == 1 else f"{problem}:\n{format_list(rows)}"
        super().__init__(text, hint=hint)


class IndexError_(WheelyardError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """A package index could not be rendered or merged consistently."""

    def __init__(self, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"index: {problem}", hint=hint)


class UploadError(WheelyardError):
    """An upload would overwrite different bytes, leave the run prefix, or the store refused it."""

    def __init__(self, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"upload: {problem}", hint=hint)


class FetchError(WheelyardError):
    """A run's artifacts could not be listed, downloaded or verified, or a listed key is unsafe."""

    def __init__(self, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"fetch-artifacts: {problem}", hint=hint)


class ExternalToolError(WheelyardError):
    """A subprocess (patchelf, pip, uv, twine, git) failed."""

    def __init__(self, command: list[str], returncode: int, output: str = "") -> None:
        self.command = command
        self.returncode = returncode
        tail = "\n".join(output.strip().splitlines()[-15:])
        text = f"command failed with exit code {returncode}: {' '.join(command)}"
        if tail:
            text += "\n" + tail
        super().__init__(text)


class WheelTestError(WheelyardError):
    """Installing a family's wheels into a fresh environment, or ``rocm-sdk test``, failed."""

    def __init__(self, family: str, problem: str, *, hint: str | None = None) -> None:
        self.family = family
        super().__init__(f"test {family}: {problem}", hint=hint)


class DevelError(WheelyardError):
    """An entry of the devel tree cannot be archived as asked."""

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(
            f"devel entry {path}: {problem}",
            hint=hint or "fix the devel plan (entry paths, link targets, sources) and rebuild",
        )


class OutputError(WheelyardError):
    """The output directory is in use, or holds files a build must not replace."""

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(f"output {path}: {problem}", hint=hint)


class ReleaseError(WheelyardError):
    """A release step (preflight, smoke, promote, publish) cannot go on."""

    def __init__(self, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"release: {problem}", hint=hint)
