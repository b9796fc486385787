"""Where the server listens: `HOST:PORT` (TCP) or `unix:PATH` (a Unix socket), and whether an
address can be reached from beyond this machine — which decides whether tokens and TLS are
required (see access.py)."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from llmconfig_server.resolve.network import is_loopback

UNIX_PREFIX: Final = "unix:"
SOCKET_MODE: Final = 0o660  # owner and group: the daemon shares the socket with its runners


class ListenError(Exception):
    """The address cannot be served on (in use, not an address of this machine, malformed)."""


class ListenSpecError(ValueError):
    """The address is not written as HOST:PORT or unix:PATH."""


@dataclass(frozen=True, slots=True)
class Listener:
    spec: str  # as the operator wrote it
    host: str = ""  # TCP only, without brackets
    port: int = 0
    path: Path | None = None  # Unix socket only

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    @property
    def is_loopback(self) -> bool:
        """A Unix socket or a TCP address only this machine can reach."""
        if self.is_unix:
            return True
        # 0.0.0.0 and :: listen on every interface; a host name may resolve to anything.
        return is_loopback(self.host, listen=True)

    @property
    def grpc_address(self) -> str:
        if self.path is not None:
            return f"{UNIX_PREFIX}{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def bound(self, port: int) -> str:
        """How to reach it once bound (port 0 resolved), as clients write the target."""
        if self.path is not None:
            return f"{UNIX_PREFIX}{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{port}"


def parse_listener(spec: str) -> Listener:
    text = spec.strip()
    if text.startswith(UNIX_PREFIX):
        raw = text[len(UNIX_PREFIX):]
        if raw.startswith("//"):  # unix:///run/x.sock, as gRPC also accepts
            raw = raw[2:]
        if not raw or "\x00" in raw:
            raise ListenSpecError(f"{spec!r} names no socket path; write unix:/run/llmconfig.sock")
        return Listener(text, path=Path(raw).absolute())
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ListenSpecError(f"{spec!r} is not HOST:PORT or unix:PATH, e.g. 127.0.0.1:50061")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenSpecError(f"{spec!r}: write an IPv6 address in brackets, e.g. [::1]:50061")
    if not (port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535):
        raise ListenSpecError(f"{spec!r}: the port must be a number between 0 and 65535")
    return Listener(text, host=host, port=int(port_text))


def prepare_unix_socket(listener: Listener) -> None:
    """Make way for the socket: replace a stale one left by a dead server; refuse to take over a
    live one or anything that is not a socket. (gRPC itself would silently unlink a live one.)"""
    path = listener.path
    assert path is not None
    if not path.parent.is_dir():
        raise ListenError(f"cannot listen on {listener.spec}: {path.parent} is not a directory")
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenError(f"cannot listen on {listener.spec}: {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise ListenError(f"cannot listen on {listener.spec}: {exc.strerror}") from None
        else:
            raise ListenError(f"cannot listen on {listener.spec}: another server is serving "
                              "on it (stop it first, or choose another path)")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: nobody answers on it


def restrict_unix_socket(listener: Listener) -> None:
    assert listener.path is not None
    os.chmod(listener.path, SOCKET_MODE)
