"""Robust HTTP downloads: resumable, retried, verified, cached.

    >>> from pathlib import Path
    >>> from pix2pix.download import download_named_dataset, download_file
    >>> res = download_named_dataset("facades", Path("data/raw"))        # doctest: +SKIP
    >>> res.path, res.sha256, res.cached                                   # doctest: +SKIP
    (PosixPath('data/raw/facades.tar.gz'), '…', False)
    >>> items = read_url_list(Path("urls.csv"))                            # doctest: +SKIP
    >>> ok, failed = download_url_list(items, Path("data/raw/mine"))       # doctest: +SKIP

Contract of every download into `dest_dir/<name>`:
- bytes stream into `<name>.part`; only a complete (Content-Length reached) and verified file is
  renamed to `<name>`, so a file under the final name is never partial;
- an existing `<name>.part` is resumed with `Range: bytes=N-`; a server that answers 200 instead
  of 206 (or a different range) makes us start again from zero;
- connection errors, timeouts, resets, truncated bodies and HTTP 5xx (and 408/429) are retried
  with exponential backoff and jitter, keeping what arrived; other 4xx fail at once;
- a wrong sha256 moves the file to `<name>.bad-sha256` and raises `ChecksumError`;
- a sidecar `<name>.sha256` (`sha256sum` format) is written on success; a final file that matches
  the given sha256, or its sidecar, is returned without any request (`cached=True`).

One process per destination file: two processes resuming the same `.part` would interleave.
Nothing here imports Prefect or DVC; flows wrap these functions.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import os
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix.datasets_catalog import get_dataset
from pix2pix.errors import Pix2PixError

CHUNK_BYTES = 1 << 16
MAX_BACKOFF_SECONDS = 60.0
USER_AGENT = "pix2pix-pipeline (+urllib)"
# 408/429 are client-side codes but mean "try again later", not "your request is wrong".
RETRYABLE_4XX = frozenset({408, 429})


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


class UrlListError(Pix2PixError, ValueError):
    """A URL list file is malformed; the message names the file and the line."""


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
# One file
# --------------------------------------------------------------------------------------------


class _Retryable(Exception):
    """One attempt failed in a way worth retrying; `reason` says how, `status` if HTTP."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _Fatal(Exception):
    """One attempt failed in a way that retrying cannot fix (4xx)."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _sha256_file(path: Path, hasher: Any | None = None) -> Any:
    h = hasher if hasher is not None else hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    """The hex digest recorded in `<name>.sha256`, or None if missing/unreadable."""
    try:
        text = _sidecar(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    digest = text.split()[0].lower() if text else ""
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _write_sidecar(path: Path, digest: str) -> None:
    # `sha256sum -c` format, written via a temp file so a crash never leaves half a digest.
    tmp = path.with_name(path.name + ".sha256.tmp")
    tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    os.replace(tmp, _sidecar(path))


def _cached(final: Path, url: str, sha256: str | None) -> DownloadResult | None:
    """Return a result for `final` when it is present and verified, else None.

    A present file that contradicts a known sha256 is moved aside to `.bad-sha256` so that the
    final name only ever holds a verified copy.
    """
    if not final.is_file():
        return None
    expected = sha256 or _read_sidecar(final)
    if expected is None:
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


def _filename_from_url(url: str) -> str:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return _safe_name(name) or "download"


def _safe_name(name: str, max_len: int = 120) -> str:
    """A file-system-safe version of `name`: ASCII letters, digits, `._-`; no leading dot."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[:max_len]


def _check_http_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")


def _content_range_start(header: str | None) -> int | None:
    """Start offset of a `Content-Range: bytes a-b/total` header, None if absent/unparseable."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header or "")
    return int(m.group(1)) if m else None


def _fetch_once(
    url: str,
    part: Path,
    hasher_box: list[Any],
    *,
    timeout: float,
    progress: bool,
    desc: str,
) -> bool:
    """One HTTP request that appends to `part`. Returns True if it resumed from a prefix.

    `hasher_box[0]` holds a sha256 object that always covers exactly the bytes in `part`;
    it is replaced when the file restarts from zero. Raises `_Retryable` or `_Fatal`.
    """
    from tqdm import tqdm  # imported lazily: only downloads need it

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        reason = f"HTTP {e.code} {e.reason}"
        if e.code == 416 and offset:
            # Our prefix is at or past the end of the remote file (e.g. it changed): start over.
            part.unlink()
            hasher_box[0] = hashlib.sha256()
            raise _Retryable(f"{reason} for a resume at byte {offset}", e.code) from e
        if 400 <= e.code < 500 and e.code not in RETRYABLE_4XX:
            raise _Fatal(reason, e.code) from e
        raise _Retryable(reason, e.code) from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Retryable(_describe(e, timeout)) from e

    with response:
        resumed = False
        if offset and response.status == 206:
            if _content_range_start(response.headers.get("Content-Range")) == offset:
                resumed = True
            else:
                # Not the range we asked for: appending would corrupt the file, so start over.
                part.unlink()
                hasher_box[0] = hashlib.sha256()
                raise _Retryable(
                    f"server answered Range bytes={offset}- with Content-Range "
                    f"{response.headers.get('Content-Range')!r}"
                )
        if offset and not resumed:
            # A 200 to a Range request is the whole file: drop our prefix and take it.
            offset = 0
            hasher_box[0] = hashlib.sha256()
        length = response.headers.get("Content-Length")
        expected_total = offset + int(length) if length and length.isdigit() else None
        received = offset
        mode = "ab" if resumed else "wb"
        with part.open(mode) as out, tqdm(
            total=expected_total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            file=sys.stderr,
            disable=not progress,
            leave=False,
        ) as bar:
            try:
                # read1 returns what has arrived instead of blocking for a full chunk, so bytes
                # received before a reset are kept for the next resume.
                while chunk := response.read1(CHUNK_BYTES):
                    out.write(chunk)
                    hasher_box[0].update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                raise _Retryable(_describe(e, timeout)) from e
        if expected_total is not None and received < expected_total:
            raise _Retryable(f"truncated body: got {received} of {expected_total} bytes")
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
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 30,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download `url` to `dest_dir/filename` (default: the URL's basename, made safe).

    Makes at most `1 + retries` requests, sleeping `backoff * 2**k` (+ jitter) between them;
    `timeout` is per socket operation (connect or a read that gets no data), not for the whole
    file. `sha256` (hex, any case) is checked when given. `sleep` is injectable so callers
    (and tests) can observe or skip the backoff. See the module docstring for the
    `.part` / `.bad-sha256` / `.sha256` contract.

    Returns a `DownloadResult` for the complete file. Raises `DownloadError` naming the URL, the
    number of attempts and the last failure (status code and reason, or the exception);
    `ChecksumError` on a sha256 mismatch; `ValueError` for a non-http(s) URL.
    """
    _check_http_url(url)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    expected = sha256.lower() if sha256 else None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = _safe_name(filename) if filename else _filename_from_url(url)
    if not name:
        raise ValueError(f"filename {filename!r} has no usable characters")
    final = dest_dir / name
    part = dest_dir / (name + ".part")

    hit = _cached(final, url, expected)
    if hit is not None:
        return hit

    # The hash of an existing prefix is computed once, then kept up to date while streaming.
    hasher_box = [_sha256_file(part) if part.exists() else hashlib.sha256()]
    attempts_allowed = retries + 1
    resumed = False
    last: _Retryable | None = None
    for attempt in range(1, attempts_allowed + 1):
        try:
            resumed = _fetch_once(
                url, part, hasher_box, timeout=timeout, progress=progress, desc=name
            ) or resumed
            break
        except _Fatal as e:
            raise DownloadError(
                f"failed to download {url}: {e.reason} (attempt {attempt} of "
                f"{attempts_allowed}; not retried)",
                url=url,
                attempts=attempt,
                reason=e.reason,
                status=e.status,
            ) from e
        except _Retryable as e:
            last = e
            if attempt < attempts_allowed:
                sleep(_backoff_delay(attempt, backoff))
    else:
        assert last is not None
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"failed to download {url} after {attempts_allowed} attempts: {last.reason}"
            + (f" ({kept} bytes kept in {part.name} for the next resume)" if kept else ""),
            url=url,
            attempts=attempts_allowed,
            reason=f"{last.reason} after {attempts_allowed} tries",
            status=last.status,
        ) from last

    got = hasher_box[0].hexdigest()
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
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 30,
    progress: bool = True,
) -> DownloadResult:
    """Download the archive of a standard dataset (see `pix2pix.datasets_catalog`).

    The archive lands in `cache_dir/<name>.tar.gz`; it is not extracted (use
    `pix2pix.archive.extract_archive`). `base_url` overrides `$PIX2PIX_DATASETS_URL` and the
    default host. `sha256` overrides the catalog's (usually unknown) checksum. Datasets with
    their own licence (cityscapes) need `accept_licence=True`. Raises `UnknownDatasetError`,
    `LicenceNotAcceptedError`, `DownloadError`, `ChecksumError`.
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
        url,
        Path(cache_dir),
        filename=entry.archive,
        sha256=sha256 or entry.sha256,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        progress=progress,
    )


# --------------------------------------------------------------------------------------------
# URL lists
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UrlItem:
    """One line of a URL list: an image URL, or an A URL and a B URL for a pair.

    `line` is the 1-based line in the list file (None when built in code).
    """

    url: str
    url_b: str | None = None
    line: int | None = None

    @property
    def is_pair(self) -> bool:
        return self.url_b is not None

    def stem(self) -> str:
        """Deterministic, unique, file-system-safe stem shared by the A and B files.

        The URL basename (for readability) plus 10 hex digits of the sha256 of the URL(s), so
        two URLs ending in `image.jpg` do not collide and reordering the list keeps names (and
        thus the cache) stable.
        """
        key = self.url if self.url_b is None else f"{self.url}\n{self.url_b}"
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
        base = Path(_filename_from_url(self.url)).stem[:60] or "item"
        return f"{base}-{digest}"


@dataclass(frozen=True)
class FetchedItem:
    """A URL-list item that downloaded completely: `a` (and `b` for pairs)."""

    item: UrlItem
    a: DownloadResult
    b: DownloadResult | None = None

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict: url, line, path, sha256, bytes, cached (+ url_b, path_b, ...)."""
        rec: dict[str, Any] = {
            "url": self.item.url,
            "line": self.item.line,
            "path": str(self.a.path),
            "sha256": self.a.sha256,
            "bytes": self.a.bytes,
            "cached": self.a.cached,
        }
        if self.b is not None:
            rec.update(
                url_b=self.item.url_b,
                path_b=str(self.b.path),
                sha256_b=self.b.sha256,
                bytes_b=self.b.bytes,
                cached_b=self.b.cached,
            )
        return rec


def _looks_like_url(cell: str) -> bool:
    return "://" in cell


def _checked_url(path: Path, line: int, cell: str) -> str:
    url = cell.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise UrlListError(f"{path}:{line}: not an http(s) URL: {url!r}")
    return url


def read_url_list(path: Path) -> list[UrlItem]:
    """Read a `.txt` (one URL per line) or `.csv` (A URL[, B URL]) list of images.

    Blank lines and lines starting with `#` are skipped. A `.csv` may start with a header row
    (recognised by a first cell that is not a URL). With two columns every row must have both
    and items are pairs. Raises `UrlListError` naming the file and line for a non-http(s) URL,
    a wrong number of columns, or an unsupported suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".csv"):
        raise UrlListError(f"{path}: URL lists must be .txt or .csv, got {suffix or 'no suffix'!r}")
    text = path.read_text(encoding="utf-8-sig")
    items: list[UrlItem] = []
    if suffix == ".txt":
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if len(line.split()) != 1:
                raise UrlListError(f"{path}:{n}: expected one URL per line, got {line!r}")
            items.append(UrlItem(url=_checked_url(path, n, line), line=n))
        return items

    reader = csv.reader(text.splitlines())
    columns: int | None = None
    first = True
    for row in reader:
        n = reader.line_num
        cells = [c.strip() for c in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells or cells[0].startswith("#"):
            continue
        if first and not _looks_like_url(cells[0]):
            first = False  # header row
            continue
        first = False
        if len(cells) > 2:
            raise UrlListError(
                f"{path}:{n}: expected 1 column (image URL) or 2 (A URL, B URL), got {len(cells)}"
            )
        if columns is None:
            columns = len(cells)
        elif len(cells) != columns:
            raise UrlListError(
                f"{path}:{n}: {len(cells)} column(s) but earlier rows have {columns}; a pair "
                "list needs an A and a B URL on every row"
            )
        urls = [_checked_url(path, n, c) for c in cells]
        items.append(UrlItem(url=urls[0], url_b=urls[1] if len(urls) == 2 else None, line=n))
    return items


def _failure(item: UrlItem, err: DownloadError, side: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "url": err.url,
        "line": item.line,
        "reason": f"{side}: {err.reason}" if side else err.reason,
        "status": err.status,
    }
    if item.is_pair:
        rec["url_a"], rec["url_b"] = item.url, item.url_b
    return rec


def _suffix(url: str) -> str:
    suffix = Path(_filename_from_url(url)).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


def download_url_list(
    items: Sequence[UrlItem] | Iterable[UrlItem],
    dest_dir: Path,
    *,
    workers: int = 8,
    retries: int = 2,
    backoff: float = 0.5,
    timeout: float = 30,
    progress: bool = True,
) -> tuple[list[FetchedItem], list[dict[str, Any]]]:
    """Download every item concurrently (at most `workers` at a time) into `dest_dir`.

    Single images go to `dest_dir/<stem><ext>`; pairs to `dest_dir/A/<stem><extA>` and
    `dest_dir/B/<stem><extB>` with the same stem (see `UrlItem.stem`), ready for a
    paired-folder source. A pair is kept only when both halves arrived: the half that did is
    removed, so the folders never hold an orphan. Files already present and verified by their
    sidecar are not fetched again.

    Returns `(ok, failures)`, both in input order. A failure never stops the others; each
    failure is a dict `{"url", "line", "reason", "status"}` (plus `url_a`/`url_b` for pairs)
    for a `rejected.jsonl`. A repeated item is a failure "duplicate of line N".
    Errors other than `DownloadError` (e.g. a full disk) propagate.
    """
    from tqdm import tqdm

    items = list(items)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pairs = {it.is_pair for it in items}
    if len(pairs) > 1:
        raise UrlListError("mixed list: some items are pairs (A and B URLs) and some are not")
    is_pairs = pairs == {True}
    dest_dir = Path(dest_dir)
    kwargs: dict[str, Any] = dict(retries=retries, backoff=backoff, timeout=timeout, progress=False)

    def fetch(item: UrlItem) -> FetchedItem | dict[str, Any]:
        stem = item.stem()
        if not is_pairs:
            try:
                a = download_file(item.url, dest_dir, filename=stem + _suffix(item.url), **kwargs)
            except DownloadError as e:
                return _failure(item, e, None)
            return FetchedItem(item, a)
        assert item.url_b is not None
        done: list[DownloadResult] = []
        for side, url in (("A", item.url), ("B", item.url_b)):
            try:
                done.append(
                    download_file(url, dest_dir / side, filename=stem + _suffix(url), **kwargs)
                )
            except DownloadError as e:
                for res in done:  # no orphan half left for the pairing step to trip on
                    res.path.unlink(missing_ok=True)
                    _sidecar(res.path).unlink(missing_ok=True)
                return _failure(item, e, side)
        return FetchedItem(item, done[0], done[1])

    seen: dict[str, UrlItem] = {}
    results: list[Any] = []
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(
        total=len(items), unit="file", file=sys.stderr, disable=not progress
    ) as bar:
        for item in items:
            stem = item.stem()
            if stem in seen:
                # Same URL(s) twice would race on one .part file; report it instead.
                results.append(
                    {
                        "url": item.url,
                        "line": item.line,
                        "reason": f"duplicate of line {seen[stem].line}",
                        "status": None,
                    }
                )
                bar.update(1)
                continue
            seen[stem] = item
            future = pool.submit(fetch, item)
            future.add_done_callback(lambda _f: bar.update(1))
            results.append(future)
        resolved = [r if isinstance(r, dict) else r.result() for r in results]

    ok = [r for r in resolved if isinstance(r, FetchedItem)]
    failures = [r for r in resolved if isinstance(r, dict)]
    return ok, failures
