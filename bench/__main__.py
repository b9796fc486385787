"""`make bench`: llmconfig against a bare grpc.aio server, measured in the same run.

1. throughput and latency of ResolveLLMConfig (default request, request with overrides) and
   of a cached CheckProviderHealth (`health`, against a loopback Ollama) at concurrency 1, 16
   and 64, rounds alternating with the bare server (the transport floor);
2. the in-process cost of one resolution (no gRPC);
3. health fan-in: 1,000 concurrent CheckProviderHealth → upstream requests; cached vs uncached;
   and the first check of a fresh process, at once after SERVING and a second later;
4. cold start: process start to SERVING, against the bare server's;
5. memory: RSS after start and after 100,000 calls;
6. live configuration: a change reaching 1,000 watch streams, RSS per watcher, and resolve
   throughput while the config file changes every second;
7. the watched client (bench/watch.py): a watched resolve against a dict lookup and the unary
   call, and a config edit reaching 1,000 watched clients;
8. peers (bench/peers.py), when a LiteLLM is installed (`make bench-peers` installs one): its
   proxy's /health and /model/info against CheckProviderHealth and ResolveLLMConfig.

BENCH_ROUNDS (default 7) and BENCH_SECONDS (default 1.5 per measurement) trade time for noise;
BENCH_ONLY=health,throughput (section names, as in results.json) runs some sections alone and
writes bench/results-partial.json instead. Servers are pinned to core 0, the load client to
core 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import grpc

from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc

from . import live, peers, servers
from .bare_server import METHOD as BARE_METHOD
from .load import closed_loop, fire

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1.5"))
CONCURRENCY = (1, 16, 64)
RESOLVE = "/llmconfig.v1.LLMConfigService/ResolveLLMConfig"
CHECK = "/llmconfig.v1.LLMConfigService/CheckProviderHealth"
WORKLOADS = {
    "default": pb.ResolveLLMConfigRequest().SerializeToString(),
    "overrides": pb.ResolveLLMConfigRequest(overrides=pb.LLMSettings(
        model="llama3.2", temperature=0.2)).SerializeToString(),
}
TARGETS = {
    "throughput_ratio_min": 0.9,
    "cached_health_ratio_min": 0.9,
    "p99_ratio_max": 1.2,
    "resolution_us_max": 20.0,
    "upstream_probes_for_1000": 1,
    "cold_start_ratio_max": 1.3,
    "rss_growth_mb_max": 5.0,
    "watch_event_max_ms": 1000,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- 1. throughput and latency ----

BENCH_TOKEN = "llmc_bench-token-resolve-only"
# Each workload and the floor it is compared with: the bare server on the same transport.
FLOOR_OF = {"floor": "floor", "default": "floor", "overrides": "floor", "token": "floor",
            "metrics": "floor", "health": "floor", "floor-unix": "floor-unix",
            "unix": "floor-unix"}
FLOOR_OF["token"] = "floor-token"  # the floor gets the same authorization header
FLOOR_OF["floor-token"] = "floor-token"


def _ollama() -> Any:
    """The Ollama-speaking loopback server the tests use."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    import providers

    return providers.ollama()


def throughput() -> dict[str, Any]:
    from llmconfig_server.access.tokens import digest_of

    ollama = _ollama()  # `health` is answered from the cache: a healthy verdict lives 10 s
    scratch = Path(tempfile.mkdtemp(prefix="llmc-bench-", dir="/tmp"))
    tokens = scratch / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - name: bench\n    sha256: {digest_of(BENCH_TOKEN)}\n"
                      "    scopes: [resolve]\n")
    started = {
        "bare": servers.bare(), "bare-unix": servers.bare(f"unix:{scratch}/bare.sock"),
        "llm": servers.llmconfig(), "llm-unix": servers.llmconfig(listen=f"unix:{scratch}/l.sock"),
        "llm-token": servers.llmconfig({}, "--tokens-file", str(tokens)),
        "llm-metrics": servers.llmconfig({}, "--metrics-listen", "127.0.0.1:0"),
        "llm-health": servers.llmconfig({"OLLAMA_BASE_URL": ollama.url}),
    }
    bearer = (("authorization", f"Bearer {BENCH_TOKEN}"),)
    default = WORKLOADS["default"]
    plan = [("floor", "bare", BARE_METHOD, default, None),
            *((name, "llm", RESOLVE, payload, None) for name, payload in WORKLOADS.items()),
            ("floor-token", "bare", BARE_METHOD, default, bearer),
            ("token", "llm-token", RESOLVE, default, bearer),
            ("metrics", "llm-metrics", RESOLVE, default, None),
            # CheckProviderHealthRequest() is b"", as the floor's request
            ("health", "llm-health", CHECK, b"", None),
            ("floor-unix", "bare-unix", BARE_METHOD, default, None),
            ("unix", "llm-unix", RESOLVE, default, None)]
    runs: dict[tuple[int, str], list[Any]] = {}
    try:
        for concurrency in CONCURRENCY:
            for round_ in range(ROUNDS):
                shift = round_ % len(plan)  # rotate so no workload always runs first
                for name, server, method, payload, metadata in plan[shift:] + plan[:shift]:
                    sample = asyncio.run(closed_loop(started[server].target, method, payload,
                                                     concurrency, SECONDS, metadata))
                    runs.setdefault((concurrency, name), []).append(sample)
            log(f"  throughput: concurrency {concurrency} done")
    finally:
        for process in started.values():
            process.stop()
        ollama.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    table: dict[str, Any] = {}
    for concurrency in CONCURRENCY:
        for name, *_ in plan:
            floor = runs[(concurrency, FLOOR_OF[name])]
            floor_rps = statistics.median(s.rps for s in floor)
            floor_p99 = statistics.median(s.p99_us for s in floor)
            samples = runs[(concurrency, name)]
            rps = statistics.median(s.rps for s in samples)
            p99 = statistics.median(s.p99_us for s in samples)
            table[f"{name}@{concurrency}"] = {
                "workload": name, "concurrency": concurrency, "rps": round(rps),
                "p50_us": round(statistics.median(s.p50_us for s in samples)),
                "p99_us": round(p99), "rps_ratio": round(rps / floor_rps, 3),
                "p99_ratio": round(p99 / floor_p99, 3),
            }
    return table


# -- 2. in-process cost ---------------------------------------------------------------------------

def in_process() -> dict[str, float]:
    from llmconfig_server.rpc.convert import overrides_of, response_of
    from llmconfig_server.sources.layers import ServerFlags, load_server_sources
    from llmconfig_server.sources.resolver import Resolver

    resolver = Resolver(load_server_sources(ServerFlags(), {}, Path("/"), Path("/nonexistent")))
    overrides = {"model": "llama3.2", "temperature": 0.2}
    request = pb.ResolveLLMConfigRequest.FromString(WORKLOADS["overrides"])

    def per_call_us(fn: Any, number: int = 20000) -> float:
        return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6

    return {
        "resolution_default_us": round(per_call_us(lambda: resolver.resolve()), 2),
        "resolution_overrides_us": round(per_call_us(lambda: resolver.resolve("", overrides)), 2),
        "handler_overrides_us": round(per_call_us(lambda: response_of(
            resolver.resolve(request.mode, overrides_of(request)), include_secrets=False)), 2),
    }


# -- 3. health fan-in -----------------------------------------------------------------------------

def health_fan_in() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    import providers  # the same Ollama-speaking server the tests use

    ollama = providers.ollama()
    # A slow answer keeps the 1,000 calls in flight together.
    ollama.override("/api/tags", providers.Reply(body={"models": [{"name": "qwen2.5-coder:7b"}]},
                                                 delay=0.2))
    llm = servers.llmconfig({"OLLAMA_BASE_URL": ollama.url})

    async def measure() -> dict[str, Any]:
        # The server takes 100 streams per connection (--max-concurrent-streams): the burst
        # comes over 10 connections of their own.
        burst_channels = [grpc.aio.insecure_channel(
            llm.target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(10)]
        async with grpc.aio.insecure_channel(llm.target) as channel:
            stub = pb_grpc.LLMConfigServiceStub(channel)
            began = time.perf_counter()
            answers = await asyncio.gather(*(
                pb_grpc.LLMConfigServiceStub(burst_channels[i % 10]).CheckProviderHealth(
                    pb.CheckProviderHealthRequest(), timeout=30)
                for i in range(1000)))
            burst = time.perf_counter() - began
            for burst_channel in burst_channels:
                await burst_channel.close()
            upstream = ollama.counts["/api/tags"]
            ollama.overrides.clear()  # now measure a fast provider
            uncached, cached = [], []
            for _ in range(20):
                t = time.perf_counter()
                await stub.CheckProviderHealth(pb.CheckProviderHealthRequest(refresh=True))
                uncached.append(time.perf_counter() - t)
            for _ in range(200):
                t = time.perf_counter()
                answer = await stub.CheckProviderHealth(pb.CheckProviderHealthRequest())
                cached.append(time.perf_counter() - t)
                assert answer.cached
        return {
            "concurrent_calls": 1000,
            "healthy_answers": sum(a.healthy for a in answers),
            "upstream_tags_requests": upstream,
            "upstream_version_requests": ollama.counts["/api/version"] - 20,
            "burst_seconds": round(burst, 3),
            "uncached_p50_us": round(statistics.median(uncached) * 1e6),
            "cached_p50_us": round(statistics.median(cached) * 1e6),
        }

    try:
        return asyncio.run(measure())
    finally:
        llm.stop()
        ollama.stop()


# Asked while the server starts: try again every 5–20 ms, not after gRPC's default 1 s backoff.
_FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 5), ("grpc.min_reconnect_backoff_ms", 5),
                   ("grpc.max_reconnect_backoff_ms", 20)]


def first_check(rounds: int = 5) -> dict[str, Any]:
    """The first CheckProviderHealth of a fresh server process (an uncached probe of a loopback
    Ollama): sent the moment it is SERVING, and a second after; then a later uncached one."""
    from grpc_health.v1 import health_pb2

    ollama = _ollama()
    refresh = pb.CheckProviderHealthRequest(refresh=True).SerializeToString()
    at_once, after_1s, later = [], [], []
    try:
        for _ in range(rounds):
            for wait, into in ((0.0, at_once), (1.0, after_1s)):
                port = _free_port()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "llmconfig_server", "--listen", f"127.0.0.1:{port}",
                     "--log-level", "warning", "--models-refresh-interval", "0"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                    env={**os.environ, "HOME": "/nonexistent", "OLLAMA_BASE_URL": ollama.url},
                    preexec_fn=servers.pin_server)
                try:
                    with grpc.insecure_channel(f"127.0.0.1:{port}",
                                               options=_FAST_RECONNECT) as channel:
                        def call(method: str, payload: bytes) -> float:
                            began = time.perf_counter()
                            channel.unary_unary(method)(payload, timeout=30,
                                                        wait_for_ready=True)
                            return time.perf_counter() - began
                        call("/grpc.health.v1.Health/Check",
                             health_pb2.HealthCheckRequest().SerializeToString())
                        time.sleep(wait)
                        into.append(call(CHECK, b""))
                        if wait:
                            later.append(statistics.median(call(CHECK, refresh)
                                                           for _ in range(5)))
                finally:
                    proc.terminate()
                    proc.wait()
    finally:
        ollama.stop()
    return {"rounds": rounds,
            "at_serving_ms": round(statistics.median(at_once) * 1e3, 1),
            "one_second_after_ms": round(statistics.median(after_1s) * 1e3, 1),
            "later_uncached_ms": round(statistics.median(later) * 1e3, 1)}


# -- 4. cold start ----

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _time_to_first_answer(args: list[str], port: int, method: str, payload: bytes,
                          env: dict[str, str] | None = None) -> float:
    return _start_costs(args, port, method, payload, env)[0]


def _start_costs(args: list[str], port: int, method: str, payload: bytes,
                 env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds from process start to its first answer, CPU seconds the process had used by
    then: user + system, in clock ticks — robust where other work shares the cores)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_FAST_RECONNECT)
    call = channel.unary_unary(method, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    began = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, cwd="/",
                            preexec_fn=servers.pin_server)
    try:
        call(payload, timeout=15, wait_for_ready=True)
        elapsed = time.perf_counter() - began
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return elapsed, cpu
    finally:
        channel.close()
        proc.terminate()
        proc.wait()


def cold_start() -> dict[str, Any]:
    """Process start to the first answer, for llmconfig-server (grpc.health.v1 SERVING) and two
    floors: the bare server (one empty method) and bench/bare_health_server.py (SERVING from
    grpcio-health-checking's servicer: the same question); wall time and CPU time."""
    from grpc_health.v1 import health_pb2

    health_check = health_pb2.HealthCheckRequest().SerializeToString()
    health = "/grpc.health.v1.Health/Check"
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "bare+health": [], "llmconfig": []}
    commands = {
        "bare": (lambda port: [sys.executable, "-m", "bench.bare_server", str(port)],
                 BARE_METHOD, b"", servers.BARE_ENV),
        "bare+health": (lambda port: [sys.executable, "-m", "bench.bare_health_server",
                                      str(port)], health, health_check, servers.BARE_ENV),
        "llmconfig": (lambda port: [sys.executable, "-m", "llmconfig_server", "--listen",
                                    f"127.0.0.1:{port}", "--log-level", "warning"],
                      health, health_check, {"HOME": "/nonexistent"}),
    }
    for _ in range(ROUNDS):
        for name, (argv, method, payload, env) in commands.items():
            for attempt in range(3):  # a free port can be taken by another process meanwhile
                port = _free_port()
                try:
                    runs[name].append(_start_costs(argv(port), port, method, payload, env))
                    break
                except grpc.RpcError:
                    if attempt == 2:
                        raise
    ms = {name: statistics.median(r[0] for r in values) * 1e3 for name, values in runs.items()}
    cpu = {name: statistics.median(r[1] for r in values) * 1e3 for name, values in runs.items()}
    return {"bare_ms": round(ms["bare"]), "bare_health_ms": round(ms["bare+health"]),
            "llmconfig_ms": round(ms["llmconfig"]), "ratio": round(ms["llmconfig"] / ms["bare"], 3),
            "ratio_vs_bare_health": round(ms["llmconfig"] / ms["bare+health"], 3),
            "cpu_ms": {name: round(value) for name, value in cpu.items()},
            "cpu_ratio_vs_bare_health": round(cpu["llmconfig"] / cpu["bare+health"], 3)}


# -- 5. memory ----

def memory(calls: int = 100_000) -> dict[str, Any]:
    llm = servers.llmconfig()
    try:
        asyncio.run(fire(llm.target, RESOLVE, WORKLOADS["overrides"], 2000))
        asyncio.run(fire(llm.target, RESOLVE, WORKLOADS["default"], 2000))
        after_start = llm.rss_mb()
        began = time.perf_counter()
        for payload in WORKLOADS.values():
            asyncio.run(fire(llm.target, RESOLVE, payload, calls // 2))
        elapsed = time.perf_counter() - began
        after_calls = llm.rss_mb()
    finally:
        llm.stop()
    return {"calls": calls, "rss_after_start_mb": round(after_start, 1),
            "rss_after_calls_mb": round(after_calls, 1),
            "growth_mb": round(after_calls - after_start, 2), "seconds": round(elapsed, 1)}


# -- report ----

def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    rows = [r for r in results["throughput"].values() if not r["workload"].startswith("floor")]
    health = [r for r in rows if r["workload"] == "health"]
    return {
        "cached health ≥ 0.9× floor": all(r["rps_ratio"] >= TARGETS["cached_health_ratio_min"]
                                          for r in health),
        "throughput ≥ 0.9× floor": all(r["rps_ratio"] >= TARGETS["throughput_ratio_min"]
                                       for r in rows),
        "p99 ≤ 1.2× floor": all(r["p99_ratio"] <= TARGETS["p99_ratio_max"] for r in rows),
        "one resolution ≤ 20 µs": results["in_process"]["resolution_overrides_us"]
        <= TARGETS["resolution_us_max"],
        "1,000 health checks → 1 probe": results["health"]["upstream_tags_requests"]
        == TARGETS["upstream_probes_for_1000"],
        "cold start ≤ 1.3× bare": results["cold_start"]["ratio"]
        <= TARGETS["cold_start_ratio_max"],
        "RSS growth < 5 MB": results["memory"]["growth_mb"] < TARGETS["rss_growth_mb_max"],
        "1,000 watchers have a change ≤ 1 s": results["watch"]["event_max_ms"]
        <= TARGETS["watch_event_max_ms"],
        "resolve while reloading ≥ 0.9× floor, 0 failed": results["reloading"]["rps_ratio"]
        >= TARGETS["throughput_ratio_min"] and results["reloading"]["failed_calls"] == 0,
    }


def render(results: dict[str, Any]) -> str:
    lines = [f"llmconfig bench — {results['machine']}, {ROUNDS} rounds × {SECONDS:g} s, "
             "medians", "",
             "ResolveLLMConfig vs bare grpc.aio (floor), same load client; `token` sends a "
             "bearer token to a server with a tokens file, `metrics` has --metrics-listen on, "
             "`unix` runs over a Unix socket against floor-unix",
             f"{'workload':<10} {'conc':>4} {'req/s':>8} {'p50 µs':>8} {'p99 µs':>8} "
             f"{'×floor rps':>10} {'×floor p99':>10}"]
    for row in results["throughput"].values():
        lines.append(f"{row['workload']:<10} {row['concurrency']:>4} {row['rps']:>8} "
                     f"{row['p50_us']:>8} {row['p99_us']:>8} {row['rps_ratio']:>10.3f} "
                     f"{row['p99_ratio']:>10.3f}")
    p, h, c, m = (results[k] for k in ("in_process", "health", "cold_start", "memory"))
    w, r, f = results["watch"], results["reloading"], results["first_check"]
    lk, fo = results["watched"]["lookup"], results["watched"]["fan_out"]
    lines += [
        "",
        f"in-process resolution: default {p['resolution_default_us']} µs, with overrides "
        f"{p['resolution_overrides_us']} µs (handler incl. proto: {p['handler_overrides_us']} µs)",
        f"health fan-in: {h['concurrent_calls']} concurrent calls → {h['upstream_tags_requests']}"
        f" upstream /api/tags, {h['upstream_version_requests']} /api/version "
        f"({h['healthy_answers']} healthy, {h['burst_seconds']} s); p50 cached "
        f"{h['cached_p50_us']} µs vs uncached {h['uncached_p50_us']} µs",
        f"first CheckProviderHealth of a fresh process (uncached): {f['at_serving_ms']} ms at "
        f"SERVING, {f['one_second_after_ms']} ms a second later; later uncached ones "
        f"{f['later_uncached_ms']} ms",
        f"cold start to SERVING: llmconfig {c['llmconfig_ms']} ms vs bare {c['bare_ms']} ms "
        f"(×{c['ratio']}), bare+health {c['bare_health_ms']} ms (×{c['ratio_vs_bare_health']});"
        f" CPU used by then {c['cpu_ms']['llmconfig']} ms vs bare+health "
        f"{c['cpu_ms']['bare+health']} ms (×{c['cpu_ratio_vs_bare_health']})",
        f"memory: RSS {m['rss_after_start_mb']} MB after start, {m['rss_after_calls_mb']} MB "
        f"after {m['calls']:,} calls (growth {m['growth_mb']} MB)",
        f"watch fan-out: a config file edit reaches {w['watchers']:,} open streams in p50 "
        f"{w['event_p50_ms']} ms, max {w['event_max_ms']} ms (the file watcher's 100 ms debounce "
        f"included); {w['rss_per_watcher_kb']} KiB of server RSS per open watcher",
        f"resolve while the config file changes every second ({r['config_edits']} edits): "
        f"{r['rps']} req/s vs floor {r['floor_rps']} (×{r['rps_ratio']}), "
        f"{r['failed_calls']} failed calls",
        f"watched Client.resolve(): p50 {lk['watched']['p50_us']} µs (×{lk['watched_vs_dict_p50']}"
        f" a dict lookup; the unary call ×{lk['unary_vs_watched_p50']} it); a config edit "
        f"reaches {fo['clients']:,} watched clients in p50 {fo['p50_ms']} ms, max "
        f"{fo['max_ms']} ms",
        peers.render(results["peers"]),
        "",
        "targets: " + ", ".join(f"{'✓' if ok else '✗'} {name}"
                                for name, ok in results["verdicts"].items()),
    ]
    return "\n".join(lines)


def _fresh(code: str) -> Any:
    """The JSON that `code` (run by a Python process of its own, from the checkout) prints on
    its last line. Sections that fork workers run so: a fork from this process, whose earlier
    sections leave gRPC threads about, can abort the child before it execs."""
    done = subprocess.run([sys.executable, "-c", f"import json\n{code}"], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True, check=True,
                          env={**os.environ, **servers.BARE_ENV})
    return json.loads(done.stdout.strip().splitlines()[-1])


def _watched() -> dict[str, Any]:
    return _fresh("from bench import servers, watch\nservers.pin_client()\n"  # type: ignore[no-any-return]
                  "print(json.dumps({'lookup': watch.lookup(), 'fan_out': watch.fan_out()}))")


def _peers() -> dict[str, Any]:
    return _fresh("from bench import peers, servers\nservers.pin_client()\n"  # type: ignore[no-any-return]
                  "print(json.dumps(peers.run()))")


def main() -> None:
    servers.pin_client()
    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
                   f"grpcio {grpc.__version__}",
        "rounds": ROUNDS, "seconds_per_measurement": SECONDS,
    }
    only = {name for name in os.environ.get("BENCH_ONLY", "").split(",") if name}
    for name, fn in (("in_process", in_process), ("cold_start", cold_start),
                     ("first_check", first_check), ("health", health_fan_in),
                     ("memory", memory), ("watch", live.watch_fan_out),
                     ("reloading", lambda: live.throughput_while_reloading(ROUNDS, SECONDS)),
                     ("watched", _watched), ("peers", _peers),
                     ("throughput", throughput)):
        if only and name not in only:
            continue
        log(f"{name} …")
        results[name] = fn()
    if only:
        partial = RESULTS.with_name("results-partial.json")
        partial.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps(results, indent=2, ensure_ascii=False))
        print(f"\n(written to {partial.relative_to(ROOT)})")
        return
    results["verdicts"] = verdicts(results)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(render(results))
    print(f"\n(written to {RESULTS.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
