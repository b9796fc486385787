"""What a caller can make the server hold, and what a change costs everyone else while it fans
out to thousands of watch streams (issue 15, row 2). A measurement, not a test.

1. Without a token: grpc.health.v1 Watch streams opened until the server refuses them, and
   2,000 streams asking for a 60 KB service name: how many were held and the server's RSS growth.
2. With a token: 5,000 WatchLLMConfig streams (50 connections of 100), RSS per stream; then
   three config edits, each reaching all of them, while 4 bystanders call ResolveLLMConfig in a
   closed loop: the bystanders' p50/p99 idle and during each fan-out (the calls in flight at
   any moment between the edit and the last stream's event), and how long the last stream
   waited.

`python -m bench.attack` prints the numbers as JSON and writes bench/attack.json. Servers are
processes of their own, pinned to core 0; this client runs on core 1.
"""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from llmconfig.v1 import llmconfig_pb2 as pb

from . import servers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "attack.json"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
WATCH = "/llmconfig.v1.LLMConfigService/WatchLLMConfig"
RESOLVE = "/llmconfig.v1.LLMConfigService/ResolveLLMConfig"
PER_CONNECTION = 100  # what --max-concurrent-streams allows by default
WAVE = 100  # streams opened at once (a burst of thousands is the transport's problem, row 5)
TOKEN = "llmc_bench-attack-token"


def _identity(data: bytes) -> bytes:
    return data


def _tokens_file(folder: Path) -> Path:
    import hashlib

    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    path = folder / "tokens.yaml"
    path.write_text(f"tokens:\n  - name: bench\n    sha256: {digest}\n    scopes: [resolve]\n")
    return path


async def _open(target: str, method: str, payloads: list[bytes],
                metadata: tuple[tuple[str, str], ...] | None = None,
                ) -> tuple[list[Any], list[Any], collections.Counter[str]]:
    """Open one stream per payload, PER_CONNECTION to a connection, WAVE at a time; the
    streams that delivered their first message, the channels, and the codes of the rest."""
    channels: list[Any] = []
    held: list[Any] = []
    refused: collections.Counter[str] = collections.Counter()
    for start in range(0, len(payloads), WAVE):
        wave = []
        for index in range(start, min(start + WAVE, len(payloads))):
            if index % PER_CONNECTION == 0:
                channels.append(grpc.aio.insecure_channel(target))
            call = channels[-1].unary_stream(method, request_serializer=_identity,
                                             response_deserializer=_identity)
            wave.append(call(payloads[index], metadata=metadata))
        for stream in wave:
            try:
                await asyncio.wait_for(stream.read(), 30)
                held.append(stream)
            except grpc.RpcError as exc:
                refused[exc.code().name] += 1
            except TimeoutError:
                refused["(no first message in 30 s)"] += 1
    return held, channels, refused


async def _close(streams: list[Any], channels: list[Any]) -> None:
    for stream in streams:
        stream.cancel()
    for channel in channels:
        await channel.close()


def tokenless_health_watch(count: int = 6000) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-attack-"))
    server = servers.llmconfig({}, "--tokens-file", str(_tokens_file(scratch)))

    async def run() -> dict[str, Any]:
        before = server.rss_mb()
        payload = health_pb2.HealthCheckRequest().SerializeToString()
        held, channels, refused = await _open(server.target, HEALTH_WATCH, [payload] * count)
        await asyncio.sleep(1)
        after = server.rss_mb()
        await _close(held, channels)
        return {"asked": count, "held": len(held), "refused": dict(refused),
                "rss_before_mb": round(before, 1), "rss_growth_mb": round(after - before, 1),
                "kb_per_held_stream": round((after - before) * 1024 / max(len(held), 1), 1)}

    try:
        return asyncio.run(run())
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def tokenless_padded_names(count: int = 2000, size: int = 60_000) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-attack-"))
    server = servers.llmconfig({}, "--tokens-file", str(_tokens_file(scratch)))

    async def run() -> dict[str, Any]:
        before = server.rss_mb()
        began = time.perf_counter()
        payloads = [health_pb2.HealthCheckRequest(service=f"{i:08d}" + "x" * size)
                    .SerializeToString() for i in range(count)]
        held, channels, refused = await _open(server.target, HEALTH_WATCH, payloads)
        took = time.perf_counter() - began
        await asyncio.sleep(1)
        after = server.rss_mb()
        await _close(held, channels)
        return {"asked": count, "name_bytes": size, "held": len(held),
                "refused": dict(refused), "seconds": round(took, 1),
                "rss_growth_mb": round(after - before, 1)}

    try:
        return asyncio.run(run())
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _supports(flag: str) -> bool:
    """Whether the server under test has `flag` (the same bench measures the code before it)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "llmconfig_server", "--help"],
                          capture_output=True, text=True, timeout=60)
    return flag in done.stdout


def _config(model: str) -> str:
    return f"local:\n  llm:\n    model: {model}\n"


async def _bystanders(target: str, seconds: float, concurrency: int = 4,
                      ) -> list[tuple[float, float, bool]]:
    """(start, latency, ok) of every call of `concurrency` closed-loop ResolveLLMConfig callers,
    measured by a process of their own: this one is busy reading the watch streams, and its
    event loop's delays must not count as the server's."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.attack", "--bystanders", target, str(seconds),
        str(concurrency), stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        preexec_fn=servers.pin_client)
    out, _ = await proc.communicate()
    return [tuple(call) for call in json.loads(out)]  # type: ignore[misc]


async def _bystanders_here(target: str, seconds: float, concurrency: int,
                           ) -> list[tuple[float, float, bool]]:
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    payload = pb.ResolveLLMConfigRequest().SerializeToString()
    calls: list[tuple[float, float, bool]] = []
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(RESOLVE, request_serializer=_identity,
                                   response_deserializer=_identity)
        for _ in range(20):
            await call(payload, timeout=30, metadata=metadata)
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            while (now := time.perf_counter()) < deadline:
                ok = True
                try:
                    await call(payload, timeout=30, metadata=metadata)
                except grpc.RpcError:
                    ok = False
                calls.append((now, time.perf_counter() - now, ok))

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return calls


def _quantiles_ms(latencies: list[float]) -> dict[str, float]:
    if len(latencies) < 2:
        return {"calls": len(latencies)}
    q = statistics.quantiles(latencies, n=100)
    return {"calls": len(latencies), "p50_ms": round(q[49] * 1e3, 2),
            "p99_ms": round(q[98] * 1e3, 2), "max_ms": round(max(latencies) * 1e3, 2)}


def fan_out(watchers: int = 5000, edits: int = 3) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-attack-"))
    config = scratch / "config.yaml"
    config.write_text(_config("llama3.2"))
    limit = ["--max-watch-streams", str(watchers)] if _supports("--max-watch-streams") else []
    server = servers.llmconfig({}, "--tokens-file", str(_tokens_file(scratch)), "--config",
                               str(config), *limit)

    async def run() -> dict[str, Any]:
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        before = server.rss_mb()
        payload = pb.WatchLLMConfigRequest().SerializeToString()
        held, channels, refused = await _open(server.target, WATCH, [payload] * watchers,
                                              metadata)
        await asyncio.sleep(1)
        rss_open = server.rss_mb()
        idle = await _bystanders(server.target, 2.0)
        rounds = []
        try:
            for n in range(edits):
                model = ("qwen2.5-coder:14b", "llama3.2")[n % 2]
                bystanders = asyncio.ensure_future(_bystanders(server.target, 7.0))
                await asyncio.sleep(2.0)  # the bystanders' process is up and calling
                began = time.perf_counter()
                config.write_text(_config(model))  # seen through the file watcher

                async def arrival(stream: Any) -> float:
                    await stream.read()
                    return time.perf_counter()

                arrivals = await asyncio.gather(*(arrival(s) for s in held))
                last = max(arrivals)
                calls = await bystanders
                # every call that was in flight at some moment of the fan-out
                during = [lat for start, lat, _ in calls if start <= last and start + lat >= began]
                rounds.append({"last_event_ms": round((last - began) * 1e3),
                               "p50_event_ms": round((statistics.median(arrivals) - began)
                                                     * 1e3),
                               "bystanders_during": _quantiles_ms(during),
                               "bystander_failures": sum(not ok for *_, ok in calls)})
        finally:
            await _close(held, channels)
        return {"watchers": watchers, "held": len(held), "refused": dict(refused),
                "rss_per_watcher_kb": round((rss_open - before) * 1024 / max(len(held), 1), 1),
                "rss_growth_mb": round(rss_open - before, 1),
                "bystanders_idle": _quantiles_ms([lat for _, lat, _ in idle]),
                "edits": rounds}

    try:
        return asyncio.run(run())
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["--bystanders"]:  # the bystanders' own process (see _bystanders)
        target, seconds, concurrency = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(asyncio.run(_bystanders_here(target, seconds, concurrency))))
        return
    servers.pin_client()
    results = {}
    for name, fn in (("tokenless_health_watch", tokenless_health_watch),
                     ("tokenless_padded_names", tokenless_padded_names),
                     ("fan_out", fan_out)):
        print(f"{name} …", flush=True)
        results[name] = fn()
        print(json.dumps(results[name], indent=1), flush=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
