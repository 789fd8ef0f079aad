"""Progress and summaries: a bar on a terminal, plain lines in CI, tables at the end.

In GitHub Actions the summary tables are also appended to ``$GITHUB_STEP_SUMMARY`` as Markdown
and key results to ``$GITHUB_OUTPUT``.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters (terminal escapes, newlines) shown as ``\\xNN``."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def shorten_middle(text: str, width: int) -> str:
    """Fit ``text`` into ``width`` characters by replacing its middle with an ellipsis."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    head = (width - 1) // 2
    return text[:head] + "\u2026" + text[len(text) - (width - 1 - head) :]


def fit_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], width: int | None
) -> tuple[list[str], list[list[str]], int]:
    """Cells that fit ``width`` without wrapping (widest column shortened in the middle).

    Returns the header, the rows and the width the table needs; ``width=None`` means unbounded.
    """
    cells = [list(row) for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    overhead = 3 * len(columns) + 1
    if width is not None:
        while sum(widths) + overhead > width:
            widest = max(range(len(widths)), key=lambda i: widths[i])
            target = max(widths[widest] - (sum(widths) + overhead - width), _MIN_CELL)
            if target >= widths[widest]:
                break
            widths[widest] = target
            for row in cells:
                row[widest] = shorten_middle(row[widest], target)
    header = [shorten_middle(c, w) for c, w in zip(columns, widths, strict=True)]
    return header, cells, sum(widths) + overhead


_MIN_CELL = 12


@dataclass(kw_only=True)
class Reporter:
    """Where a command's output goes; built once from the environment.

    Results (tables, paths) go to ``out`` (stdout); progress and warnings to ``stream``
    (stderr). ``quiet`` drops progress, never results or warnings.
    """

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    interactive: bool = False
    quiet: bool = False
    width: int | None = None
    step_summary: Path | None = None
    github_output: Path | None = None

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        stream: TextIO | None = None,
        *,
        out: TextIO | None = None,
        quiet: bool = False,
    ) -> Reporter:
        err = stream if stream is not None else sys.stderr
        in_ci = environ.get("CI", "").lower() in {"1", "true", "yes"}
        interactive = err.isatty() and not in_ci and environ.get("TERM") != "dumb"
        results = out if out is not None else (stream if stream is not None else sys.stdout)
        summary = environ.get("GITHUB_STEP_SUMMARY")
        output = environ.get("GITHUB_OUTPUT")
        width = None
        if results.isatty():
            width = shutil.get_terminal_size((100, 24)).columns
        return cls(
            stream=err,
            out=results,
            interactive=interactive,
            quiet=quiet,
            width=width,
            step_summary=Path(summary) if summary else None,
            github_output=Path(output) if output else None,
        )

    def line(self, text: str) -> None:
        """A progress or status line (stderr; dropped with ``-q``)."""
        if not self.quiet:
            print(printable(text), file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {printable(text)}", file=self.stream, flush=True)

    def result(self, text: str) -> None:
        """A result (stdout), such as the path of what was written; may span lines."""
        print(printable(text, keep_newlines=True), file=self.out, flush=True)

    def progress(self, label: str, total: int) -> ProgressBar:
        return ProgressBar(self, label, total)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        texts = [[printable(str(cell)) for cell in row] for row in rows]
        header, cells, needed = fit_table(columns, texts, self.width)
        table = Table(title=title, title_justify="left")
        for column in header:
            table.add_column(column, no_wrap=True, overflow="ignore")
        for row in cells:
            table.add_row(*(Text(cell) for cell in row))  # plain text: no rich markup
        console = Console(
            file=self.out,
            force_terminal=self.interactive and self.out.isatty(),
            no_color=not self.interactive,
            width=max(needed, len(title)) if self.width is None else self.width,
            highlight=False,
        )
        with console.capture() as captured:
            console.print(table)
        # The title line is padded to the table's width: drop trailing blanks in logs.
        lines = (line.rstrip() for line in captured.get().splitlines())
        print("\n".join(lines), file=self.out, flush=True)
        self._append(self.step_summary, render_markdown_table(title, columns, rows), "summary")

    def outputs(self, values: Mapping[str, str]) -> None:
        text = "".join(f"{key}={values[key]}\n" for key in sorted(values))
        self._append(self.github_output, text, "output")

    def _append(self, path: Path | None, text: str, what: str) -> None:
        """Append to a GitHub Actions file; a failure is a warning, never a traceback."""
        if path is None:
            return
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            name = "GITHUB_STEP_SUMMARY" if what == "summary" else "GITHUB_OUTPUT"
            self.warn(f"cannot write {name} file {path}: {exc.strerror or exc}")


def render_markdown_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [f"### {title}", "", "| " + " | ".join(cell(c) for c in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines) + "\n\n"


class ProgressBar:
    """Thread-safe byte counter shown as a bar, or as a plain line every 10 % / 5 s."""

    def __init__(self, reporter: Reporter, label: str, total: int) -> None:
        self._reporter = reporter
        self._label = label
        self._total = max(total, 1)
        self._done = 0
        self._lock = threading.Lock()
        self._last_report = 0.0
        self._last_decile = -1
        self._rich: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        if self._reporter.quiet:
            return self
        if self._reporter.interactive:
            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._reporter.stream),
                transient=True,
            )
            self._rich.start()
            self._task = self._rich.add_task(self._label, total=self._total)
        else:
            self._reporter.line(f"{self._label}: {human_size(self._total)} to process")
        return self

    def advance(self, amount: int) -> None:
        with self._lock:
            self._done += amount
            done = self._done
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, completed=done)
            return
        decile = min(10, done * 10 // self._total)
        now = time.monotonic()
        if decile > self._last_decile or now - self._last_report > 5:
            with self._lock:
                if decile <= self._last_decile and now - self._last_report <= 5:
                    return
                self._last_decile = decile
                self._last_report = now
            self._reporter.line(
                f"{self._label}: {min(done * 100 // self._total, 100)}% "
                f"({human_size(done)} of {human_size(self._total)})"
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
