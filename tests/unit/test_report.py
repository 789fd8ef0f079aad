from __future__ import annotations

import io
from pathlib import Path

from wheelyard.report import Reporter, human_size, printable, render_markdown_table, shorten_middle


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ci_is_never_interactive() -> None:
    assert not Reporter.from_environment({"CI": "true"}, _Tty()).interactive
    assert not Reporter.from_environment({}, io.StringIO()).interactive
    assert Reporter.from_environment({"TERM": "xterm"}, _Tty()).interactive


def test_plain_progress_lines_every_tenth() -> None:
    stream = io.StringIO()
    reporter = Reporter.from_environment({"CI": "true"}, stream)
    with reporter.progress("writing wheels", 1000) as bar:
        for _ in range(100):
            bar.advance(10)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "writing wheels: 1000 B to process"
    assert lines[-1] == "writing wheels: 100% (1000 B of 1000 B)"
    assert 10 <= len(lines) <= 13
    assert "\x1b[" not in stream.getvalue()


def test_table_and_github_files(tmp_path: Path) -> None:
    stream = io.StringIO()
    summary = tmp_path / "summary.md"
    output = tmp_path / "output"
    reporter = Reporter.from_environment(
        {"CI": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)}, stream
    )
    reporter.table("wheels", ["wheel", "size"], [["a|b.whl", "1.0 KiB"]])
    reporter.outputs({"version": "7.10.0", "dist": "build/dist"})
    assert "a|b.whl" in stream.getvalue()
    assert summary.read_text() == (
        "### wheels\n\n| wheel | size |\n|---|---|\n| a\\|b.whl | 1.0 KiB |\n\n"
    )
    assert output.read_text() == "dist=build/dist\nversion=7.10.0\n"


def test_markdown_escapes_pipes_and_newlines() -> None:
    text = render_markdown_table("t", ["a"], [["x|y\nz"]])
    assert "| x\\|y z |" in text


def test_human_size() -> None:
    assert human_size(512) == "512 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(3 * 1024**3) == "3.0 GiB"


def test_printable_escapes_control_characters() -> None:
    assert printable("lib\x1b[2Jx.so\n") == "lib\\x1b[2Jx.so\\x0a"
    assert printable("a\nb\x07", keep_newlines=True) == "a\nb\\x07"


def test_table_never_breaks_a_file_name_on_a_narrow_terminal() -> None:
    name = "rocm_sdk_libraries_gfx120x_all-7.10.0.dev0-py3-none-manylinux_2_28_x86_64.whl"
    out = io.StringIO()
    reporter = Reporter(stream=io.StringIO(), out=out, width=60)
    reporter.table("wheels", ["wheel", "files", "size"], [[name, 9, "14.2 KiB"]])
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60
    row = next(line for line in lines if "rocm_sdk" in line)
    cell = row.split("\u2502")[1].strip()
    assert cell.startswith("rocm_sdk_lib")
    assert cell.endswith("x86_64.whl")
    assert "\u2026" in cell
    wide = io.StringIO()
    Reporter(stream=io.StringIO(), out=wide, width=None).table("w", ["wheel"], [[name]])
    assert name in wide.getvalue()  # without a terminal width nothing is shortened


def test_shorten_middle_keeps_both_ends() -> None:
    assert shorten_middle("abcdefghij", 5) == "ab\u2026ij"
    assert shorten_middle("abc", 5) == "abc"


def test_quiet_drops_progress_but_not_results_or_warnings() -> None:
    err, out = io.StringIO(), io.StringIO()
    reporter = Reporter(stream=err, out=out, quiet=True)
    reporter.line("progress")
    with reporter.progress("writing", 10) as bar:
        bar.advance(10)
    reporter.warn("careful")
    reporter.result("done")
    assert err.getvalue() == "warning: careful\n"
    assert out.getvalue() == "done\n"
