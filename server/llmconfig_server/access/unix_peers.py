"""Who is on the other end of the server's Unix sockets, for the audit line.

gRPC does not say: a Unix caller's peer string is just `unix:` and its auth context holds only
the transport security type (even with local credentials), so a call cannot be tied to its
connection. The kernel does know each connection's peer (SO_PEERCRED, fixed at connect()), and
the connections are file descriptors of this process: the uids of everyone connected to our
sockets right now are read from those, and the call came from one of them. With one uid
connected (the usual case: the daemon and its runners) that is the caller's uid exactly.

Reading them costs a system call per open descriptor, so the answer is reused for a quarter of
a second: a change reaching thousands of keyed watch streams audits each of them, and must not
scan the descriptor table each time. (A caller of another uid whose connection is younger than
that may be missed in its first audit line.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Iterable
from typing import Final

_UCRED: Final = struct.Struct("3i")  # pid, uid, gid
_FD_DIR: Final = "/proc/self/fd"
REUSE_SECONDS: Final = 0.25


class UnixPeers:
    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = frozenset(paths)
        # Descriptors seen, by (fd, socket inode): the peer's uid, or None for another socket.
        self._known: dict[tuple[int, str], int | None] = {}
        self._found: tuple[int, ...] = ()
        self._at = float("-inf")

    def uids(self) -> tuple[int, ...]:
        """The distinct uids connected to our Unix sockets now (empty: unknown)."""
        now = time.monotonic()
        if now - self._at >= REUSE_SECONDS:
            self._found, self._at = self._scan(), now
        return self._found

    def _scan(self) -> tuple[int, ...]:
        if not self.paths:
            return ()
        try:
            names = os.listdir(_FD_DIR)
        except OSError:
            return ()  # not Linux, or no /proc
        known: dict[tuple[int, str], int | None] = {}
        for name in names:
            fd = int(name)
            try:
                link = os.readlink(f"{_FD_DIR}/{name}")
            except OSError:
                continue
            if not link.startswith("socket:"):
                continue
            key = (fd, link)
            known[key] = self._known[key] if key in self._known else self._peer_uid(fd)
        self._known = known
        return tuple(sorted({uid for uid in known.values() if uid is not None}))

    def describe(self) -> str:
        """`uid=1000`, `uid=1000|1001` (one of them), or `uid=?`."""
        found = self.uids()
        return "uid=" + ("|".join(map(str, found)) if found else "?")

    def _peer_uid(self, fd: int) -> int | None:
        """The peer's uid when `fd` is a connection accepted on one of our sockets."""
        try:
            copy = os.dup(fd)  # never close gRPC's own descriptor
        except OSError:
            return None
        try:
            sock = socket.socket(fileno=copy)
        except OSError:
            os.close(copy)
            return None
        with sock, contextlib.suppress(OSError):
            if sock.family != socket.AF_UNIX or sock.getsockname() not in self.paths:
                return None
            sock.getpeername()  # raises for the listening socket itself
            _pid, uid, _gid = _UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            return int(uid)
        return None
