"""One HTTP attempt at a file, bounded in time, and the one rule for what is worth retrying.

``fetch_once`` makes a single request that appends to a ``.part`` file (resuming with
``Range`` when a prefix is there) under a watchdog that shuts the socket when time is up; it
raises ``AttemptFailed`` whose ``retry`` follows ``is_transient_status`` (no HTTP answer, 5xx,
408, 429, a stall). ``pix2pix.prepare.download.download_file`` owns the retry loop, the cache
and the file contract; nothing else retries downloads.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK_BYTES = 1 << 16
MAX_BACKOFF_SECONDS = 60.0
USER_AGENT = "pix2pix-pipeline (+urllib)"
# A server slower than this over `timeout` seconds is treated like a stalled one.
DEFAULT_MIN_RATE = 1024
# 408/429 are client-side codes but mean "try again later", not "your request is wrong".
_TRANSIENT_4XX = frozenset({408, 429})
def is_transient_status(status: int | None) -> bool:
    """The one rule for "may work later": no HTTP answer at all (None), a 5xx, 408 or 429."""
    return status is None or status >= 500 or status in _TRANSIENT_4XX



class AttemptFailed(Exception):
    """One attempt failed; `retry` says whether another attempt may help, `status` if HTTP."""

    def __init__(self, reason: str, status: int | None = None, *, retry: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry = retry


class _Watchdog:
    """Shuts the connection down when time is up, so no read (of a trickled header, say) can
    block past a deadline: socket timeouts only bound the silence between two bytes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self.fired: AttemptFailed | None = None

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired is not None:
                self._shutdown()

    def arm(self, seconds: float | None, failure: AttemptFailed) -> None:
        self.disarm()
        if seconds is not None:
            self._timer = threading.Timer(max(seconds, 0.0), self._fire, [failure])
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, failure: AttemptFailed) -> None:
        with self._lock:
            self.fired = failure
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


def _opener(watch: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's usual opener, with connections that register their socket with `watch`."""

    def watched(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Connection(base):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                watch.attach(self.sock)

        return Connection

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(watched(http.client.HTTPConnection), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context)

    return urllib.request.build_opener(Http(), Https())


def check_http_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")


def _content_range_start(header: str | None) -> int | None:
    """Start offset of a `Content-Range: bytes a-b/total` header, None if absent/unparseable."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header or "")
    return int(m.group(1)) if m else None


@dataclass
class Transfer:
    """State of one file across attempts: `hasher` covers exactly the bytes in `part`."""

    url: str
    part: Path
    hasher: Any
    timeout: float
    min_rate: float
    ends_at: float | None  # time.monotonic() of the deadline
    deadline: float | None
    content_type: str | None = None

    def restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()

    def left(self) -> float | None:
        return None if self.ends_at is None else self.ends_at - time.monotonic()

    def out_of_time(self) -> AttemptFailed:
        return AttemptFailed(f"no complete file within the {self.deadline:g} s deadline", retry=False)


def fetch_once(t: Transfer, *, progress: bool, desc: str) -> bool:
    """One HTTP request that appends to `t.part`. Returns True if it resumed from a prefix.

    Raises `AttemptFailed`.
    """
    offset = t.part.stat().st_size if t.part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    watch = _Watchdog()
    left = t.left()
    if left is not None and left < t.timeout:
        watch.arm(left, t.out_of_time())
    else:
        watch.arm(t.timeout, AttemptFailed(f"timed out (no complete response headers within {t.timeout:g} s)"))
    try:
        try:
            response = _opener(watch).open(urllib.request.Request(url=t.url, headers=headers), timeout=t.timeout)
        except urllib.error.HTTPError as e:
            e.close()
            reason = f"HTTP {e.code} {e.reason}"
            if e.code == 416 and offset:
                # Our prefix is at or past the end of the remote file (e.g. it changed): start over.
                t.restart()
                raise AttemptFailed(f"{reason} for a resume at byte {offset}", e.code) from e
            raise AttemptFailed(reason, e.code, retry=is_transient_status(e.code)) from e
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise watch.fired or AttemptFailed(_describe(e, t.timeout)) from e
        watch.disarm()
        if t.ends_at is not None:
            watch.arm(t.left(), t.out_of_time())
        with response:
            return _read_body(t, response, offset, watch, progress=progress, desc=desc)
    finally:
        watch.disarm()


def _read_body(
    t: Transfer, response: Any, offset: int, watch: _Watchdog, *, progress: bool, desc: str
) -> bool:
    from tqdm import tqdm  # imported lazily: only downloads need it

    t.content_type = response.headers.get_content_type() if response.headers.get("Content-Type") else None
    resumed = False
    if offset and response.status == 206:
        if _content_range_start(response.headers.get("Content-Range")) == offset:
            resumed = True
        else:
            # Not the range we asked for: appending would corrupt the file, so start over.
            t.restart()
            raise AttemptFailed(
                f"server answered Range bytes={offset}- with Content-Range "
                f"{response.headers.get('Content-Range')!r}"
            )
    if offset and not resumed:
        # A 200 to a Range request is the whole file: drop our prefix and take it.
        offset = 0
        t.hasher = hashlib.sha256()
    length = response.headers.get("Content-Length")
    expected_total = offset + int(length) if length and length.isdigit() else None
    received = offset
    window_start, window_bytes = time.monotonic(), received
    with t.part.open("ab" if resumed else "wb") as out, tqdm(
        total=expected_total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=desc, file=sys.stderr, disable=not progress, leave=False,
    ) as bar:
        try:
            # read1 returns what has arrived instead of blocking for a full chunk, so bytes
            # received before a reset are kept for the next resume.
            while chunk := response.read1(CHUNK_BYTES):
                out.write(chunk)
                t.hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
                now = time.monotonic()
                if now - window_start >= t.timeout:
                    got = received - window_bytes
                    if got < t.min_rate * (now - window_start):
                        raise AttemptFailed(
                            f"too slow: {got} bytes in {now - window_start:.1f} s (less than "
                            f"{t.min_rate:g} bytes/s)"
                        )
                    window_start, window_bytes = now, received
        except (OSError, http.client.HTTPException) as e:
            raise watch.fired or AttemptFailed(_describe(e, t.timeout)) from e
    if watch.fired is not None:
        raise watch.fired
    if expected_total is not None and received < expected_total:
        raise AttemptFailed(f"truncated body: got {received} of {expected_total} bytes")
    return resumed


def _describe(e: BaseException, timeout: float) -> str:
    """Short, stable description of a network exception for messages and records."""
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        inner = e.reason
        if isinstance(inner, BaseException):
            return _describe(inner, timeout)
        return f"connection failed: {inner}"
    if isinstance(e, TimeoutError):
        return f"timed out (no data for {timeout:g} s)"
    if isinstance(e, http.client.RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, http.client.IncompleteRead):
        return f"truncated body ({len(e.partial)} bytes in the last read)"
    return f"{type(e).__name__}: {e}"


def backoff_delay(attempt: int, backoff: float) -> float:
    # Exponential with up to +50% jitter so many clients retrying together do not stampede.
    return min(MAX_BACKOFF_SECONDS, backoff * 2 ** (attempt - 1)) * (1 + random.random() / 2)
