"""Live configuration under load: how fast a change reaches 1,000 open watch streams, what an
open watcher costs in server memory, and resolve throughput while the config reloads once a
second (against the bare floor in the same run)."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from llmconfig.v1 import llmconfig_pb2 as pb

from . import servers
from .bare_server import METHOD as BARE_METHOD
from .load import closed_loop

WATCH = "/llmconfig.v1.LLMConfigService/WatchLLMConfig"
RESOLVE = "/llmconfig.v1.LLMConfigService/ResolveLLMConfig"
WATCHERS = 1000
# A fleet of runners is many connections, not one; the server takes 100 streams per connection
# (--max-concurrent-streams), so each channel has a connection of its own.
CHANNELS = 20


def _config(model: str) -> str:
    return f"local:\n  llm:\n    model: {model}\n"


def _identity(data: bytes) -> bytes:
    return data


def watch_fan_out() -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-live-"))
    path = scratch / "config.yaml"
    path.write_text(_config("llama3.2"))
    llm = servers.llmconfig({}, "--config", str(path))
    try:
        return asyncio.run(_fan_out(llm, path))
    finally:
        llm.stop()
        shutil.rmtree(scratch, ignore_errors=True)


async def _fan_out(llm: servers.ServerProcess, path: Path) -> dict[str, Any]:
    request = pb.WatchLLMConfigRequest().SerializeToString()
    channels = [grpc.aio.insecure_channel(llm.target,
                                          options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(CHANNELS)]
    try:
        rss_before = llm.rss_mb()
        streams = [channels[i % CHANNELS].unary_stream(
            WATCH, request_serializer=_identity, response_deserializer=_identity)(request)
            for i in range(WATCHERS)]
        for stream in streams:
            await stream.read()  # the first event: every stream is open
        await asyncio.sleep(0.5)
        rss_open = llm.rss_mb()
        rounds: list[list[float]] = []
        for model in ("qwen2.5-coder:14b", "llama3.2", "qwen2.5-coder:14b"):
            began = time.perf_counter()
            path.write_text(_config(model))  # seen through the file watcher, as in production

            rounds.append(list(await asyncio.gather(*(_arrival(s, began) for s in streams))))
        for stream in streams:
            stream.cancel()
    finally:
        for channel in channels:
            await channel.close()
    p50 = statistics.median(statistics.median(r) for r in rounds)
    worst = max(max(r) for r in rounds)
    return {"watchers": WATCHERS, "changes": len(rounds), "event_p50_ms": round(p50 * 1e3),
            "event_max_ms": round(worst * 1e3),
            "rss_per_watcher_kb": round((rss_open - rss_before) * 1024 / WATCHERS, 1)}


async def _arrival(stream: Any, began: float) -> float:
    await stream.read()
    return time.perf_counter() - began


def throughput_while_reloading(rounds: int, seconds: float) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-reload-"))
    path = scratch / "config.yaml"
    path.write_text(_config("llama3.2"))
    bare, llm = servers.bare(), servers.llmconfig({}, "--config", str(path))
    stop = threading.Event()
    reloads = [0]

    def edit_every_second() -> None:
        models = ("llama3.2", "qwen2.5-coder:14b")
        while not stop.wait(1.0):
            reloads[0] += 1
            path.write_text(_config(models[reloads[0] % 2]))

    payload = pb.ResolveLLMConfigRequest().SerializeToString()
    floor_runs, llm_runs = [], []
    editor = threading.Thread(target=edit_every_second, daemon=True)
    editor.start()
    try:
        for _ in range(rounds):
            floor_runs.append(asyncio.run(closed_loop(bare.target, BARE_METHOD, payload, 16,
                                                      seconds)))
            llm_runs.append(asyncio.run(closed_loop(llm.target, RESOLVE, payload, 16, seconds)))
    finally:
        stop.set()
        editor.join()
        bare.stop()
        llm.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    floor = statistics.median(s.rps for s in floor_runs)
    ours = statistics.median(s.rps for s in llm_runs)
    return {"concurrency": 16, "config_edits": reloads[0], "floor_rps": round(floor),
            "rps": round(ours), "rps_ratio": round(ours / floor, 3),
            "failed_calls": sum(s.failures for s in llm_runs)}
