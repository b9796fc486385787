"""One load client for every server: it sends pre-serialised bytes and reads raw bytes, so the
client's own cost is the same whichever server it measures."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class Sample:
    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    failures: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _identity(data: bytes) -> bytes:
    return data


async def closed_loop(target: str, method: str, payload: bytes, concurrency: int,
                      seconds: float, metadata: tuple[tuple[str, str], ...] | None = None,
                      ) -> Sample:
    """`concurrency` callers, each sending its next request when the previous one returns
    (with `metadata`, e.g. a bearer token, on every call)."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=_identity,
                                   response_deserializer=_identity)
        for _ in range(50):  # warm the connection and the server's code paths
            await call(payload, timeout=10, metadata=metadata)
        return await callers(lambda: call(payload, timeout=10, metadata=metadata),
                             grpc.RpcError, concurrency, seconds)


async def callers(once: Callable[[], Awaitable[Any]], failure: type[BaseException],
                  concurrency: int, seconds: float) -> Sample:
    """`concurrency` callers of `once()` for `seconds`, each calling again when its previous
    call returns; a `failure` raised is counted, not fatal."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal failures
        while (now := time.perf_counter()) < deadline:
            try:
                await once()
            except failure:
                failures += 1
            latencies.append(time.perf_counter() - now)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    return Sample(len(latencies), elapsed, quantiles[49] * 1e6, quantiles[98] * 1e6, failures)


async def fire(target: str, method: str, payload: bytes, count: int, concurrency: int = 64,
               ) -> None:
    """Send `count` requests as fast as `concurrency` callers can (for the memory test)."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=_identity,
                                   response_deserializer=_identity)
        remaining = count

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await call(payload, timeout=30)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
