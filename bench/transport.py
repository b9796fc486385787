"""Transport under abuse and overload, measured against real `llmconfig-server` processes on
loopback (`make bench-transport`, about a minute). Prints one line per measurement; numbers,
not verdicts (the tests pin the behaviour, never these figures).

- rapid reset: one tokenless connection opens and resets streams for 8 s (h2); a bystander
  makes 100 resolves meanwhile: streams sent, whether the server closed the connection, the
  bystander's outcomes and p50/p99, the server's RSS before and after.
- burst: 4,000 resolves at once on one AsyncClient: outcomes.
- metrics: threads of the server while 1,000 idle connections are open to /metrics; resolve
  p50 idle and while 8 threads scrape /metrics as fast as they can.
- restart: N AsyncClient.watch() loops across a SIGTERM restart with a changed config: loops
  that died, loops that saw the new revision.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import llmconfig

import h2_abuse


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server(port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "llmconfig_server", "--listen",
                             f"127.0.0.1:{port}", *args], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stderr is not None
    for line in proc.stderr:
        if "serving on" in line:
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
    return proc


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def rapid_reset() -> None:
    port = _port()
    proc = _server(port)
    try:
        outcomes: collections.Counter[str] = collections.Counter()
        latencies: list[float] = []

        def bystander() -> None:
            with llmconfig.Client(f"127.0.0.1:{port}", timeout=30) as client:
                for _ in range(100):
                    began = time.perf_counter()
                    try:
                        client.resolve()
                        outcomes["OK"] += 1
                    except llmconfig.LLMConfigError as exc:
                        outcomes[exc.code.name] += 1
                    latencies.append(time.perf_counter() - began)
                    time.sleep(0.05)

        with llmconfig.Client(f"127.0.0.1:{port}") as client:
            client.resolve()
        before = _rss_mb(proc.pid)
        thread = threading.Thread(target=bystander)
        thread.start()
        flood = h2_abuse.rapid_reset("127.0.0.1", port, max_streams=200_000, max_seconds=8.0)
        thread.join()
        time.sleep(2)
        latencies.sort()
        print(f"rapid reset: {flood.streams} streams in {flood.seconds:.1f} s, connection "
              f"closed by the server: {flood.closed} (GOAWAY {flood.goaway_error or 'none'}); "
              f"bystander {dict(outcomes)}, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms,"
              f" p99 {latencies[-2] * 1000:.1f} ms; RSS {before} -> {_rss_mb(proc.pid)} MB")
    finally:
        proc.kill()
        proc.wait()


def burst() -> None:
    port = _port()
    proc = _server(port)

    async def run() -> collections.Counter[str]:
        outcomes: collections.Counter[str] = collections.Counter()
        async with llmconfig.AsyncClient(f"127.0.0.1:{port}", timeout=60) as client:
            async def one() -> None:
                try:
                    await client.resolve()
                    outcomes["OK"] += 1
                except llmconfig.LLMConfigError as exc:
                    outcomes[exc.code.name] += 1

            await asyncio.gather(*(one() for _ in range(4000)))
        return outcomes

    try:
        began = time.monotonic()
        outcomes = asyncio.run(run())
        print(f"burst: 4000 resolves at once on one AsyncClient: {dict(outcomes)} in "
              f"{time.monotonic() - began:.1f} s")
    finally:
        proc.kill()
        proc.wait()


def metrics_threads() -> None:
    port, metrics = _port(), _port()
    proc = _server(port, "--metrics-listen", f"127.0.0.1:{metrics}")
    try:
        before = len(os.listdir(f"/proc/{proc.pid}/task"))
        idle = [socket.create_connection(("127.0.0.1", metrics), timeout=10)
                for _ in range(1000)]
        time.sleep(1)
        during = len(os.listdir(f"/proc/{proc.pid}/task"))
        for connection in idle:
            connection.close()
        print(f"metrics: threads {before} -> {during} with 1000 idle /metrics connections")
        _scrape_flood(port, metrics)
    finally:
        proc.kill()
        proc.wait()


def _scrape_flood(port: int, metrics: int) -> None:
    stop = threading.Event()
    scrapes = [0]

    def scrape() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics",
                                            timeout=5) as answer:
                    answer.read()
                scrapes[0] += 1
            except OSError:
                pass

    def p50(client: llmconfig.Client) -> float:
        latencies = []
        for _ in range(500):
            began = time.perf_counter()
            client.resolve()
            latencies.append(time.perf_counter() - began)
        return statistics.median(latencies) * 1000

    with llmconfig.Client(f"127.0.0.1:{port}") as client:
        client.resolve()
        idle = p50(client)
        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        flooded = p50(client)
        elapsed = time.monotonic() - began
        stop.set()
        for thread in threads:
            thread.join()
    print(f"metrics: resolve p50 idle {idle:.2f} ms, {flooded:.2f} ms while 8 threads scrape "
          f"({scrapes[0] / elapsed:.0f} scrapes/s)")


def restart(watchers: int) -> None:
    port = _port()
    proc = _server(port, "--drain-seconds", "1")
    events: collections.Counter[int] = collections.Counter()
    died: collections.Counter[str] = collections.Counter()

    async def run() -> tuple[int, int]:
        client = llmconfig.AsyncClient(f"127.0.0.1:{port}")

        async def watch(index: int) -> None:
            try:
                async for _ in client.watch():
                    events[index] += 1
            except llmconfig.LLMConfigError as exc:
                died[exc.code.name] += 1

        tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        await asyncio.sleep(3)
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:
            await asyncio.sleep(0.05)
        events.clear()
        successor = _server(port, env={"STIGMER_LLM_MODEL": "llama3.2"})
        try:
            await asyncio.sleep(10)
        finally:
            successor.kill()
            successor.wait()
        alive = sum(not task.done() for task in tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
        return alive, sum(1 for i in range(watchers) if events[i])

    alive, resumed = asyncio.run(run())
    print(f"restart: {watchers} watch loops across SIGTERM: died {dict(died) or 0}, alive "
          f"{alive}, saw the new revision within 10 s {resumed}")


if __name__ == "__main__":
    rapid_reset()
    burst()
    metrics_threads()
    restart(100)
    restart(1200)
