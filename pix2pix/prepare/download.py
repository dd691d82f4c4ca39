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
Lists of image URLs: `pix2pix.prepare.urllist`; one HTTP attempt and the transient-error rule:
`pix2pix.prepare.transfer`. Nothing here imports Prefect or DVC; flows wrap these functions.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix.atomic import atomic_write_text
from pix2pix.errors import Pix2PixError
from pix2pix.prepare.archive import ARCHIVE_SUFFIXES
from pix2pix.prepare.catalog import get_dataset
from pix2pix.prepare.ids import safe_name
from pix2pix.prepare.transfer import (  # noqa: F401  (is_transient_status: part of this API)
    DEFAULT_MIN_RATE,
    AttemptFailed,
    Transfer,
    backoff_delay,
    check_http_url,
    fetch_once,
    is_transient_status,
)

# First bytes of the image formats the builder reads (pix2pix.prepare.scan.IMAGE_SUFFIXES).
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"),
    (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"P6", ".ppm"), (b"P3", ".ppm"), (b"P5", ".pgm"), (b"P2", ".pgm"),
)
_SNIFFED_EXTENSIONS = (".jpg", ".png", ".gif", ".tif", ".ppm", ".pgm", ".webp", ".bmp")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".gif", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


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
    # `sha256sum -c` format, written atomically so a crash never leaves half a digest.
    atomic_write_text(sidecar_path(path), f"{digest}  {path.name}\n")


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
    """`name` made file-system safe by the one rule (`ids.safe_name`), ASCII only, cut to `max_len`."""
    return safe_name(name, ascii_only=True)[:max_len]


def cache_name(url: str) -> str:
    """A file name keyed on the whole URL: `<basename>-<10 hex of its sha256><suffix>`.

    `/v1/data.zip` and `/v2/data.zip` get different names; the same URL always the same one.
    """
    name = url_file_name(url)
    suffix = next((s for s in ARCHIVE_SUFFIXES if name.lower().endswith(s)), Path(name).suffix)
    stem = name[: len(name) - len(suffix)] or "download"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:10]
    return f"{stem[:80]}-{digest}{suffix}"


def _fetch_with_retries(t: Transfer, retries: int, backoff: float,
                        sleep: Callable[[float], None], *, progress: bool,
                        desc: str) -> tuple[int, bool]:
    """The one retry loop: ``fetch_once`` until the file is complete → (attempts, resumed).

    Transient failures (``AttemptFailed.retry``) are retried after ``backoff_delay``, never past
    the deadline; raises ``DownloadError`` naming the URL, the attempts and the last failure.
    """
    url, part = t.url, t.part
    attempts_allowed = retries + 1
    resumed = False
    attempt = 0
    while True:
        attempt += 1
        try:
            left = t.left()
            if left is not None and left <= 0:
                raise t.out_of_time()
            resumed = fetch_once(t, progress=progress, desc=desc) or resumed
            return attempt, resumed
        except AttemptFailed as e:
            if e.retry and attempt < attempts_allowed:
                delay, left = backoff_delay(attempt, backoff), t.left()
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
    check_http_url(url)
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
    t = Transfer(url, part, _sha256_file(part) if part.exists() else hashlib.sha256(), timeout, min_rate,
                 None if deadline is None else time.monotonic() + deadline, deadline)
    attempt, resumed = _fetch_with_retries(t, retries, backoff, sleep, progress=progress, desc=name)
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
    # Not `atomic_path`: `.part` is the resume protocol, kept across failed attempts and runs so
    # the next one continues it (a temporary file is deleted on failure); it is renamed into
    # place here, once whole and verified.
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
