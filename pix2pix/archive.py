"""Safe extraction of `.tar`, `.tar.gz`, `.tgz` and `.zip` archives.

Every entry is checked before anything is written: absolute paths, `..` components, links whose
target leaves the folder, and device/FIFO entries are refused with `UnsafeArchiveError` naming
the entry, so a hostile archive cannot write outside `dest`.
"""

from __future__ import annotations

import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from pix2pix.errors import SourceError, UnsafeArchiveError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")


def is_archive(path: Path) -> bool:
    """True when `path` is a file whose name ends with a supported archive suffix."""
    name = path.name.lower()
    return path.is_file() and name.endswith(ARCHIVE_SUFFIXES)


def _check_name(archive: Path, name: str) -> str:
    """Return the normalised relative name, or raise if it is absolute or climbs out."""
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (
        len(name) > 1 and name[1] == ":"
    ):
        raise UnsafeArchiveError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or "/../" in f"/{norm}/":
        raise UnsafeArchiveError(f"{archive}: entry {name!r} climbs out of the folder with '..'; refusing to extract")
    return norm


def _check_link(archive: Path, name: str, target: str) -> None:
    # A link is resolved relative to the folder that holds it; absolute targets always escape.
    if target.startswith("/") or PurePosixPath(target).is_absolute():
        raise UnsafeArchiveError(
            f"{archive}: link {name!r} points to the absolute path {target!r}; refusing to extract"
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(
            f"{archive}: link {name!r} -> {target!r} leaves the folder; refusing to extract"
        )


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            name = _check_name(archive, m.name)
            if m.issym():
                _check_link(archive, name, m.linkname)
            elif m.islnk():
                _check_name(archive, m.linkname)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(
                    f"{archive}: entry {m.name!r} is a device, FIFO or other special file; "
                    "refusing to extract"
                )
        # The 'data' filter re-checks all of the above and strips unsafe permission bits.
        tf.extractall(dest, members=members, filter="data")


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            name = _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(archive, name, zf.read(info).decode("utf-8", "replace"))
                raise UnsafeArchiveError(
                    f"{archive}: entry {info.filename!r} is a symbolic link; zip links are not "
                    "supported, store the file itself"
                )
        for info in infos:
            name = _check_name(archive, info.filename)
            target = dest / name
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract `archive` into the folder `dest` (created) and return the dataset root inside.

    The root is `dest` itself, or its only sub-folder when the archive wraps everything in one
    top-level folder (as the official `facades.tar.gz` does with `facades/`).
    Raises `UnsafeArchiveError` before writing anything if an entry is unsafe, and
    `SourceError` if the file is not a readable archive.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    lower = archive.name.lower()
    try:
        if lower.endswith(".zip"):
            _extract_zip(archive, dest)
        else:
            _extract_tar(archive, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, tarfile.FilterError):
            raise UnsafeArchiveError(f"{archive}: {exc}; refusing to extract") from exc
        raise SourceError(f"{archive}: not a readable archive ({exc}); re-download it") from exc
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest
