"""Progress and summaries: a bar on a terminal, plain lines in CI, tables at the end.

In GitHub Actions the summary tables are also appended to ``$GITHUB_STEP_SUMMARY`` as Markdown
and key results to ``$GITHUB_OUTPUT``.
"""

from __future__ import annotations

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


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(kw_only=True)
class Reporter:
    """Where a command's progress and summaries go; built once from the environment."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    interactive: bool = False
    step_summary: Path | None = None
    github_output: Path | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], stream: TextIO | None = None) -> Reporter:
        out = stream if stream is not None else sys.stderr
        in_ci = environ.get("CI", "").lower() in {"1", "true", "yes"}
        interactive = out.isatty() and not in_ci and environ.get("TERM") != "dumb"
        summary = environ.get("GITHUB_STEP_SUMMARY")
        output = environ.get("GITHUB_OUTPUT")
        return cls(
            stream=out,
            interactive=interactive,
            step_summary=Path(summary) if summary else None,
            github_output=Path(output) if output else None,
        )

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def progress(self, label: str, total: int) -> ProgressBar:
        return ProgressBar(self, label, total)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        console = Console(
            file=self.stream,
            force_terminal=self.interactive,
            no_color=not self.interactive,
            width=None if self.interactive else 200,
        )
        console.print(table)
        if self.step_summary is not None:
            with open(self.step_summary, "a", encoding="utf-8") as handle:
                handle.write(render_markdown_table(title, columns, rows))

    def outputs(self, values: Mapping[str, str]) -> None:
        if self.github_output is None:
            return
        with open(self.github_output, "a", encoding="utf-8") as handle:
            for key in sorted(values):
                handle.write(f"{key}={values[key]}\n")


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
