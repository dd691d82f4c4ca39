"""Outputs that appear complete or not at all: whole folders (builds, evaluation reports) and
single files (checkpoints, sample grids, ONNX exports, digests).

The publisher owns the output rules of every command:

- ``claim(out, inputs=..., overwrite=...)`` before any work: ``out`` must not be, contain or lie
  inside an input (``pix2pix.paths.check_disjoint``), must be empty or ``overwrite`` given, and
  is locked against a second run writing the same ``out`` (an OS lock on ``.OUT.lock`` beside
  it, released by ``release(out)`` or when the process ends, even by kill -9).
- ``publish(staging, out)``: the finished folder replaces ``out`` by renames only.
- ``atomic_path(path)``: the one single-file writer: write a temporary file beside ``path``,
  renamed onto it on success, removed on any failure (``atomic_write_text`` for text).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from pix2pix.errors import OutputExistsError, OutputLockedError
from pix2pix.paths import check_disjoint

# Locks this process holds: resolved lock path -> open file descriptor (flock'ed).
_held: dict[str, int] = {}


def sibling(out: Path, tag: str) -> Path:
    """A hidden work folder beside `out` (`.NAME.TAG`), on the same file system so renames work."""
    out = Path(out)
    return out.parent / f".{out.name}.{tag}"


def _lock_path(out: Path) -> Path:
    out = Path(out).absolute()
    return out.parent.resolve() / f".{out.name}.lock"


def lock(out: str | Path) -> None:
    """Take the exclusive lock of `out` (``.OUT.lock`` beside it) or raise ``OutputLockedError``.

    The lock is ``flock`` on an open file: the kernel drops it when the process ends, however
    it ends. The file is removed on release while still locked; a run that locked a file
    removed meanwhile notices (inode check) and tries again, so two runs never both hold it.
    """
    path = _lock_path(Path(out))
    key = str(path)
    if key in _held:
        raise OutputLockedError(f"{out}: this process is already writing it; wait for that run to finish")
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise OutputLockedError(
                f"{out}: another run is writing it (pid {pid}, lock {path}); wait for it to finish "
                f"or choose another output folder") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed the file between our open and our lock: retry
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[key] = fd
        return
    raise OutputLockedError(f"{out}: could not take the lock {path}; try again")


def release(out: str | Path) -> None:
    """Drop the lock of `out` if this process holds it (idempotent)."""
    path = _lock_path(Path(out))
    fd = _held.pop(str(path), None)
    if fd is None:
        return
    try:
        path.unlink(missing_ok=True)  # while still locked: see `lock`
    finally:
        os.close(fd)


def claim(out: str | Path, *, inputs: Mapping[str, str | Path | None], overwrite: bool,
          marker: str, allow_inside: Collection[str] = ()) -> None:
    """Check that `out` may be written, then lock it (see the module docstring).

    ``overwrite`` replaces only an earlier output of the same command, recognised by its
    ``marker`` file (``dataset.json``, ``metrics.json``, ``translate.jsonl``): a typo in OUT, or a
    flow parameter, must never become a way to delete a folder of the user's.

    Raises ``OutputOverlapError`` (out is/contains/lies inside an input), ``OutputExistsError``
    (not empty and not ``overwrite``, or not an earlier output) or ``OutputLockedError``
    (another run writes it).
    """
    out = Path(out)
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        # Publishing renames OUT: the folder this process stands in would be moved away under it.
        raise OutputExistsError(f"{out} is (or contains) the current folder {here}; run from elsewhere "
                                f"or name OUT from its parent (e.g. ../{out.resolve().name})")
    check_disjoint(out, inputs, allow_inside=allow_inside)
    if out.is_symlink():  # publishing renames: it would replace the link, not write where it points
        raise OutputExistsError(f"{out} is a symbolic link (to {os.readlink(out)}); give the folder itself "
                                f"({out.resolve()}) as the output")
    # A folder holding nothing but a .gitignore (what `dvc repro` leaves of a stage's folder
    # after removing its outputs) holds no data: it counts as empty.
    if out.exists() and (not out.is_dir() or any(p.name != ".gitignore" for p in out.iterdir())):
        if not overwrite:
            raise OutputExistsError(f"{out} already exists and is not empty; pass --overwrite to replace it")
        if not (out / marker).is_file():
            raise OutputExistsError(
                f"{out} is not an earlier output of this command (no {marker} in it), so --overwrite "
                f"will not delete it; choose another output folder or remove it yourself")
    lock(out)


def publish(staging: Path, out: Path) -> None:
    """Put the finished folder `staging` at `out` by renames only, so `out` is never half written.

    An existing `out` is moved aside first and deleted only once the new one is in place.
    """
    old = None
    if out.exists() or out.is_symlink():
        old = sibling(out, "old")
        _remove(old)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    """Delete a leftover work folder, or a link or file in its place (rmtree refuses links)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed onto ``path`` (``os.replace``)
    when the block ends normally, so readers see the old file or the whole new one, never half.

    On any exception, ``KeyboardInterrupt`` included, the temporary file is removed and ``path``
    is left as it was. The name is unique per call (process id and a random tag), hidden, and in
    the same folder (a rename across file systems would be a copy). Nothing is fsync'ed: this
    guards against crashes of the process, not against power loss. The folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` through ``atomic_path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
