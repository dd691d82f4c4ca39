"""Robust HTTP downloads: resumable, retried, bounded in time, type-checked, verified, cached.

    >>> from pathlib import Path
    >>> from pix2pix.prepare.download import download_named_dataset, download_file
    >>> res = download_named_dataset("facades", Path("data/raw"))        # doctest: +SKIP
    >>> res.path, res.sha256, res.cached                                   # doctest: +SKIP
    (PosixPath('data/raw/facades.tar.gz'), '…', False)

Contract of every download into `dest_dir/<name>`:
- bytes stream into `<name>.part`; only a complete (Content-Length reached), verified file of
  the expected type is renamed to `<name>`, so a file under the final name is never partial;
- an existing `<name>.part` is resumed with `Range: bytes=N-`; a server that answers 200 instead
  of 206 (or a different range) makes us start again from zero;
- failures worth retrying (`is_transient_status`: no HTTP answer, 5xx, 408, 429; and a server
  too slow) are retried with exponential backoff and jitter, keeping what arrived; other 4xx,
  a wrong type and a passed deadline fail at once. This is the only retry loop: callers (the
  Prefect flow) do not retry downloads again;
- nothing hangs: `timeout` bounds the connect, the response headers as a whole and any silence;
  at least `min_rate` bytes/s must arrive over every `timeout` seconds; `deadline` bounds the
  whole file, retries included;
- with `expect="image"` or `"archive"` the bytes must be one (magic numbers, not the name or
  Content-Type): an HTML error page served with 200 is an error that says what came, and is
  never cached; an image whose name has no image suffix gets one from its bytes;
- a wrong sha256 moves the file to `<name>.bad-sha256` and raises `ChecksumError`;
- a sidecar `<name>.sha256` (`sha256sum` format) is written on success; a final file that matches
  the given sha256, or its sidecar, (and the expected type) is returned without any request
  (`cached=True`). `cache_name(url)` keys a cache file on the whole URL.

One process per destination file: two processes resuming the same `.part` would interleave.
Lists of image URLs: `pix2pix.prepare.urllist`. Nothing here imports Prefect or DVC; flows wrap these
functions.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix.errors import Pix2PixError
from pix2pix.prepare.archive import ARCHIVE_SUFFIXES
from pix2pix.prepare.catalog import get_dataset

CHUNK_BYTES = 1 << 16
MAX_BACKOFF_SECONDS = 60.0
USER_AGENT = "pix2pix-pipeline (+urllib)"
# A server slower than this over `timeout` seconds is treated like a stalled one.
DEFAULT_MIN_RATE = 1024
# 408/429 are client-side codes but mean "try again later", not "your request is wrong".
_TRANSIENT_4XX = frozenset({408, 429})
# First bytes of the image formats the builder reads (pix2pix.prepare.scan.IMAGE_SUFFIXES).
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"),
    (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"P6", ".ppm"), (b"P3", ".ppm"), (b"P5", ".pgm"), (b"P2", ".pgm"),
)
_SNIFFED_EXTENSIONS = (".jpg", ".png", ".gif", ".tif", ".ppm", ".pgm", ".webp", ".bmp")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".gif", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def is_transient_status(status: int | None) -> bool:
    """The one rule for "may work later": no HTTP answer at all (None), a 5xx, 408 or 429."""
    return status is None or status >= 500 or status in _TRANSIENT_4XX


class DownloadError(Pix2PixError):
    """A download failed for good. `reason` is short enough for a `rejected.jsonl` record.

    Attributes: `url`, `attempts` (HTTP requests made), `status` (last HTTP status or None when
    the failure was not an HTTP answer), `reason` (e.g. "HTTP 404 Not Found",
    "connection reset after 5 tries").
    """

    def __init__(
        self, message: str, *, url: str, attempts: int, reason: str, status: int | None = None
    ):
        super().__init__(message)
        self.url = url
        self.attempts = attempts
        self.reason = reason
        self.status = status


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected sha256; the file was moved to `bad_path`."""

    def __init__(
        self, message: str, *, url: str, attempts: int, expected: str, got: str, bad_path: Path
    ):
        super().__init__(
            message, url=url, attempts=attempts, reason=f"sha256 mismatch (got {got})"
        )
        self.expected = expected
        self.got = got
        self.bad_path = bad_path


class LicenceNotAcceptedError(DownloadError):
    """A named dataset has its own licence and `accept_licence=True` was not given."""


@dataclass(frozen=True)
class DownloadResult:
    """A complete, verified file. `bytes` is its size; `attempts` counts HTTP requests (0 when
    `cached`); `resumed` is True when some bytes came from an earlier, interrupted transfer."""

    path: Path
    sha256: str
    bytes: int
    url: str
    resumed: bool = False
    cached: bool = False
    attempts: int = 0


# --------------------------------------------------------------------------------------------
# What the bytes are
# --------------------------------------------------------------------------------------------


def image_extension(head: bytes) -> str | None:
    """The extension of the image format `head` (the first bytes of a file) starts, or None."""
    for magic, ext in _IMAGE_MAGIC:
        if head.startswith(magic) and (ext not in (".ppm", ".pgm") or head[2:3].isspace()):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    # "BM" alone is too weak (text can start so); the DIB header size must be a known one.
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return ".bmp"
    return None


def _is_archive_head(head: bytes) -> bool:
    return head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def _head(path: Path, n: int = 512) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


def _type_problem(head: bytes, expect: str | None, size: int, content_type: str | None) -> str | None:
    """None when `head` is what `expect` asks for, else a short description of what came."""
    if expect is None or (image_extension(head) if expect == "image" else _is_archive_head(head)):
        return None
    text = re.sub(rb"\s+", b" ", head[:48]).decode("utf-8", "replace")
    start = repr(text) if text.isprintable() else head[:16].hex(" ")
    what = f"{content_type}, " if content_type else ""
    return f"not an {expect}: received {what}{size} bytes starting {start}"


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


class _Failed(Exception):
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
        self.fired: _Failed | None = None

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired is not None:
                self._shutdown()

    def arm(self, seconds: float | None, failure: _Failed) -> None:
        self.disarm()
        if seconds is not None:
            self._timer = threading.Timer(max(seconds, 0.0), self._fire, [failure])
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, failure: _Failed) -> None:
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


def _sha256_file(path: Path, hasher: Any | None = None) -> Any:
    h = hasher if hasher is not None else hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def sidecar_path(path: Path) -> Path:
    """Where the `sha256sum`-format checksum of a downloaded `path` is kept."""
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    """The hex digest recorded in `<name>.sha256`, or None if missing/unreadable."""
    try:
        text = sidecar_path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    digest = text.split()[0].lower() if text else ""
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _write_sidecar(path: Path, digest: str) -> None:
    # `sha256sum -c` format, written via a temp file so a crash never leaves half a digest.
    tmp = path.with_name(path.name + ".sha256.tmp")
    tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    os.replace(tmp, sidecar_path(path))


def _cached(final: Path, url: str, sha256: str | None, expect: str | None) -> DownloadResult | None:
    """Return a result for `final` when it is present, verified and of the expected type.

    A present file that contradicts a known sha256 is moved aside to `.bad-sha256` so that the
    final name only ever holds a verified copy.
    """
    if not final.is_file():
        return None
    expected = sha256 or _read_sidecar(final)
    if expected is None or _type_problem(_head(final), expect, 0, None):
        return None
    got = _sha256_file(final).hexdigest()
    if got != expected:
        if sha256 is not None:
            os.replace(final, final.with_name(final.name + ".bad-sha256"))
        return None
    if sha256 is not None and _read_sidecar(final) != got:
        _write_sidecar(final, got)
    return DownloadResult(
        path=final, sha256=got, bytes=final.stat().st_size, url=url, cached=True
    )


def url_file_name(url: str) -> str:
    """The URL path's last part, made file-system safe ("download" when nothing is left)."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return _safe_name(name) or "download"


def _safe_name(name: str, max_len: int = 120) -> str:
    """A file-system-safe version of `name`: ASCII letters, digits, `._-`; no leading dot."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[:max_len]


def cache_name(url: str) -> str:
    """A file name keyed on the whole URL: `<basename>-<10 hex of its sha256><suffix>`.

    `/v1/data.zip` and `/v2/data.zip` get different names; the same URL always the same one.
    """
    name = url_file_name(url)
    suffix = next((s for s in ARCHIVE_SUFFIXES if name.lower().endswith(s)), Path(name).suffix)
    stem = name[: len(name) - len(suffix)] or "download"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:10]
    return f"{stem[:80]}-{digest}{suffix}"


def _check_http_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")


def _content_range_start(header: str | None) -> int | None:
    """Start offset of a `Content-Range: bytes a-b/total` header, None if absent/unparseable."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header or "")
    return int(m.group(1)) if m else None


@dataclass
class _Transfer:
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

    def out_of_time(self) -> _Failed:
        return _Failed(f"no complete file within the {self.deadline:g} s deadline", retry=False)


def _fetch_once(t: _Transfer, *, progress: bool, desc: str) -> bool:
    """One HTTP request that appends to `t.part`. Returns True if it resumed from a prefix.

    Raises `_Failed`.
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
        watch.arm(t.timeout, _Failed(f"timed out (no complete response headers within {t.timeout:g} s)"))
    try:
        try:
            response = _opener(watch).open(urllib.request.Request(url=t.url, headers=headers), timeout=t.timeout)
        except urllib.error.HTTPError as e:
            e.close()
            reason = f"HTTP {e.code} {e.reason}"
            if e.code == 416 and offset:
                # Our prefix is at or past the end of the remote file (e.g. it changed): start over.
                t.restart()
                raise _Failed(f"{reason} for a resume at byte {offset}", e.code) from e
            raise _Failed(reason, e.code, retry=is_transient_status(e.code)) from e
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise watch.fired or _Failed(_describe(e, t.timeout)) from e
        watch.disarm()
        if t.ends_at is not None:
            watch.arm(t.left(), t.out_of_time())
        with response:
            return _read_body(t, response, offset, watch, progress=progress, desc=desc)
    finally:
        watch.disarm()


def _read_body(
    t: _Transfer, response: Any, offset: int, watch: _Watchdog, *, progress: bool, desc: str
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
            raise _Failed(
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
                        raise _Failed(
                            f"too slow: {got} bytes in {now - window_start:.1f} s (less than "
                            f"{t.min_rate:g} bytes/s)"
                        )
                    window_start, window_bytes = now, received
        except (OSError, http.client.HTTPException) as e:
            raise watch.fired or _Failed(_describe(e, t.timeout)) from e
    if watch.fired is not None:
        raise watch.fired
    if expected_total is not None and received < expected_total:
        raise _Failed(f"truncated body: got {received} of {expected_total} bytes")
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


def _backoff_delay(attempt: int, backoff: float) -> float:
    # Exponential with up to +50% jitter so many clients retrying together do not stampede.
    return min(MAX_BACKOFF_SECONDS, backoff * 2 ** (attempt - 1)) * (1 + random.random() / 2)


def download_file(
    url: str,
    dest_dir: Path,
    *,
    filename: str | None = None,
    sha256: str | None = None,
    expect: str | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 30,
    min_rate: float = DEFAULT_MIN_RATE,
    deadline: float | None = None,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download `url` to `dest_dir/filename` (default: the URL's basename, made safe).

    Makes at most `1 + retries` requests, sleeping `backoff * 2**k` (+ jitter) between them.
    `timeout` (s) bounds the connect, the response headers and any silence; a body slower than
    `min_rate` bytes/s over `timeout` seconds is retried like a stall (0 turns that off);
    `deadline` (s, None for none) bounds the whole file, retries and backoff included.
    `expect` ("image", "archive" or None) checks the bytes' type; with "image", a `filename`
    without an image suffix gets the one of the bytes. `sha256` (hex, any case) is checked when
    given. `sleep` is injectable so callers (and tests) can observe or skip the backoff. See the
    module docstring for the `.part` / `.bad-sha256` / `.sha256` contract.

    Returns a `DownloadResult` for the complete file. Raises `DownloadError` naming the URL, the
    number of attempts and the last failure (status code and reason, or the exception, or what
    arrived instead of an image or archive); `ChecksumError` on a sha256 mismatch; `ValueError`
    for a non-http(s) URL or a bad option.
    """
    _check_http_url(url)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if expect not in (None, "image", "archive"):
        raise ValueError(f"expect must be 'image', 'archive' or None, got {expect!r}")
    expected = sha256.lower() if sha256 else None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = _safe_name(filename) if filename else url_file_name(url)
    if not name:
        raise ValueError(f"filename {filename!r} has no usable characters")
    # An image whose name says nothing (`/photo/1001`) is named by its bytes once they are here.
    typed = expect == "image" and Path(name).suffix.lower() not in IMAGE_EXTENSIONS
    candidates = [dest_dir / (name + ext) for ext in _SNIFFED_EXTENSIONS] if typed else [dest_dir / name]
    for final in candidates:
        hit = _cached(final, url, expected, expect)
        if hit is not None:
            return hit

    part = dest_dir / (name + ".part")
    # The hash of an existing prefix is computed once, then kept up to date while streaming.
    t = _Transfer(url, part, _sha256_file(part) if part.exists() else hashlib.sha256(), timeout, min_rate,
                  None if deadline is None else time.monotonic() + deadline, deadline)
    attempts_allowed = retries + 1
    resumed = False
    attempt = 0
    while True:
        attempt += 1
        try:
            left = t.left()
            if left is not None and left <= 0:
                raise t.out_of_time()
            resumed = _fetch_once(t, progress=progress, desc=name) or resumed
            break
        except _Failed as e:
            if e.retry and attempt < attempts_allowed:
                delay, left = _backoff_delay(attempt, backoff), t.left()
                sleep(delay if left is None else max(0.0, min(delay, left)))
                continue
            if not e.retry:
                raise DownloadError(
                    f"failed to download {url}: {e.reason} (attempt {attempt} of {attempts_allowed}; "
                    "not retried)", url=url, attempts=attempt, reason=e.reason, status=e.status,
                ) from e
            kept = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"failed to download {url} after {attempt} attempts: {e.reason}"
                + (f" ({kept} bytes kept in {part.name} for the next resume)" if kept else ""),
                url=url, attempts=attempt, reason=f"{e.reason} after {attempt} tries", status=e.status,
            ) from e

    problem = _type_problem(_head(part), expect, part.stat().st_size, t.content_type)
    if problem:
        part.unlink()  # not worth resuming: it is a different thing, not a prefix
        raise DownloadError(f"failed to download {url}: {problem}", url=url, attempts=attempt,
                            reason=problem, status=None)
    got = t.hasher.hexdigest()
    if expected is not None and got != expected:
        bad = dest_dir / (name + ".bad-sha256")
        os.replace(part, bad)
        hint = " (part of it came from an earlier interrupted download)" if resumed else ""
        raise ChecksumError(
            f"sha256 mismatch for {url}: expected {expected}, got {got}{hint}; "
            f"file moved to {bad}",
            url=url,
            attempts=attempt,
            expected=expected,
            got=got,
            bad_path=bad,
        )
    final = dest_dir / (name + (image_extension(_head(part)) or "")) if typed else dest_dir / name
    _write_sidecar(final, got)
    os.replace(part, final)
    return DownloadResult(
        path=final,
        sha256=got,
        bytes=final.stat().st_size,
        url=url,
        resumed=resumed,
        cached=False,
        attempts=attempt,
    )


def download_named_dataset(
    name: str,
    cache_dir: Path = Path("data/raw"),
    *,
    base_url: str | None = None,
    accept_licence: bool = False,
    sha256: str | None = None,
    **options: Any,
) -> DownloadResult:
    """Download the archive of a standard dataset (see `pix2pix.prepare.catalog`).

    The archive lands in `cache_dir/<name>.tar.gz`; it is not extracted (use
    `pix2pix.prepare.archive.extract_archive`). `base_url` overrides `$PIX2PIX_DATASETS_URL` and the
    default host. `sha256` overrides the catalog's (usually unknown) checksum. Datasets with
    their own licence (cityscapes) need `accept_licence=True`. `options` go to `download_file`
    (`retries`, `backoff`, `timeout`, `min_rate`, `deadline`, `progress`). Raises
    `UnknownDatasetError`, `LicenceNotAcceptedError`, `DownloadError`, `ChecksumError`.
    """
    entry = get_dataset(name)
    url = entry.url(base_url)
    if entry.licence and not accept_licence:
        raise LicenceNotAcceptedError(
            f"dataset {name!r} has its own licence: {entry.licence}",
            url=url,
            attempts=0,
            reason="licence not accepted",
        )
    return download_file(
        url, Path(cache_dir), filename=entry.archive, sha256=sha256 or entry.sha256, expect="archive", **options
    )
