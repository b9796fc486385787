"""The WatchLLMConfig stream, resumed after any end its caller did not cause (a restart, a
broken connection, a server at its limit) with backoff and the server's pushback; an answer
about the request itself (invalid, unauthenticated, denied, …) is raised as its typed error.
One loop for blocking callers and one for asyncio: `watch()` reads them, and so does the
watched client's memory (`_watched.py`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import grpc

from ._channel import ANSWERS, pushback
from ._errors import ServiceUnavailable, from_rpc_error
from .v1 import llmconfig_pb2 as pb

# The revision a WatchLLMConfig stream starts from, in its initial metadata (docs/live.md).
REVISION_HEADER = "llmconfig-revision"


def events(stub: Any, channel: grpc.Channel, metadata: Any, request: pb.WatchLLMConfigRequest,
           target: str, unreachable_after: float | None) -> Iterator[pb.WatchLLMConfigEvent]:
    """Each event of `request`'s stream, resumed with the last revision seen, so nothing is
    missed and nothing repeated. With `unreachable_after`, raises ServiceUnavailable once the
    service cannot be reached for that many seconds. `request` is the loop's own."""
    backoff = Backoff()
    while True:
        if unreachable_after is not None:
            try:
                grpc.channel_ready_future(channel).result(timeout=unreachable_after)
            except grpc.FutureTimeoutError:
                raise unreachable(target, unreachable_after) from None
        call = stub.WatchLLMConfig(request, metadata=metadata,
                                   wait_for_ready=unreachable_after is None)
        delay = backoff.next()
        try:
            for event in call:
                backoff.reset()
                request.known_revision = _revision(event)
                yield event
        except grpc.RpcError as exc:
            if exc.code() in ANSWERS:
                raise from_rpc_error(exc) from None
            delay = max(delay, pushback(exc))
        finally:
            call.cancel()
        time.sleep(delay)


async def aevents(stub: Any, metadata: Any, request: pb.WatchLLMConfigRequest, *,
                  channel: grpc.aio.Channel | None = None, target: str = "",
                  unreachable_after: float | None = None, remember_revision: bool = True,
                  on_open: Callable[[str | None], None] | None = None,
                  on_end: Callable[[], None] | None = None,
                  ) -> AsyncGenerator[pb.WatchLLMConfigEvent, None]:
    """As `events`, for asyncio. `remember_revision=False` leaves `request.known_revision` to
    the caller. `on_open` is told, each time a stream opens, the revision the server says it
    starts from (its `llmconfig-revision` header; None from a server that sends none, or when
    the call failed before its headers); `on_end` each time the stream ends and is about to
    resume."""
    backoff = Backoff()
    while True:
        if unreachable_after is not None and channel is not None:
            try:
                await asyncio.wait_for(channel.channel_ready(), unreachable_after)
            except TimeoutError:
                raise unreachable(target, unreachable_after) from None
        call = stub.WatchLLMConfig(request, metadata=metadata,
                                   wait_for_ready=unreachable_after is None)
        delay = backoff.next()
        try:
            if on_open is not None:
                on_open(_header(await call.initial_metadata()))
            async for event in call:
                backoff.reset()
                if remember_revision:
                    request.known_revision = _revision(event)
                yield event
        except grpc.RpcError as exc:
            if exc.code() in ANSWERS:
                raise from_rpc_error(exc) from None
            delay = max(delay, pushback(exc))
        finally:
            call.cancel()
        if on_end is not None:
            on_end()
        await asyncio.sleep(delay)


def _header(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == REVISION_HEADER:
            return str(value)
    return None


def _revision(event: pb.WatchLLMConfigEvent) -> str:
    return event.config.revision if event.HasField("config") else ""


def unreachable(target: str, seconds: float) -> ServiceUnavailable:
    return ServiceUnavailable(grpc.StatusCode.UNAVAILABLE,
                              f"the llmconfig service at {target} could not be reached for "
                              f"{seconds:g} s")


class Backoff:
    """Exponential with full jitter, 0.1 s → 5 s, so a fleet of watchers does not reconnect
    in lockstep after a restart."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.current = first, cap, first

    def reset(self) -> None:
        self.current = self.first

    def next(self) -> float:
        delay = random.uniform(0, self.current)
        self.current = min(self.current * 2, self.cap)
        return delay
