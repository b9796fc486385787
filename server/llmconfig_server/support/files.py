"""Reading operator-supplied files (config, secrets, tokens, TLS) without hanging or exploding.

Only regular files are read (a FIFO would block forever, `/dev/zero` never ends), with a size
cap, and the problem is said in one line that never contains the file's content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

# Generous for a config file, a key or a certificate chain; tiny next to a runaway file.
DEFAULT_LIMIT: Final = 1024 * 1024


class FileProblem(Exception):
    """Why a file cannot be used, in words fit for one line of a startup error."""


def read_bytes(path: str | Path, *, limit: int = DEFAULT_LIMIT) -> bytes:
    """The content of the regular file at `path` (symlinks followed), at most `limit` bytes."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not block; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileProblem(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem(f"{path} is not a regular file ({_kind(info.st_mode)})")
        if info.st_size > limit:
            raise FileProblem(f"{path} is {info.st_size} bytes, more than the {_size(limit)} "
                              "allowed")
        chunks, total = [], 0
        while chunk := os.read(fd, min(65536, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while we read it
                raise FileProblem(f"{path} is more than the {_size(limit)} allowed")
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)


def read_text(path: str | Path, *, limit: int = DEFAULT_LIMIT) -> str:
    """The file as UTF-8 text; a leading byte-order mark (Windows editors add one) is dropped."""
    data = read_bytes(path, limit=limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"{path} is not UTF-8 text (byte {exc.start})") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
