"""Turn the `source` parameter of the build-dataset flow into a local path the builder reads.

    >>> resolve_source("data/samples", Path("data/raw"))              # doctest: +SKIP
    ResolvedSource(path='data/samples', kind='local', ...)
    >>> resolve_source("facades", Path("data/raw"), base_url="http://127.0.0.1:8000")   # doctest: +SKIP
    ResolvedSource(path='data/raw/facades.tar.gz', kind='named', ...)

A source is, in this order of precedence:
- an existing local file or folder: used as is, except a `.txt`/`.csv` file, which is a URL list;
- the name of a standard dataset (`pix2pix.prepare.catalog`): its archive is downloaded to
  `raw_dir/<name>.tar.gz` (a mirror via `base_url` or `$PIX2PIX_DATASETS_URL`);
- an http(s) URL of a `.tar.gz`/`.tgz`/`.zip` archive: downloaded to `raw_dir/<cache_name(url)>`
  (the file name plus a hash of the whole URL: `/v1/data.zip` and `/v2/data.zip` never share);
- a URL list: every image is downloaded into `raw_dir/<list name>/files/`, and the build reads
  `raw_dir/<list name>/images/`, a view of the files that arrived (hard links) without the
  `.sha256` sidecars the downloader writes; failures become `extra_rejected` records.

Plain functions, no Prefect: the flow's resolve task calls `resolve_source`; tests call it too.
Downloads are cached by the library (verified sidecars), so re-resolving is cheap, and retried
by the library only (the flow does not retry them again).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pix2pix.errors import SourceError
from pix2pix.prepare.archive import ARCHIVE_SUFFIXES
from pix2pix.prepare.catalog import NAMED_DATASETS
from pix2pix.prepare.download import DownloadError, cache_name, download_file, download_named_dataset
from pix2pix.prepare.ids import safe_name
from pix2pix.prepare.urllist import download_url_list, read_url_list

URL_LIST_SUFFIXES = (".txt", ".csv")


@dataclass(frozen=True)
class ResolvedSource:
    """A local path for `BuildConfig.source`, how it was obtained, and inputs that never arrived.

    `kind` is `local`, `named`, `url` or `url-list`; `extra_rejected` holds one
    `rejected.jsonl`-ready record (`source`, `kind`, `reason`, ...) per URL that failed.
    """

    path: str
    kind: str
    origin: str
    extra_rejected: list[dict] = field(default_factory=list)
    downloaded: int = 0


def is_url(source: str) -> bool:
    """True for an http(s) URL."""
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def resolve_source(
    source: str,
    raw_dir: Path,
    *,
    base_url: str | None = None,
    accept_licence: bool = False,
    download_workers: int = 8,
) -> ResolvedSource:
    """Resolve `source` (see the module docstring), downloading into `raw_dir` when needed.

    Raises `SourceError` for a source that is none of the accepted kinds, `DownloadError` (or
    `ChecksumError`, `LicenceNotAcceptedError`) when an archive cannot be fetched, and
    `DownloadError` when not a single image of a URL list arrived.
    """
    raw_dir = Path(raw_dir)
    local = Path(source)
    if local.exists():
        if local.is_file() and local.suffix.lower() in URL_LIST_SUFFIXES:
            return fetch_url_list(local, raw_dir, workers=download_workers)
        return ResolvedSource(path=source, kind="local", origin=source)
    if source in NAMED_DATASETS:
        res = download_named_dataset(
            source, raw_dir, base_url=base_url, accept_licence=accept_licence, progress=False
        )
        return ResolvedSource(path=str(res.path), kind="named", origin=res.url, downloaded=0 if res.cached else 1)
    if is_url(source):
        if not urlsplit(source).path.lower().endswith(ARCHIVE_SUFFIXES):
            raise SourceError(
                f"{source}: a URL source must point to a .tar.gz, .tgz or .zip archive; for images, "
                "put their URLs in a .txt or .csv list and pass the list's path"
            )
        res = download_file(source, raw_dir, filename=cache_name(source), expect="archive", progress=False)
        return ResolvedSource(path=str(res.path), kind="url", origin=source, downloaded=0 if res.cached else 1)
    known = ", ".join(sorted(NAMED_DATASETS))
    raise SourceError(
        f"{source}: not an existing file or folder, a named dataset ({known}), an http(s) archive URL "
        "or a .txt/.csv URL list"
    )


def fetch_url_list(list_path: Path, raw_dir: Path, *, workers: int = 8) -> ResolvedSource:
    """Download the images of a URL list and return the folder of those that arrived."""
    items = read_url_list(list_path)
    if not items:
        raise SourceError(f"{list_path}: the URL list has no URLs")
    base = raw_dir / _list_name(list_path)
    files = base / "files"
    ok, failures = download_url_list(items, files, workers=workers, progress=False)
    rejected = [{**f, "source": f["url"], "kind": "download failed"} for f in failures]
    if not ok:
        reasons = "; ".join(sorted({f["reason"] for f in failures}))
        raise DownloadError(
            f"{list_path}: none of its {len(items)} URLs could be downloaded ({reasons})",
            url=str(list_path),
            attempts=len(items),
            reason=reasons,
        )
    images = base / "images"
    _link_view(files, images, [p for f in ok for p in (f.a.path, f.b and f.b.path) if p])
    return ResolvedSource(
        path=str(images),
        kind="url-list",
        origin=str(list_path),
        extra_rejected=rejected,
        downloaded=sum(not f.a.cached for f in ok),
    )


def _list_name(list_path: Path) -> str:
    return safe_name(list_path.stem) or "urls"


def _link_view(files: Path, view: Path, paths: list[Path]) -> None:
    """Make `view` hold exactly `paths` (relative to `files`), as hard links, copies as a fallback.

    Rebuilt from scratch on every run so an image whose URL left the list does not linger.
    """
    shutil.rmtree(view, ignore_errors=True)
    for p in paths:
        dest = view / p.relative_to(files)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, dest)
        except OSError:  # file systems without hard links
            shutil.copy2(p, dest)
