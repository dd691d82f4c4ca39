"""Lists of image URLs: read a `.txt`/`.csv` list, download every image (or A/B pair) of it.

    >>> from pathlib import Path
    >>> from pix2pix.prepare.urllist import read_url_list, download_url_list
    >>> items = read_url_list(Path("urls.csv"))                            # doctest: +SKIP
    >>> ok, failed = download_url_list(items, Path("data/raw/mine"))       # doctest: +SKIP

Each file goes through `pix2pix.prepare.download.download_file` with `expect="image"` (resumed,
retried, bounded in time, type-checked, cached); a failure is a record, never a stop.
"""

from __future__ import annotations

import csv
import hashlib
import sys
import urllib.parse
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix.errors import Pix2PixError
from pix2pix.prepare.download import (
    IMAGE_EXTENSIONS,
    DownloadError,
    DownloadResult,
    download_file,
    sidecar_path,
    url_file_name,
)


class UrlListError(Pix2PixError, ValueError):
    """A URL list file is malformed; the message names the file and the line."""


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
        base = Path(url_file_name(self.url)).stem[:60] or "item"
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
    """The URL's image suffix, or "" (the type then comes from the bytes)."""
    suffix = Path(url_file_name(url)).suffix.lower()
    return suffix if suffix in IMAGE_EXTENSIONS else ""


def download_url_list(
    items: Sequence[UrlItem] | Iterable[UrlItem],
    dest_dir: Path,
    *,
    workers: int = 8,
    retries: int = 2,
    progress: bool = True,
    **options: Any,
) -> tuple[list[FetchedItem], list[dict[str, Any]]]:
    """Download every item concurrently (at most `workers` at a time) into `dest_dir`.

    Single images go to `dest_dir/<stem><ext>`; pairs to `dest_dir/A/<stem><extA>` and
    `dest_dir/B/<stem><extB>` with the same stem (see `UrlItem.stem`), ready for a
    paired-folder source. The extension is the URL's when it is an image one, else that of the
    bytes (`/photo/1001` -> `.jpg`); bytes that are no image (an HTML error page) are a failure.
    A pair is kept only when both halves arrived: the half that did is removed, so the folders
    never hold an orphan. Files already present and verified by their sidecar are not fetched
    again. `options` go to `download_file` (`backoff`, `timeout`, `min_rate`, `deadline`).

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
    kwargs: dict[str, Any] = dict(options, retries=retries, expect="image", progress=False)

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
                    sidecar_path(res.path).unlink(missing_ok=True)
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
