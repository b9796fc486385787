"""The watched client (issue 20), `make bench-watch` (under a minute on 2 cores). Numbers, not
verdicts: tests pin the behaviour, never these figures. The server is a process of its own
pinned to core 0; clients run on core 1. Prints a table and writes bench/watch.json.

1. lookup: a watched `Client.resolve()` answered from memory, against a dictionary lookup of the
   same answer and against the unary call it replaces, p50/p99 in µs, ROUNDS interleaved rounds
   in one run (each call timed on its own, the timer's own cost included in every row alike).
2. fan-out: a config file edit reaching 1,000 watched clients (AsyncClient(watch=True), one
   stream each) in WORKERS processes over the server's Unix socket: from the write to each
   client answering the new model (the file watcher's 100 ms debounce included; clients poll
   their memory every POLL s, so arrivals are late by up to that). Each watched client has a
   connection of its own (the server takes 100 streams per connection); a Unix socket gives
   them --max-watch-streams' whole budget (TCP without a token: a fifth of it, 1,000).
3. restart: watched and plain clients calling resolve() in a loop while the server is stopped
   with SIGTERM and started again on the same address, at once and after a 5 s outage (both
   within the default 30 s bound): calls, failed calls, stale answers, how long the server was
   gone and until every watched client answered fresh again.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import llmconfig

from . import servers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "watch.json"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CALLS = 100_000  # per round, for the in-memory rows
UNARY_CALLS = 1_000  # per round
CLIENTS = 1000
WORKERS = 4
POLL = 0.005  # seconds between a fan-out worker's sweeps of its clients' memory
RESTART_CLIENTS = 20  # watched, and as many plain ones
TARGETS = {"lookup_p50_us_max": 5.0, "fan_out_max_ms": 1000, "restart_failed_watched": 0}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config(model: str) -> str:
    return f"local:\n  llm:\n    model: {model}\n"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def _remembered(client: llmconfig.Client) -> llmconfig.Resolved:
    """Once `client` answers from memory (the same object twice)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        first = client.resolve()
        if client.resolve() is first:
            return first
        time.sleep(0.01)
    raise RuntimeError("the watched client never answered from memory")


# -- 1. lookup ----------------------------------------------------------------------------

def _timed(call: Any, count: int) -> list[float]:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(count):
        began = clock()
        call()
        samples.append((clock() - began) / 1000)
    return samples


def lookup() -> dict[str, Any]:
    server = servers.llmconfig({})
    watched = llmconfig.Client(server.target, watch=True)
    plain = llmconfig.Client(server.target, watch=False)
    try:
        answer = _remembered(watched)
        table = {"k": answer}
        rows: dict[str, list[tuple[float, float]]] = {"dict": [], "watched": [], "unary": []}
        for _ in range(ROUNDS):
            rows["dict"].append(_percentiles(_timed(lambda: table.get("k"), CALLS)))
            rows["watched"].append(_percentiles(_timed(watched.resolve, CALLS)))
            rows["unary"].append(_percentiles(_timed(plain.resolve, UNARY_CALLS)))
        assert watched.resolve() is answer, "the watched answers did not come from memory"
    finally:
        watched.close()
        plain.close()
        server.stop()
    result = {name: {"p50_us": round(statistics.median(r[0] for r in runs), 3),
                     "p99_us": round(statistics.median(r[1] for r in runs), 3)}
              for name, runs in rows.items()}
    result["watched_vs_dict_p50"] = round(result["watched"]["p50_us"]
                                          / result["dict"]["p50_us"], 1)
    result["unary_vs_watched_p50"] = round(result["unary"]["p50_us"]
                                           / result["watched"]["p50_us"], 1)
    return result


# -- 2. fan-out to 1,000 watched clients ----------------------------------------------------

async def _worker(target: str, count: int) -> None:
    """One fan-out process: `count` watched clients; for each `expect MODEL T0` line on stdin,
    the seconds from T0 until each client answers MODEL, as one JSON line."""
    clients = [llmconfig.AsyncClient(target, watch=True) for _ in range(count)]
    loop = asyncio.get_running_loop()
    try:
        for client in clients:
            await client.resolve()
        for client in clients:  # every one answering from memory: its stream is open
            while (first := await client.resolve()) is not await client.resolve():
                await asyncio.sleep(0.01)
            del first
        print("ready", flush=True)
        while (line := await loop.run_in_executor(None, sys.stdin.readline)).startswith("expect"):
            _, model, began = line.split()
            pending, arrivals = set(range(count)), []
            while pending:
                for index in list(pending):
                    if (await clients[index].resolve()).config.model == model:
                        arrivals.append(time.monotonic() - float(began))
                        pending.discard(index)
                await asyncio.sleep(POLL)
            print(json.dumps(arrivals), flush=True)
    finally:
        for client in clients:
            await client.close()


def fan_out() -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-watch-", dir="/tmp"))
    path = scratch / "config.yaml"
    path.write_text(_config("llama3.2"))
    server = servers.llmconfig({}, "--config", str(path), listen=f"unix:{scratch}/llm.sock")
    workers: list[subprocess.Popen[str]] = []
    try:
        rss_before = server.rss_mb()
        for _ in range(WORKERS):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "bench.watch", "worker", server.target,
                 str(CLIENTS // WORKERS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True, env={**os.environ, **servers.BARE_ENV}, preexec_fn=servers.pin_client))
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError("a fan-out worker did not start")
        time.sleep(0.5)
        rss_open = server.rss_mb()
        rounds = []
        for model in ("qwen2.5-coder:14b", "llama3.2", "qwen2.5-coder:14b"):
            expected = "llama3.2:3b" if model == "llama3.2" else model
            began = time.monotonic()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"expect {expected} {began}\n")
                worker.stdin.flush()
            path.write_text(_config(model))  # seen through the file watcher, as in production
            arrivals: list[float] = []
            for worker in workers:
                assert worker.stdout is not None
                arrivals += json.loads(worker.stdout.readline())
            rounds.append(arrivals)
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return {"clients": sum(len(r) for r in rounds) // len(rounds), "processes": WORKERS,
            "changes": len(rounds),
            "p50_ms": round(statistics.median(statistics.median(r) for r in rounds) * 1e3),
            "max_ms": round(max(max(r) for r in rounds) * 1e3),
            "server_rss_per_client_kb": round((rss_open - rss_before) * 1024 / CLIENTS, 1)}


# -- 3. across a restart --------------------------------------------------------------------

class _Caller:
    """A thread calling resolve() on its clients in turn until stopped."""

    def __init__(self, clients: list[llmconfig.Client]) -> None:
        self.clients = clients
        self.calls = self.failed = self.stale = 0
        self.last_stale = 0.0
        self.failures: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for client in self.clients:
                self.calls += 1
                try:
                    if client.resolve().stale:
                        self.stale += 1
                        self.last_stale = time.monotonic()
                except llmconfig.LLMConfigError as exc:
                    self.failed += 1
                    self.failures[exc.code.name] = self.failures.get(exc.code.name, 0) + 1
            time.sleep(0.001)


def restart(outage: float) -> dict[str, Any]:
    """Stop the server, wait `outage` seconds, start it again on the same address."""
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-restart-", dir="/tmp"))
    listen = f"unix:{scratch}/llm.sock"
    server = servers.llmconfig({}, listen=listen)
    watched = [llmconfig.Client(server.target, watch=True) for _ in range(RESTART_CLIENTS)]
    plain = [llmconfig.Client(server.target, watch=False) for _ in range(RESTART_CLIENTS)]
    try:
        for client in watched:
            _remembered(client)
        callers = {"watched": _Caller(watched), "plain": _Caller(plain)}
        time.sleep(2)
        stopped = time.monotonic()
        server.stop()  # SIGTERM: drain (1 s), streams end UNAVAILABLE, exit
        time.sleep(outage)
        server = servers.llmconfig({}, listen=listen)
        gone = time.monotonic() - stopped
        time.sleep(5)
        for caller in callers.values():
            caller.stop.set()
            caller.thread.join()
    finally:
        for client in watched + plain:
            client.close()
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    result: dict[str, Any] = {"server_gone_s": round(gone, 2)}
    for name, caller in callers.items():
        result[name] = {"clients": RESTART_CLIENTS, "calls": caller.calls,
                        "failed": caller.failed, "failures": caller.failures,
                        "stale_answers": caller.stale}
    last = callers["watched"].last_stale
    result["watched"]["fresh_again_after_restart_s"] = round(max(0.0, last - stopped - gone), 2)
    return result


# -- the table ------------------------------------------------------------------------------

def main() -> None:
    servers.pin_client()
    results: dict[str, Any] = {"python": sys.version.split()[0], "cores": os.cpu_count(),
                               "rounds": ROUNDS}
    log("watched resolve vs dict lookup vs unary …")
    results["lookup"] = lookup()
    log(f"a change reaching {CLIENTS} watched clients …")
    results["fan_out"] = fan_out()
    log("a server restart, and a 5 s outage, under watched and plain clients …")
    results["restart"] = restart(0.0)
    results["outage"] = restart(5.0)
    results["targets"] = TARGETS
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    lk, fo, rs = results["lookup"], results["fan_out"], results["restart"]
    print(f"llmconfig bench-watch — {results['cores']} cores, Python {results['python']}, "
          f"{ROUNDS} rounds, medians\n")
    print("resolve, in process          p50 µs    p99 µs")
    for name, label in (("dict", "dict lookup (floor)"), ("watched", "watched Client.resolve()"),
                        ("unary", "unary Client.resolve()")):
        print(f"{label:<28}{lk[name]['p50_us']:>7.2f} {lk[name]['p99_us']:>9.2f}")
    print(f"watched ×dict p50 {lk['watched_vs_dict_p50']}; unary ×watched p50 "
          f"{lk['unary_vs_watched_p50']}\n")
    print(f"a config edit reaching {fo['clients']} watched clients ({fo['processes']} "
          f"processes, Unix socket, {fo['changes']} edits): p50 {fo['p50_ms']} ms, max "
          f"{fo['max_ms']} ms; server RSS {fo['server_rss_per_client_kb']} KiB per client\n")
    for what, row in (("SIGTERM restart", rs), ("SIGTERM, 5 s outage, start", results["outage"])):
        print(f"{what} (server gone {row['server_gone_s']} s), {RESTART_CLIENTS} clients of "
              "each kind calling resolve() in a loop:")
        for name in ("watched", "plain"):
            kind = row[name]
            print(f"  {name:<8} calls {kind['calls']:>7}  failed {kind['failed']:>5} "
                  f"{kind['failures'] or ''}  stale answers {kind['stale_answers']}")
        print(f"  watched clients fresh again {row['watched']['fresh_again_after_restart_s']} s "
              "after the new server was up\n")
    verdicts = [
        ("watched resolve p50 ≤ 5 µs", lk["watched"]["p50_us"] <= TARGETS["lookup_p50_us_max"]),
        ("a change reaches 1,000 watched clients ≤ 1 s",
         fo["max_ms"] <= TARGETS["fan_out_max_ms"]),
        ("0 failed watched calls across a restart and a 5 s outage",
         rs["watched"]["failed"] == 0 and results["outage"]["watched"]["failed"] == 0),
    ]
    print("targets: " + ", ".join(f"{'✓' if ok else '✗'} {text}" for text, ok in verdicts))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        asyncio.run(_worker(sys.argv[2], int(sys.argv[3])))
    else:
        main()
