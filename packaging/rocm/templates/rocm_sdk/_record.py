"""List files a package creates after installation in its distribution's RECORD.

``pip uninstall`` (and uv) remove exactly what RECORD lists, so the files ``rocm-sdk init``
expands are added to the devel distribution's RECORD, with empty hash and size as the
installed-packages specification allows for files created after installation.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from pathlib import Path
from typing import List, Optional


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_record(site: Path, dist: str, version: str) -> Optional[Path]:
    """The RECORD of distribution ``dist`` installed in ``site``, or None."""
    wanted = _normalize(dist)
    found = []
    try:
        children = sorted(os.listdir(site))
    except OSError:
        return None
    for child in children:
        if not child.endswith(".dist-info"):
            continue
        name, _, child_version = child[: -len(".dist-info")].partition("-")
        record = site / child / "RECORD"
        if _normalize(name) == wanted and record.is_file():
            found.append((child_version != version, record))
    return min(found)[1] if found else None


def add_rows(site: Path, dist: str, version: str, names: List[str]) -> str:
    """Add ``names`` (paths relative to ``site``, ``/``-separated) to the RECORD of ``dist``.

    Rows already present are not repeated. Returns "" when done, else what went wrong.
    """
    record = find_record(site, dist, version)
    if record is None:
        return f"{dist} has no RECORD in {site} (not installed by pip or uv?)"
    try:
        with open(record, encoding="utf-8", newline="") as handle:
            text = handle.read()
        present = {row[0] for row in csv.reader(io.StringIO(text)) if row}
        added = [name for name in names if name not in present]
        if not added:
            return ""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for name in added:
            writer.writerow([name, "", ""])
        if text and not text.endswith("\n"):
            text += "\n"
        _replace(record, text + out.getvalue())
    except OSError as exc:
        return f"cannot update {record} ({exc.strerror or exc})"
    return ""


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, keeping its permissions."""
    mode = os.stat(path).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=".RECORD.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
