"""Safe extraction of `.tar`, `.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz` and `.zip` archives.

The archive is listed and judged in full before anything is written, by this module's own rules
(the `tarfile` `data` filter is not used: on some Python versions it lets a deep chain of long
names and links write outside the folder, CVE-2025-4517):

- refused (`UnsafeArchiveError`, nothing written): absolute names (`/x`, `C:/x`, `C:\\x`; a
  legal `a:b.jpg` is fine), names or link targets that climb out with `..` (links are followed
  through the archive's own symbolic links), entries inside a member that is a symbolic link,
  hard links through a symbolic link, devices and FIFOs, and decompression bombs: more expanded
  bytes than `max_ratio` times the archive's size (checked from the headers before extracting
  and again while streaming, since headers can lie);
- skipped with a record (returned in `Extracted.rejected`, for `rejected.jsonl`): links (no link
  is ever created on disk; the file a link points to is extracted under its own name), all but
  the last of several members with the same name (tar's own rule), a file whose name is also a
  folder, and files too large to be an image under `max_pixels`;
- everything is written by this module: folders with `mkdir`, files with
  `O_CREAT | O_EXCL | O_NOFOLLOW` inside the resolved extraction folder.

On any failure the extraction folder is removed, so a refused or broken archive leaves nothing;
a full disk says "disk full".
"""

from __future__ import annotations

import errno
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pix2pix.errors import SourceError, UnsafeArchiveError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")
# Photos do not compress (JPEG, PNG: ratio ~1); 100x only happens with made-up or raw data.
DEFAULT_MAX_RATIO = 100
# Below this many expanded bytes the ratio is not checked: small archives of text or flat test
# images compress far better than photos and cannot hurt.
RATIO_FLOOR_BYTES = 64 << 20
# Per zip member the same, above 1 MiB.
MEMBER_RATIO_FLOOR_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
# Worst case of an image file per pixel: 16-bit RGBA stored raw (TIFF, PNG level 0) is 8 bytes,
# plus room for metadata (EXIF thumbnails, ICC profiles).
_BYTES_PER_PIXEL_MAX = 8
_METADATA_SLACK = 16 << 20
_LINK_HOPS_MAX = 40
_DRIVE = re.compile(r"^[A-Za-z]:[/\\]")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Indirection so a test can simulate a full disk (the one fault it cannot cause for real).
_write = os.write


@dataclass(frozen=True)
class Extracted:
    """What `extract_archive` produced.

    `root` is the dataset folder (the extraction folder, or its only sub-folder); `rejected`
    holds one `rejected.jsonl` record per member that was not extracted:
    `{"source": "<archive name>:<member>", "kind": ..., "reason": ...}`.
    """

    root: Path
    rejected: list[dict] = field(default_factory=list)


@dataclass
class _Entry:
    name: str  # normalised relative posix path
    raw: str  # as stored in the archive, for messages
    kind: str  # file, dir, symlink, hardlink
    size: int = 0  # expanded bytes a file declares
    packed: int | None = None  # compressed bytes (zip only)
    target: str = ""  # link target as stored
    ref: Any = None  # TarInfo or ZipInfo


class _Bounds:
    """Expanded-byte budget of one archive, checked from headers and again while streaming."""

    def __init__(self, archive: Path, max_ratio: float, max_total_bytes: int | None):
        self.archive = archive
        self.packed = archive.stat().st_size
        self.max_ratio = max_ratio
        by_ratio = max(int(max_ratio * self.packed), RATIO_FLOOR_BYTES)
        self.limit = by_ratio if max_total_bytes is None else min(by_ratio, max_total_bytes)
        self.streamed = 0

    def check(self, total: int, what: str) -> None:
        if total > self.limit:
            raise UnsafeArchiveError(
                f"{self.archive}: {what} brings the expanded size past {_size(self.limit)} "
                f"({self.max_ratio:g}x the {_size(self.packed)} archive; a decompression bomb?); "
                "refusing to extract"
            )

    def stream(self, nbytes: int, what: str) -> None:
        self.streamed += nbytes
        self.check(self.streamed, what)


def is_archive(path: Path) -> bool:
    """True when `path` is a file whose name ends with a supported archive suffix."""
    name = path.name.lower()
    return path.is_file() and name.endswith(ARCHIVE_SUFFIXES)


def max_image_bytes(max_pixels: int) -> int:
    """The largest file that can hold an image of at most `max_pixels` pixels (raw 16-bit RGBA)."""
    return max_pixels * _BYTES_PER_PIXEL_MAX + _METADATA_SLACK


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _check_name(archive: Path, name: str) -> str:
    """Return the normalised relative name, or raise if it is absolute or climbs out."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise UnsafeArchiveError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: entry {name!r} climbs out of the folder with '..'; refusing to extract")
    return norm


class _Escape(Exception):
    pass


class _Loop(Exception):
    pass


def _resolve(start: str, target: str, symlinks: dict[str, str]) -> str:
    """Where `target`, relative to the folder `start`, lands, following the archive's own links.

    Raises `_Escape` when it leaves the archive's folder (at any point, as the kernel would see
    it) and `_Loop` for a link cycle.
    """
    parts = [p for p in start.split("/") if p not in ("", ".")]
    todo = target.replace("\\", "/").split("/")
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise _Escape
            parts.pop()
            continue
        parts.append(part)
        link = symlinks.get("/".join(parts))
        if link is not None:
            hops += 1
            if hops > _LINK_HOPS_MAX:
                raise _Loop
            if link.startswith(("/", "\\")) or _DRIVE.match(link):
                raise _Escape
            parts.pop()
            todo = link.replace("\\", "/").split("/") + todo
    return "/".join(parts)


def _parents(name: str) -> Iterator[str]:
    parts = name.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def _record(archive: Path, entry: _Entry, kind: str, reason: str) -> dict:
    return {"source": f"{archive.name}:{entry.raw}", "kind": kind, "reason": reason}


def _judge(
    archive: Path, entries: list[_Entry], bounds: _Bounds, max_member_bytes: int | None
) -> tuple[list[_Entry], list[dict]]:
    """Refuse a hostile archive; otherwise return the entries to write and records of the rest."""
    symlinks = {e.name: e.target for e in entries if e.kind == "symlink"}
    rejected: list[dict] = []
    for e in entries:
        via = next((p for p in _parents(e.name) if p in symlinks), None)
        if via is not None:
            raise UnsafeArchiveError(
                f"{archive}: entry {e.raw!r} lies inside {via!r}, a symbolic link in the archive; "
                "refusing to extract"
            )
        if e.kind == "symlink":
            if e.target.startswith(("/", "\\")) or _DRIVE.match(e.target):
                raise UnsafeArchiveError(
                    f"{archive}: link {e.raw!r} points to the absolute path {e.target!r}; refusing to extract"
                )
            try:
                dest = _resolve(posixpath.dirname(e.name), e.target, symlinks)
            except _Escape:
                raise UnsafeArchiveError(
                    f"{archive}: link {e.raw!r} -> {e.target!r} leaves the folder; refusing to extract"
                ) from None
            except _Loop:
                rejected.append(_record(archive, e, "link in archive", f"symbolic link loop at {e.target!r}"))
                continue
            rejected.append(_record(
                archive, e, "link in archive",
                f"symbolic link to {dest!r}: links are not extracted (the file itself is, under its own name)",
            ))
        elif e.kind == "hardlink":
            try:
                target = _check_name(archive, e.target)
            except UnsafeArchiveError as exc:
                how = "is absolute" if "absolute" in str(exc) else "climbs out of the folder with '..'"
                raise UnsafeArchiveError(
                    f"{archive}: hard link {e.raw!r} -> {e.target!r} {how}; refusing to extract"
                ) from None
            via = next((p for p in [*_parents(target), target] if p in symlinks), None)
            if via is not None:
                raise UnsafeArchiveError(
                    f"{archive}: hard link {e.raw!r} -> {e.target!r} goes through {via!r}, a symbolic "
                    "link in the archive; refusing to extract"
                )
            rejected.append(_record(
                archive, e, "link in archive",
                f"hard link to {target!r}: links are not extracted (the file itself is, under its own name)",
            ))

    files = [e for e in entries if e.kind == "file"]
    declared = 0
    for e in files:  # a bomb is refused, even where its members would be skipped below
        if e.packed is not None and e.size > MEMBER_RATIO_FLOOR_BYTES and e.size > bounds.max_ratio * max(e.packed, 1):
            raise UnsafeArchiveError(
                f"{archive}: entry {e.raw!r} expands {_size(e.packed)} to {_size(e.size)} "
                f"(more than {bounds.max_ratio:g}x; a decompression bomb?); refusing to extract"
            )
        declared += e.size
        bounds.check(declared, f"entry {e.raw!r}")
    last = {e.name: i for i, e in enumerate(files)}
    folders = {p for e in entries for p in _parents(e.name)} | {e.name for e in entries if e.kind == "dir"}
    keep: list[_Entry] = []
    for i, e in enumerate(files):
        if last[e.name] != i:
            reason = f"another member named {e.name!r} comes later in the archive; only the last is extracted"
            rejected.append(_record(archive, e, "duplicate in archive", reason))
        elif e.name in folders:
            reason = f"{e.name!r} is both a file and a folder in the archive; the file is not extracted"
            rejected.append(_record(archive, e, "duplicate in archive", reason))
        elif max_member_bytes is not None and e.size > max_member_bytes:
            reason = (f"{_size(e.size)}: larger than any image under the pixel limit can be "
                      f"({_size(max_member_bytes)}); not extracted")
            rejected.append(_record(archive, e, "too large", reason))
        else:
            keep.append(e)
    return [e for e in entries if e.kind == "dir"] + keep, rejected


def _tar_entries(archive: Path, tf: tarfile.TarFile, bounds: _Bounds) -> list[_Entry]:
    entries = []
    declared = 0
    # Listing a compressed tar decompresses it: check the running total at each header so a
    # bomb is refused before its data is even skipped over.
    while (m := tf.next()) is not None:
        name = _check_name(archive, m.name)
        if m.isfile():
            declared += m.size
            bounds.check(declared, f"entry {m.name!r}")
            entries.append(_Entry(name, m.name, "file", m.size, ref=m))
        elif m.isdir():
            entries.append(_Entry(name, m.name, "dir", ref=m))
        elif m.issym():
            entries.append(_Entry(name, m.name, "symlink", target=m.linkname, ref=m))
        elif m.islnk():
            entries.append(_Entry(name, m.name, "hardlink", target=m.linkname, ref=m))
        else:
            raise UnsafeArchiveError(
                f"{archive}: entry {m.name!r} is a device, FIFO or other special file; refusing to extract"
            )
    return entries


def _zip_entries(archive: Path, zf: zipfile.ZipFile) -> list[_Entry]:
    entries = []
    for info in zf.infolist():
        name = _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            with zf.open(info) as f:  # a link's target is its data; bounded, it may lie
                target = f.read(4096).decode("utf-8", "replace")
            entries.append(_Entry(name, info.filename, "symlink", target=target, ref=info))
        elif info.is_dir() or stat.S_ISDIR(mode):
            entries.append(_Entry(name, info.filename, "dir", ref=info))
        elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise UnsafeArchiveError(
                f"{archive}: entry {info.filename!r} is a device, FIFO or other special file; refusing to extract"
            )
        else:
            entries.append(_Entry(name, info.filename, "file", info.file_size, info.compress_size, ref=info))
    return entries


class _Writer:
    """Creates folders and files strictly inside the resolved extraction folder."""

    def __init__(self, archive: Path, dest: Path, bounds: _Bounds):
        self.archive = archive
        self.dest = dest.resolve()
        self.bounds = bounds
        self.rejected: list[dict] = []
        self._inside: set[Path] = set()

    def folder(self, name: str) -> Path:
        path = self.dest / name
        path.mkdir(parents=True, exist_ok=True)
        if path not in self._inside:
            # Nothing here creates links, so this holds by construction; checked anyway.
            real = Path(os.path.realpath(path))
            if real != self.dest and self.dest not in real.parents:
                raise UnsafeArchiveError(f"{self.archive}: {name!r} resolves outside {self.dest}; refusing")
            self._inside.add(path)
        return path

    def file(self, entry: _Entry, src: Any) -> None:
        parent = self.folder(posixpath.dirname(entry.name)) if "/" in entry.name else self.dest
        path = parent / posixpath.basename(entry.name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                self.rejected.append(_record(self.archive, entry, "unreadable", "name too long to extract"))
                return
            raise
        written = 0
        try:
            while chunk := src.read(CHUNK_BYTES):
                written += len(chunk)
                if written > entry.size:
                    raise UnsafeArchiveError(
                        f"{self.archive}: entry {entry.raw!r} expands beyond the {_size(entry.size)} its "
                        "header declares; refusing to extract"
                    )
                self.bounds.stream(len(chunk), f"entry {entry.raw!r}")
                view = memoryview(chunk)
                while view:
                    view = view[_write(fd, view):]
        finally:
            os.close(fd)


def extract_archive(
    archive: Path,
    dest: Path,
    *,
    max_pixels: int | None = None,
    max_ratio: float = DEFAULT_MAX_RATIO,
    max_total_bytes: int | None = None,
) -> Extracted:
    """Extract `archive` into the new or empty folder `dest` (see the module docstring).

    `max_pixels` skips (with a record) files too large to be an image of that many pixels
    (`max_image_bytes`); `max_ratio` bounds the expanded size at that many times the archive's
    size (not below 64 MiB); `max_total_bytes` bounds it absolutely.

    Returns `Extracted(root, rejected)`: the root is `dest`, or its only sub-folder when the
    archive wraps everything in one top-level folder (as the official `facades.tar.gz` does).
    Raises `UnsafeArchiveError` for a hostile archive before writing anything (or, for a bomb
    whose headers lie, as soon as it shows), and `SourceError` for an unreadable archive or a
    full disk; in every failure `dest` is removed.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise SourceError(f"{dest}: the extraction folder must be new or empty")
    dest.mkdir(parents=True, exist_ok=True)
    max_member = max_image_bytes(max_pixels) if max_pixels is not None else None
    try:
        bounds = _Bounds(archive, max_ratio, max_total_bytes)
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                rejected = _extract(archive, dest, _zip_entries(archive, zf), bounds, max_member, zf.open)
        else:
            with tarfile.open(archive) as tf:
                rejected = _extract(archive, dest, _tar_entries(archive, tf, bounds), bounds, max_member,
                                    tf.extractfile)
    except BaseException as exc:
        shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            raise SourceError(
                f"{archive}: disk full while extracting into {dest}; the partial files were removed. "
                "Free some space there and run again"
            ) from exc
        if isinstance(exc, (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
                            OSError)) and not isinstance(exc, UnsafeArchiveError):
            raise SourceError(f"{archive}: not a readable archive ({_one_line(exc)}; it starts with "
                              f"{_head(archive)}); re-download it or check what the URL served") from exc
        raise
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if not entries and not rejected:
        shutil.rmtree(dest, ignore_errors=True)
        raise SourceError(f"{archive}: the archive holds no files")
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
    return Extracted(root, rejected)


def _one_line(exc: BaseException) -> str:
    """tarfile lists every compression it tried on lines of their own: one line for the terminal."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _head(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return "unreadable bytes"
    if head.lstrip()[:1] == b"<":
        return f"{head[:16]!r}: an HTML or XML page?"
    return repr(head[:8]) if head else "nothing (an empty file)"


def _extract(
    archive: Path, dest: Path, entries: list[_Entry], bounds: _Bounds, max_member: int | None, opener: Any
) -> list[dict]:
    todo, rejected = _judge(archive, entries, bounds, max_member)
    need = sum(e.size for e in todo)
    free = shutil.disk_usage(dest).free
    if need > free:
        raise SourceError(
            f"{archive}: disk full: it expands to {_size(need)} but only {_size(free)} are free in "
            f"{dest}; free some space or build elsewhere"
        )
    writer = _Writer(archive, dest, bounds)
    for e in todo:
        if e.kind == "dir":
            writer.folder(e.name)
            continue
        src = opener(e.ref)
        with src:
            writer.file(e, src)
    return rejected + writer.rejected

