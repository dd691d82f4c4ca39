"""Typed errors and the one exit-code table of every command (``exit_code``)."""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_FAILED = 1        # the inputs or the run failed: bad data, nothing usable, invalid dataset
EXIT_USAGE = 2         # the command as given cannot run: bad option/config, OUT exists or overlaps
EXIT_DIVERGED = 3      # train: a loss became NaN/Inf (last good checkpoint kept)
EXIT_MISMATCH = 4      # train: the checkpoint does not match this run (see --on-mismatch)
EXIT_IO = 5            # the system refused: disk full, read-only/permission, OUT locked by a run
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT; no partial output under the final name

EXIT_CODES_HELP = """\
exit codes (every command and flow):
  0    done
  1    failed: bad input data, nothing usable, invalid dataset or checkpoint
  2    usage: bad option or config value, OUT exists (see --overwrite), OUT overlaps an input
  3    train: a loss became NaN/Inf (the last good checkpoint is kept)
  4    train: the checkpoint does not match this run (see --on-mismatch)
  5    system: disk full, read-only or permission denied, OUT locked by another run
  130  interrupted
"""


class Pix2PixError(Exception):
    """Base of all errors of this package; ``exit_code`` is the command's exit status for it."""

    exit_code = EXIT_FAILED


class ConfigError(Pix2PixError, ValueError):
    """A configuration value is invalid; the message names the key and what would work."""

    exit_code = EXIT_USAGE


class SourceError(Pix2PixError):
    """A dataset source cannot be read or recognised."""


class UnsafeArchiveError(SourceError):
    """An archive entry would escape the extraction folder or is not a regular file/folder."""


class OutputExistsError(Pix2PixError):
    """The output folder exists and is not empty, and overwriting was not asked for."""

    exit_code = EXIT_USAGE


class NothingUsableError(Pix2PixError):
    """A build found no usable input at all."""


class ImageRejected(Pix2PixError):
    """One input cannot be used.

    `reason` is a sentence a person understands; `kind` is a short stable category used to
    count rejections ("truncated", "not an image", ...).
    """

    def __init__(self, reason: str, kind: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind or reason


class DatasetInvalidError(Pix2PixError):
    """`pix2pix inspect` found problems in a dataset."""


class UnsafePathError(Pix2PixError):
    """A name read from data (manifest id, params value, URL) would lead outside its folder."""


class OutputOverlapError(ConfigError):
    """An output folder is, contains or lies inside one of the command's inputs."""


class OutputLockedError(Pix2PixError):
    """Another process is writing the same output folder."""

    exit_code = EXIT_IO


_OS_ADVICE = {
    errno.ENOSPC: ("disk full", "free space on that disk (or choose an output on another one) and run again"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota and run again"),
    errno.EROFS: ("read-only file system", "choose an output folder on a writable disk"),
    errno.EACCES: ("permission denied", "choose a folder you may write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a folder you may write to, or fix its permissions"),
}


def describe_os_error(exc: OSError) -> str:
    """One line for a person: the file, what the system said, what to do."""
    name = exc.filename if exc.filename is not None else "?"
    what, advice = _OS_ADVICE.get(exc.errno, (exc.strerror or str(exc), "check that path and run again"))
    return f"{name}: {what}; {advice}"


def unreadable_weights(path: object, exc: BaseException) -> str:
    """Why a file is not loadable weights, in one line and in our terms.

    torch's own message spans lines and suggests ``weights_only=False``, which would run any code
    the file holds: never relayed. What the file starts with usually says what it is instead.
    """
    try:
        with open(path, "rb") as f:  # type: ignore[arg-type]
            head = f.read(64)
    except OSError as e:
        return f"cannot read it ({e.strerror})"
    if not head:
        return "an empty file"
    if head.startswith(b"PK"):
        return "a zip file without plain weights (not saved by torch.save of tensors, or damaged)"
    if head.startswith(b"\x08") and (b"pytorch" in head.lower() or b"onnx" in head.lower()):
        return "an ONNX model, not PyTorch weights (give the .pt/.pth file it was exported from)"
    if head.startswith((b"\xff\xd8", b"\x89PNG", b"GIF8", b"RIFF")):
        return "an image, not PyTorch weights"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "a text file, not PyTorch weights"
    first = " ".join(str(exc).split())[:120]
    return f"not PyTorch weights ({type(exc).__name__}: {first.split(' Re-running')[0].split(' In PyTorch')[0]})"


def exit_code(exc: BaseException) -> int:
    """The exit status of a command that ended with ``exc`` (see ``EXIT_CODES_HELP``)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, Pix2PixError):
        return int(getattr(exc, "exit_code", EXIT_FAILED))
    if isinstance(exc, OSError):
        return EXIT_IO
    return EXIT_FAILED


def error_line(exc: BaseException) -> str:
    """The one ``error: ...`` line a command prints for ``exc``."""
    if isinstance(exc, OSError) and not isinstance(exc, Pix2PixError):
        return f"error: {describe_os_error(exc)}"
    return f"error: {exc}"
