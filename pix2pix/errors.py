"""Typed errors. Only the CLI maps them to exit codes."""

from __future__ import annotations


class Pix2PixError(Exception):
    """Base of all errors of this package."""


class ConfigError(Pix2PixError, ValueError):
    """A configuration value is invalid; the message names the key and what would work."""


class SourceError(Pix2PixError):
    """A dataset source cannot be read or recognised."""


class UnsafeArchiveError(SourceError):
    """An archive entry would escape the extraction folder or is not a regular file/folder."""


class OutputExistsError(Pix2PixError):
    """The output folder exists and is not empty, and overwriting was not asked for."""


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
