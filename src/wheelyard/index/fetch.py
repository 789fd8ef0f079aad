"""Bounded http(s) fetches for ``--merge-from``: scheme, size, deadline and redirects checked.

Only ``http`` and ``https`` are fetched, on the first request and after every redirect. Each
response must arrive whole, from connecting to its last byte, within ``FetchLimits.timeout``
seconds: a watchdog shuts the socket when the deadline passes, so a server that trickles bytes
is abandoned. Bodies are read in chunks and refused once they pass ``FetchLimits.max_bytes``.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

from wheelyard.errors import IndexError_
from wheelyard.index.confine import shown

SCHEMES = ("http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_HINT = "check the URL given to --merge-from"


@dataclass(frozen=True, kw_only=True)
class FetchLimits:
    timeout: float = 60.0
    """Seconds one response may take, from connecting to its last byte, redirects included."""
    max_bytes: int = 64 * 1024 * 1024
    """Largest body accepted for one response."""
    max_redirects: int = 5


@dataclass(frozen=True, kw_only=True)
class Response:
    url: str
    """Final URL after redirects: the base for relative links."""
    status: int
    content_type: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


Fetch = Callable[[str, str, str], Response]
"""(method, url, accept) -> response; a 404 is a response, other failures raise IndexError_."""


def url_scheme(text: str) -> str | None:
    """The scheme ``text`` starts with (lowercase), or ``None`` when it has none."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def check_scheme(url: str, where: str) -> None:
    """Refuse a URL that is not http(s); ``where`` names the URL, link or argument at fault."""
    scheme = url_scheme(url)
    if scheme not in SCHEMES:
        what = f"the scheme {scheme}:" if scheme else "a URL without a scheme"
        raise IndexError_(
            f"{where}: only http:// and https:// URLs are fetched, not {shown(what)}",
            hint=_HINT + " (file:, ftp:, data: and other schemes are never read)",
        )


class _Watchdog:
    """Shuts a connection's socket when the deadline passes, ending any blocked read.

    The socket is taken right after connecting: ``http.client`` hands it to the response (and
    forgets it) when the server says ``Connection: close``.
    """

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.fired = False
        self._connection = connection
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def connect(self) -> None:
        self._connection.connect()
        with self._lock:
            self._sock = self._connection.sock
            if self.fired:
                self._shutdown()

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._connection.close()
        if self._sock is not None:
            self._sock.close()


def _read_body(reply: http.client.HTTPResponse, url: str, limits: FetchLimits) -> bytes:
    declared = reply.getheader("content-length") or ""
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise IndexError_(
            f"{shown(url)}: the response is {declared} bytes, over the {limits.max_bytes} "
            "byte limit",
            hint="raise --fetch-max-bytes if this page is genuine",
        )
    chunks: list[bytes] = []
    total = 0
    while chunk := reply.read(_CHUNK):
        total += len(chunk)
        if total > limits.max_bytes:
            raise IndexError_(
                f"{shown(url)}: the response is over the {limits.max_bytes} byte limit",
                hint="raise --fetch-max-bytes if this page is genuine",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _request_target(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ValueError("no host")
    port = parts.port
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    cls = (
        http.client.HTTPSConnection
        if parts.scheme.lower() == "https"
        else http.client.HTTPConnection
    )
    return cls(host, port), target


def _one_request(
    method: str, url: str, accept: str, deadline: float, limits: FetchLimits
) -> tuple[int, str, dict[str, str], bytes]:
    """(status, reason, headers, body) of one request, within the deadline."""
    remaining = deadline - time.monotonic()
    connection, target = _request_target(url)
    connection.timeout = max(remaining, 0.001)
    with _Watchdog(connection, remaining) as watchdog:
        try:
            watchdog.connect()
            connection.request(
                method,
                target,
                headers={
                    "Accept": accept,
                    "Accept-Encoding": "identity",
                    "User-Agent": "wheelyard",
                },
            )
            reply = connection.getresponse()
            headers = {key.lower(): value for key, value in reply.getheaders()}
            body = (
                b"" if method == "HEAD" or reply.status != 200 else _read_body(reply, url, limits)
            )
        except (OSError, http.client.HTTPException, ValueError):
            if watchdog.fired or time.monotonic() >= deadline:
                raise TimeoutError from None
            raise
        if watchdog.fired:
            raise TimeoutError
    return reply.status, reply.reason, headers, body


def _follow(method: str, url: str, accept: str, limits: FetchLimits) -> Response:
    deadline = time.monotonic() + limits.timeout
    current = url
    for _hop in range(limits.max_redirects + 1):
        if current != url:
            check_scheme(current, f"{shown(url)}: redirected to {shown(current, limit=200)}")
        else:
            check_scheme(current, shown(url, limit=200))
        status, reason, headers, body = _one_request(method, current, accept, deadline, limits)
        if status in _REDIRECTS and "location" in headers:
            current = urljoin(current, headers["location"])
            method = "GET" if status == 303 else method
            continue
        if status == 404:
            return Response(url=current, status=404, content_type="", headers={}, body=b"")
        if status != 200:
            raise IndexError_(f"{shown(current)}: HTTP {status} {shown(reason)}", hint=_HINT)
        content_type = headers.get("content-type", "")
        return Response(
            url=current, status=status, content_type=content_type, headers=headers, body=body
        )
    raise IndexError_(f"{shown(url)}: more than {limits.max_redirects} redirects", hint=_HINT)


def http_fetch(
    method: str, url: str, accept: str, *, limits: FetchLimits | None = None
) -> Response:
    """One bounded GET or HEAD; a 404 is returned, every other failure is an IndexError_."""
    limits = limits or FetchLimits()
    try:
        return _follow(method, url, accept, limits)
    except TimeoutError:
        raise IndexError_(
            f"{shown(url)}: no complete response within {limits.timeout:g} s",
            hint="the server is too slow or stalled; retry, or raise --fetch-timeout",
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise IndexError_(
            f"{shown(url)}: cannot fetch ({shown(str(error) or type(error).__name__)})", hint=_HINT
        ) from None


def make_fetch(limits: FetchLimits) -> Fetch:
    """A :data:`Fetch` bound to ``limits``."""

    def fetch(method: str, url: str, accept: str) -> Response:
        return http_fetch(method, url, accept, limits=limits)

    return fetch
