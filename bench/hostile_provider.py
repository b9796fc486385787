"""What a hostile provider (or a caller asking about many models) costs a server process:

- peak RSS growth (VmHWM) for one check of an Ollama answering a 400 MiB body, and a gzip
  that inflates to 500 MiB;
- the time from asking to the verdict for the gzip bomb with --probe-timeout 5;
- upstream requests a second that callers asking about distinct models (32 at a time, for
  SECONDS) drive at a keyed provider (Anthropic's API, emulated), and the same while it answers
  429 with Retry-After: 1;
- 500 distinct checks at once with a 0.5 s deadline against a host that never answers: how many
  get their TIMEOUT verdict, how many miss the deadline (the count tests must not assert).

`BENCH_SRC=/path/to/checkout` runs that checkout's server instead (e.g. main, for the "before"
figures); flags it does not know (--probe-rate) are left out. A measurement, not a test:
`make bench-hostile`. Prints JSON and writes bench/hostile-provider.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from llmconfig.v1 import llmconfig_pb2 as pb  # noqa: E402
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc  # noqa: E402

import providers  # noqa: E402

KEY = "sk-ant-api03-BENCHkeyBENCHkeyBENCHkey-f2c9"
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
SRC = os.environ.get("BENCH_SRC", "")


class Server:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        environ = {"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "LANG": "C.UTF-8",
                   "PYTHONUNBUFFERED": "1", **env}
        if SRC:
            environ["PYTHONPATH"] = f"{SRC}/server:{SRC}/client"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmconfig_server", "--listen", "127.0.0.1:0",
             "--models-refresh-interval", "0", *args],
            env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                if "serving on" in line:
                    ready.set()
        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(30):
            raise RuntimeError("".join(self.lines))
        match = next(m for line in self.lines if (m := re.search(r"serving on (\S+)", line)))
        self.target = match.group(1)

    def peak_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def rate_args(rate: str) -> list[str]:
    return [] if SRC else ["--probe-rate", rate]


async def checks(target: str, models: list[str], timeout: float, concurrency: int,
                 ) -> Counter[str]:
    channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(concurrency // 90 + 1)]
    stubs = [pb_grpc.LLMConfigServiceStub(c) for c in channels]
    queue = models  # shared: a caller may clear it to stop the workers
    codes: Counter[str] = Counter()

    async def worker(n: int) -> None:
        while queue:
            model = queue.pop()
            try:
                answer = await stubs[n % len(stubs)].CheckProviderHealth(
                    pb.CheckProviderHealthRequest(model=model), timeout=timeout)
                codes[pb.HealthStatus.Name(answer.status)] += 1
            except grpc.aio.AioRpcError as exc:
                codes[exc.code().name] += 1
    try:
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    finally:
        for channel in channels:
            await channel.close()
    return codes


def one_check(target: str, base_url: str = "", timeout: float = 120) -> tuple[str, float]:
    async def run() -> tuple[str, float]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.LLMConfigServiceStub(channel)
            began = time.perf_counter()
            answer = await stub.CheckProviderHealth(
                pb.CheckProviderHealthRequest(base_url=base_url), timeout=timeout)
            return pb.HealthStatus.Name(answer.status), time.perf_counter() - began
    return asyncio.run(run())


def hostile_answer(reply: providers.Reply, timeout: str) -> dict[str, Any]:
    hostile = providers.ollama()
    for path in ("/api/version", "/api/tags"):
        hostile.override(path, reply)
    sane = providers.ollama()
    server = Server(["--probe-timeout", timeout, "--allow-any-probe-target"],
                    {"OLLAMA_BASE_URL": hostile.url})
    try:
        one_check(server.target, sane.url)  # warm-up: httpx loaded, a connection pool made
        before = server.peak_mb()
        status, took = one_check(server.target)
        return {"status": status, "seconds_to_verdict": round(took, 2),
                "peak_rss_growth_mb": round(server.peak_mb() - before, 1),
                "peak_rss_mb": round(server.peak_mb(), 1)}
    finally:
        server.stop()
        hostile.stop()
        sane.stop()


def upstream_rate(claude: providers.Emulator, rate: str) -> dict[str, Any]:
    server = Server(rate_args(rate), {"ANTHROPIC_BASE_URL": claude.url,
                                      "ANTHROPIC_API_KEY": KEY, "MODE": "cloud"})
    try:
        one_check(server.target)  # warm-up: httpx loaded
        claude.requests.clear()
        models = [f"claude-bench-{n}" for n in range(1_000_000)]

        async def run() -> Counter[str]:
            task = asyncio.ensure_future(checks(server.target, models, 5.0, 32))
            await asyncio.sleep(SECONDS)
            count = len(claude.requests)
            models.clear()  # the workers stop after their current call
            await task
            return Counter({"upstream_requests": count})
        sent = asyncio.run(run())["upstream_requests"]
        return {"upstream_requests_per_second": round(sent / SECONDS, 1)}
    finally:
        server.stop()
        claude.stop()


def deadline_burst() -> dict[str, Any]:
    hole = providers.BlackHole()
    server = Server(rate_args("10000"), {"OLLAMA_BASE_URL": hole.url})
    try:
        asyncio.run(checks(server.target, ["warm-up"], 5.0, 1))
        codes = asyncio.run(checks(server.target, [f"qwen-{n}:7b" for n in range(500)], 0.5, 500))
        return dict(codes)
    finally:
        server.stop()
        hole.stop()


def main() -> None:
    steps = {
        "400 MiB body": lambda: hostile_answer(providers.huge_body(), "30"),
        "gzip bomb (500 MiB), --probe-timeout 5": lambda: hostile_answer(providers.gzip_bomb(),
                                                                         "5"),
        "distinct models, default --probe-rate": lambda: upstream_rate(
            providers.anthropic(KEY), "10"),
        "distinct models, --probe-rate 10000": lambda: upstream_rate(
            providers.anthropic(KEY), "10000"),
        "distinct models, upstream answers 429 Retry-After 1": lambda: upstream_rate(
            providers.Emulator(lambda request: providers.too_many_requests("1")), "10"),
        "500 distinct checks at a 0.5 s deadline, host never answers": deadline_burst,
    }
    only = sys.argv[1:]
    results: dict[str, Any] = {"server": SRC or str(ROOT)}
    for name, step in steps.items():
        if only and not any(word in name for word in only):
            continue
        print(f"… {name}", file=sys.stderr, flush=True)
        results[name] = step()
    text = json.dumps(results, indent=2)
    print(text)
    name = "hostile-provider-before.json" if SRC else "hostile-provider.json"
    (ROOT / "bench" / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
