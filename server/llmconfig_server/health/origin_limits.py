"""How often this server may ask one provider origin (scheme, host and port) anything: a rate of
upstream requests with a small burst, shared by every probe and model listing, and a pause
after the provider answers 429, as long as its `Retry-After` says (seconds or an HTTP date).

A caller picks the model, and a caller with a health-only token may ask about a thousand models:
without this, each distinct model is one more keyed request upstream, even while the provider
answers 429. A request that cannot go (the origin is paused, or its turn would come too late)
is refused here, before anything is sent; the probe answers RATE_LIMITED.

The rate is a generic cell rate algorithm: each origin keeps the time its next request is due
(`due`); a request may go when `due` is at most `burst - 1` intervals ahead of now, and pushes
`due` one interval further. Pure Python, no httpx: the health module holds it from start-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

DEFAULT_RATE: Final = 10.0  # upstream requests a second to one origin
MAX_RATE: Final = 10_000.0
MAX_PAUSE: Final = 600.0  # a Retry-After longer than this is taken as this
DEFAULT_PAUSE: Final = 1.0  # a 429 without a usable Retry-After
_ORIGINS: Final = 4096  # origins remembered; idle ones are forgotten first


class Limited(Exception):
    """The request may not go now; `message` says why and when to retry (one sentence)."""

    def __init__(self, message: str, paused: bool) -> None:
        super().__init__(message)
        self.message = message
        self.paused = paused  # the provider asked for the pause (429), not our own rate


class OriginLimits:
    def __init__(self, rate: float = DEFAULT_RATE, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1, round(2 * rate))
        self.interval = 1.0 / rate
        self._clock = clock
        self._due: dict[str, float] = {}  # origin → when its next request is due
        self._paused: dict[str, tuple[float, str]] = {}  # origin → (until, as said upstream)

    def admit(self, origin: str, longest_wait: float) -> float:
        """Reserve a turn for one request to `origin`: the seconds to wait before sending it
        (0.0: now). Raises Limited when the origin is paused or the turn is more than
        `longest_wait` seconds away (nothing is reserved then)."""
        now = self._clock()
        if (pause := self._paused.get(origin)) is not None:
            until, said = pause
            if until > now:
                raise Limited(
                    f"{origin} answered 429 (too many requests){said}; this server does not ask "
                    f"it again for {until - now:.0f} s more — retry after that", paused=True)
            del self._paused[origin]
        due = max(self._due.get(origin, now), now)
        wait = due - (self.burst - 1) * self.interval - now
        if wait > longest_wait:
            raise Limited(
                f"this server sends {origin} at most {self.rate:g} requests a second "
                "(--probe-rate) and has used them — retry shortly", paused=False)
        if origin not in self._due and len(self._due) >= _ORIGINS:
            self._forget_idle(now)
        self._due[origin] = due + self.interval
        return max(wait, 0.0)

    def pause(self, origin: str, retry_after: str | None) -> float:
        """The origin answered 429: ask it nothing for as long as `retry_after` (the header's
        value) says, within MAX_PAUSE; DEFAULT_PAUSE without a usable one. Returns the pause."""
        seconds = _seconds(retry_after)
        said = f" with Retry-After {retry_after.strip()[:40]!r}" if seconds is not None and \
            retry_after else ""
        pause = min(seconds if seconds is not None else DEFAULT_PAUSE, MAX_PAUSE)
        now = self._clock()
        if origin not in self._paused and len(self._paused) >= _ORIGINS:
            self._paused = {o: p for o, p in self._paused.items() if p[0] > now}
            if len(self._paused) >= _ORIGINS:
                return 0.0  # a flood of origins: their own rate still holds
        until = now + pause
        if until > self._paused.get(origin, (0.0, ""))[0]:
            self._paused[origin] = (until, said)
        return pause

    def _forget_idle(self, now: float) -> None:
        self._due = {o: d for o, d in self._due.items() if d > now}
        while len(self._due) >= _ORIGINS:  # all busy: forget the one due soonest
            del self._due[min(self._due, key=self._due.__getitem__)]


def _seconds(value: str | None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date; None when unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value[:7])  # more than 9,999,999 s is MAX_PAUSE anyway
    try:
        when = parsedate_to_datetime(value[:64])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
