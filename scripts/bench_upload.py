#!/usr/bin/env python3
"""Benchmark ``wheelyard upload`` against a sequential boto3 ``upload_file`` loop, on loopback.

A moto S3 server runs in its own process on 127.0.0.1; a dist tree of files of mixed sizes
(2 GiB by default: a few large wheels, some medium, many small, as a multi-family run has) is
uploaded once by wheelyard's S3 backend (plan, HEAD check, concurrent conditional puts with
multipart, HEAD verify, pages last) and once by a plain loop calling ``upload_file`` per file,
each into its own bucket. The directory backend (``--output-dir``) is timed too, for scale.

    python scripts/bench_upload.py [--mib 2048] [--jobs 8]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from wheelyard.report import Reporter
from wheelyard.upload import (
    Destination,
    apply_upload,
    open_backend,
    plan_upload,
    select_location,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FAMILY = "gfx94X-dcgpu"
# (count, MiB) per size class; scaled so the total is --mib.
MIX = ((2, 320), (8, 96), (32, 16), (128, 1))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_process() -> Iterator[str]:
    """``moto_server`` in a child process (its own interpreter, so no shared GIL)."""
    port = _free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("moto server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def make_dist(root: Path, total_mib: int) -> Path:
    """Files of the mix under ``root/dist`` (half generic, half in one family) and a manifest."""
    scale = total_mib / sum(count * mib for count, mib in MIX)
    dist = root / "dist"
    (dist / FAMILY).mkdir(parents=True)
    block = os.urandom(1 << 20)
    entries = []
    number = 0
    for count, mib in MIX:
        for _ in range(count):
            number += 1
            size = max(int(mib * scale * (1 << 20)), 1)
            relative = f"{FAMILY}/f{number:04d}.whl" if number % 2 else f"f{number:04d}.whl"
            digest = hashlib.sha256()
            with open(dist / relative, "wb") as handle:
                written = 0
                while written < size:
                    # A counter makes every MiB differ, so no layer can deduplicate.
                    chunk = (number.to_bytes(4, "big") + written.to_bytes(8, "big") + block)[
                        : min(1 << 20, size - written)
                    ]
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
            entries.append({"path": f"dist/{relative}", "sha256": digest.hexdigest(), "size": size})
    (dist / FAMILY / "index.html").write_text("<!DOCTYPE html><html><body></body></html>\n")
    (root / "build-manifest.json").write_text(json.dumps({"families": [FAMILY], "files": entries}))
    return dist


def _client(endpoint: str) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def wheelyard_upload(dist: Path, destination: Destination) -> None:
    location = select_location(
        rules=None,
        run_id="1",
        platform="linux",
        fork=None,
        bucket=destination.bucket,
        endpoint_url=destination.endpoint_url,
    )
    plan = plan_upload(dist=dist, location=location)
    backend = open_backend(destination)
    try:
        apply_upload(plan, backend, reporter=Reporter(stream=io.StringIO()))
    finally:
        backend.close()


def boto3_loop(dist: Path, client: S3Client, bucket: str) -> None:
    for path in sorted(p for p in dist.rglob("*") if p.is_file()):
        key = f"1-linux/python/{path.relative_to(dist).as_posix()}"
        client.upload_file(str(path), bucket, key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=2048, help="total size (default: 2048)")
    parser.add_argument("--jobs", type=int, default=8, help="wheelyard --jobs (default: 8)")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as temporary, moto_process() as url:
        root = Path(temporary)
        dist = make_dist(root, args.mib)
        files = [p for p in dist.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        client = _client(url)
        for bucket in ("bench-wheelyard", "bench-loop"):
            client.create_bucket(Bucket=bucket)
        s3 = Destination(kind="s3", bucket="bench-wheelyard", endpoint_url=url, jobs=args.jobs)
        local = Destination(
            kind="directory", bucket="bench-local", output_dir=root / "out", jobs=args.jobs
        )
        rows = [
            (
                "boto3 upload_file loop (sequential)",
                timed(lambda: boto3_loop(dist, client, "bench-loop")),
            ),
            (
                f"wheelyard upload, S3 (--jobs {args.jobs})",
                timed(lambda: wheelyard_upload(dist, s3)),
            ),
            ("wheelyard upload, again (all skipped)", timed(lambda: wheelyard_upload(dist, s3))),
            ("wheelyard upload --output-dir", timed(lambda: wheelyard_upload(dist, local))),
        ]
    print(f"{len(files)} files, {size / (1 << 20):.0f} MiB, moto server on 127.0.0.1")
    print(f"| {'method':<42} | {'seconds':>7} | {'MiB/s':>6} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 8}|")
    for name, seconds in rows:
        print(f"| {name:<42} | {seconds:7.1f} | {size / (1 << 20) / seconds:6.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
