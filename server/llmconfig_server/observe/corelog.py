"""gRPC core's own log lines, through ours: rate-limited, and in the format of --log-format.

gRPC's C core logs through absl, straight to file descriptor 2, one `I1202 06:01:53.287904
32491 ssl_transport_security.cc:2563] Handshake failed …` line per event; Python cannot install
a sink for it (grpcio exposes none). A TLS listener writes one such line per failed handshake,
which anyone who can connect causes (400 lines in 1.4 s, measured). So the process's fd 2 becomes
a pipe read by a thread that turns each line into a record of the `grpc` logger (level from
the line's first letter), at most LIMIT lines per source location every WINDOW seconds, then
one line saying how many more there were. Python's own stderr keeps the real fd 2.

Only `llmconfig-server` itself does this (tests share their interpreter's stderr).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import select
import sys
import threading
import time
from typing import Final

LIMIT: Final = 5  # lines per source location…
WINDOW: Final = 10.0  # …per this many seconds
# absl: severity, MMDD hh:mm:ss.micros, thread id, file:line] message
_ABSL: Final = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]\s]+:\d+)\] ?(.*)$")
_LEVELS: Final = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR,
                  "F": logging.CRITICAL}
_LINE_LIMIT: Final = 4096

log = logging.getLogger("grpc")


class _Limiter:
    """LIMIT lines per key per WINDOW; what was held back is counted and said once."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int, int]] = {}  # key → (start, shown, held)

    def admit(self, key: str, now: float) -> bool:
        start, shown, held = self._windows.get(key, (now, 0, 0))
        if now - start >= WINDOW:
            self._report(key, held)
            start, shown, held = now, 0, 0
        if shown < LIMIT:
            self._windows[key] = (start, shown + 1, held)
            return True
        self._windows[key] = (start, shown, held + 1)
        return False

    def flush(self, now: float, everything: bool = False) -> None:
        for key, (start, _shown, held) in list(self._windows.items()):
            if everything or now - start >= WINDOW:
                self._report(key, held)
                self._windows.pop(key, None)

    @staticmethod
    def _report(key: str, held: int) -> None:
        if held:
            log.warning("gRPC logged %d more lines from %s in %g s; not shown", held, key,
                        WINDOW, extra={"source": key, "suppressed": held})


_limiter = _Limiter()


def flush() -> None:
    """Say what is still held back (at shutdown: its window may not have ended)."""
    time.sleep(0.1)  # the relay's last lines
    _limiter.flush(time.monotonic(), everything=True)


def route_native_stderr() -> None:
    """From now on, what the C core writes to fd 2 reaches the log (see the module's doc).
    Call before logging is configured: Python's own stderr is moved to a copy of fd 2."""
    try:
        kept = os.dup(2)
        reading, writing = os.pipe()
    except OSError:
        return  # leave stderr as it is rather than lose it
    os.dup2(writing, 2)
    os.close(writing)
    sys.stderr = io.TextIOWrapper(os.fdopen(kept, "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True)
    threading.Thread(target=_relay, args=(reading, kept), name="grpc-core-log",
                     daemon=True).start()


def _relay(reading: int, kept: int) -> None:
    limiter = _limiter
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([reading], [], [], 1.0)
            now = time.monotonic()
            if ready:
                chunk = os.read(reading, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > _LINE_LIMIT:  # no newline in sight: take it as a line
                    lines.append(pending)
                    pending = b""
                for raw in lines:
                    _emit(raw.decode("utf-8", "backslashreplace")[:_LINE_LIMIT], limiter, now)
            limiter.flush(now)
    except Exception:  # never leave the core writing into a pipe nobody reads
        with contextlib.suppress(OSError):
            os.dup2(kept, 2)


def _emit(line: str, limiter: _Limiter, now: float) -> None:
    text = line.rstrip("\r")
    if not text.strip():
        return
    if match := _ABSL.match(text):
        letter, source, message = match.groups()
        if limiter.admit(source, now):
            log.log(_LEVELS[letter], "%s", message, extra={"source": source})
    elif limiter.admit("stderr", now):  # not absl's: whatever else wrote to fd 2
        log.warning("%s", text, extra={"source": "stderr"})
