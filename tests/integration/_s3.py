"""Loopback S3 for the upload tests: moto's threaded server and a fault-injecting HTTP proxy.

The proxy sits between the CLI (``--endpoint-url``) and moto. It logs every request it sees
(method, path, Range header) and can, per request, answer 500 InternalError, 503
ServiceUnavailable or 503 SlowDown without forwarding, drop the connection before forwarding,
or forward and then drop the connection without relaying the reply (the request took effect
but the client never hears of it).
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import boto3
from moto.server import ThreadedMotoServer

Fault = Literal["500", "503", "slowdown", "drop", "drop-after"]
FaultPolicy = Callable[[str, str, int], Fault | None]
"""(method, path with query, how many times this request was seen before) -> fault or None."""
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAWHEELYARDCANARY1",
    "AWS_SECRET_ACCESS_KEY": "wheelyard-canary-secret-must-never-be-printed",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Please try again."),
    # A throttling reply: botocore's adaptive mode then slows its request rate for a while.
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port); yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto keeps its buckets per process, not per server: start every server empty.
        reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=30) as response:
            response.read()
        yield url
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def make_public_bucket(client: Any, bucket: str) -> None:
    """A bucket anyone may read (as TheRock's are), so pip can fetch over plain HTTP."""
    client.create_bucket(Bucket=bucket)
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def bucket_objects(client: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix`` with its bytes."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            found[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return found


@dataclass
class Proxy:
    upstream: str
    policy: FaultPolicy = lambda method, path, seen: None  # noqa: E731
    url: str = ""
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path with query, Range header) of every request received."""
    injected: list[tuple[str, str, Fault]] = field(default_factory=list)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, method: str, path: str, range_header: str | None) -> Fault | None:
        with self._lock:
            self.log.append((method, path, range_header))
            seen = self._seen.get((method, path), 0)
            self._seen[(method, path)] = seen + 1
            fault = self.policy(method, path, seen)
            if fault is not None:
                self.injected.append((method, path, fault))
            return fault

    def requests(self, method: str | None = None) -> list[str]:
        with self._lock:
            return [path for m, path, _ in self.log if method in (None, m)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply_error(self, fault: Fault) -> None:
        status, code, message = _ERRORS[fault]
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        proxy: Proxy = self.server.proxy
        host, _, port = proxy.upstream.removeprefix("http://").partition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            connection.close()

    def _handle(self) -> None:
        proxy: Proxy = self.server.proxy
        body = self._body()
        fault = proxy.decide(self.command, self.path, self.headers.get("Range"))
        if fault in ("500", "503", "slowdown"):
            self._reply_error(fault)
            return
        if fault == "drop":
            self.close_connection = True
            return
        status, headers, data = self._forward(body)
        if fault == "drop-after":
            self.close_connection = True
            return
        self.send_response(status)
        head = self.command == "HEAD"  # keeps the upstream Content-Length: the object's size
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and (head or name.lower() != "content-length"):
                self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - stdlib names

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@contextmanager
def fault_proxy(upstream: str, policy: FaultPolicy | None = None) -> Iterator[Proxy]:
    """A proxy on 127.0.0.1 in front of ``upstream``; stopped when the block ends."""
    proxy = Proxy(upstream=upstream)
    if policy is not None:
        proxy.policy = policy
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.proxy = proxy  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    proxy.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
