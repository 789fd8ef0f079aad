"""The one place subprocesses are started: logs ``+ cmd`` and turns failures into errors."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from wheelyard.errors import ExternalToolError

log = logging.getLogger("wheelyard")


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; raise :class:`ExternalToolError` with its output tail if it fails."""
    argv = [str(part) for part in cmd]
    log.info("+ %s", shlex.join(argv))
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            env=None if env is None else dict(env),
            check=False,
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise ExternalToolError(argv, 127, f"{argv[0]}: not found ({exc.strerror})") from None
    except subprocess.TimeoutExpired:
        raise ExternalToolError(argv, -1, f"timed out after {timeout} s") from None
    if check and result.returncode != 0:
        raise ExternalToolError(argv, result.returncode, result.stdout or "")
    return result
