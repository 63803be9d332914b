"""Error hierarchy. A ``StreamreconError`` is a user-facing problem: the CLI prints its message on
one line (no traceback) and exits with its ``exit_code``. Messages say what is wrong and how to
fix it."""
from __future__ import annotations


class StreamreconError(Exception):
    """Base of every error the CLI reports as a one-line message."""

    exit_code = 1


class UserInputError(StreamreconError, ValueError):
    """Bad input from the user: a missing file, an unreadable image, a malformed rect, a bad flag."""

    exit_code = 2


class CheckpointError(StreamreconError):
    """A checkpoint that is missing, truncated, of the wrong kind, or refused as unsafe."""

    exit_code = 3


class SourceError(StreamreconError):
    """A video source that cannot be opened or read (missing camera, broken file, bad codec)."""

    exit_code = 4


class BackendUnavailableError(StreamreconError):
    """An explicitly requested backend (tensorrt, onnxruntime, ...) cannot be loaded here."""

    exit_code = 5


class ProtocolError(StreamreconError, ValueError):
    """A network message that does not follow the wire format (bad magic, version, sizes)."""

    exit_code = 6


class ResourceError(StreamreconError):
    """A request that would not fit in memory (refused up front with the estimate)."""

    exit_code = 7


class OutputError(StreamreconError, OSError):
    """An output that cannot be written (read-only or full disk, no free inodes, a folder where a
    file should go, no permission). The message names the path, the reason and what to do; it is
    also an ``OSError`` so library callers that catch those keep working. ``errno``: the cause's
    error number (None when there was no system error); ``path``: the output that failed."""

    exit_code = 8

    def __init__(self, message: str, errno: "int | None" = None, path: "str | None" = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.path = path

    def __str__(self) -> str:  # the message only (OSError's own form would be "[Errno N] ...")
        return str(self.args[0]) if self.args else ""
