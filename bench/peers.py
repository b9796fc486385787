"""llmconfig against LiteLLM's proxy on the two questions both answer (issue 20): `make
bench-peers` (which installs LiteLLM into .tools/litellm), and a section of `make bench` when a
LiteLLM is found (LITELLM=path/to/litellm, .tools/litellm/bin/litellm, or `litellm` on PATH).
Numbers, not verdicts; everything on 127.0.0.1.

1. health — LiteLLM's `GET /health` (its way to check that a model works: it calls the model)
   against CheckProviderHealth uncached (`refresh`) and cached: the billed calls (chat
   completions reaching the provider) per check and the tokens they ask for, and latency p50;
2. which model for this run — LiteLLM's `GET /model/info` against ResolveLLMConfig: req/s and
   p50 at concurrency 1 and 16, ROUNDS interleaved rounds of SECONDS each;
3. start to ready: process start to the first answer (LiteLLM's /health/liveliness, llmconfig's
   grpc.health.v1 SERVING).

Both servers talk to one fake OpenAI on loopback (tests/providers.py's, answering completions
too: one completion token, prompt tokens ≈ characters / 4, as its own rule). LiteLLM runs with
a master key (it refuses to start without one) and LITELLM_LOCAL_MODEL_COST_MAP=True (no fetch
from the internet); llmconfig without tokens. Servers on core 0, this client on core 1.
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
from pathlib import Path
from typing import Any

import grpc
import httpx

from llmconfig.v1 import llmconfig_pb2 as pb

from . import servers
from .load import Sample, callers, closed_loop

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "peers.json"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1.5"))
KEY = "sk-proj-BENCHkeyBENCHkeyBENCHkey-peer"
MASTER = "sk-llmconfig-bench-master-0123456789abcdef"
RESOLVE = "/llmconfig.v1.LLMConfigService/ResolveLLMConfig"
CHECK = "/llmconfig.v1.LLMConfigService/CheckProviderHealth"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_litellm() -> str | None:
    for candidate in (os.environ.get("LITELLM"), str(ROOT / ".tools/litellm/bin/litellm"),
                      shutil.which("litellm")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _fake_openai(model: str) -> Any:
    sys.path.insert(0, str(ROOT / "tests"))
    import providers

    fake = providers.openai(KEY, [model])
    listing = fake.route
    fake.completions = []  # type: ignore[attr-defined]

    def route(request: Any) -> Any:
        if request.path.rstrip("/").endswith("/chat/completions"):
            asked = json.loads(request.body or b"{}")
            prompt = sum(len(str(m.get("content", ""))) for m in asked.get("messages", ()))
            usage = {"prompt_tokens": max(1, prompt // 4), "completion_tokens": 1}
            usage["total_tokens"] = usage["prompt_tokens"] + 1
            fake.completions.append({"max_tokens": asked.get("max_tokens"),  # type: ignore[attr-defined]
                                     "prompt_chars": prompt, **usage})
            return providers.Reply(body={
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 1,
                "model": asked.get("model", model), "usage": usage,
                "choices": [{"index": 0, "finish_reason": "length",
                             "message": {"role": "assistant", "content": "2"}}]})
        return listing(request)

    fake.route = route
    return fake


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_litellm(executable: str, model: str, api_base: str, scratch: Path,
                   ) -> tuple[subprocess.Popen[bytes], str, float]:
    config = scratch / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {api_base}\n"
        f"      api_key: {KEY}\n"
        "general_settings:\n"
        f"  master_key: {MASTER}\n"
        "litellm_settings:\n"
        "  telemetry: false\n")
    port = _free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "NO_PROXY": "*", "HOME": str(scratch)}
    began = time.perf_counter()
    proc = subprocess.Popen([executable, "--config", str(config), "--host", "127.0.0.1",
                             "--port", str(port), "--num_workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=(scratch / "litellm.log").open("wb"),
                            stdin=subprocess.DEVNULL, cwd=scratch, env=env)
    # Pinned from here, not with preexec_fn: Python code between fork and exec in a process
    # whose gRPC threads are busy (after the other sections) aborts the child.
    if servers.SERVER_CPUS:
        os.sched_setaffinity(proc.pid, servers.SERVER_CPUS)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"litellm exited with {proc.returncode}: "
                               + (scratch / "litellm.log").read_text()[-2000:])
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=1).status_code == 200:
                return proc, url, time.perf_counter() - began
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("litellm did not become ready within 180 s")
        time.sleep(0.05)


def _llmconfig_ready_seconds(api_base: str) -> float:
    """Process start to SERVING, for the same configuration as the measured server."""
    from grpc_health.v1 import health_pb2

    from .__main__ import _time_to_first_answer  # the cold-start measurement of `make bench`

    port = _free_port()
    return _time_to_first_answer(
        [sys.executable, "-m", "llmconfig_server", "--listen", f"127.0.0.1:{port}",
         "--log-level", "warning", "--llm-provider", "openai", "--models-refresh-interval", "0"],
        port, "/grpc.health.v1.Health/Check",
        health_pb2.HealthCheckRequest().SerializeToString(),
        {"HOME": "/nonexistent", "OPENAI_BASE_URL": api_base, "OPENAI_API_KEY": KEY})


async def _http_loop(url: str, concurrency: int, seconds: float) -> Sample:
    """As load.closed_loop, for an HTTP GET with the master key."""
    headers = {"Authorization": f"Bearer {MASTER}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=10) as client:
        for _ in range(20):
            (await client.get(url)).raise_for_status()

        async def once() -> None:
            (await client.get(url)).raise_for_status()
        return await callers(once, httpx.HTTPError, concurrency, seconds)


def _timed(call: Any, count: int) -> float:
    """p50 seconds of `count` sequential calls."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run() -> dict[str, Any]:
    executable = find_litellm()
    if executable is None:
        return {"skipped": "no LiteLLM found (make bench-peers installs one into .tools/litellm)"}
    scratch = Path(tempfile.mkdtemp(prefix="llmc-peers-", dir="/tmp"))
    fake = _fake_openai("gpt-6-luna")
    api_base = f"{fake.url}/v1"
    llm = servers.llmconfig({"OPENAI_BASE_URL": api_base, "OPENAI_API_KEY": KEY},
                            "--llm-provider", "openai")
    litellm = None
    try:
        with grpc.insecure_channel(llm.target) as channel:
            resolve = channel.unary_unary(RESOLVE, request_serializer=lambda b: b,
                                          response_deserializer=pb.ResolveLLMConfigResponse.FromString)
            check = channel.unary_unary(CHECK, request_serializer=lambda b: b,
                                        response_deserializer=pb.CheckProviderHealthResponse.FromString)
            model = resolve(b"", timeout=10).config.model
            if model != "gpt-6-luna":  # the fake lists what llmconfig resolves
                raise RuntimeError(f"llmconfig resolved {model!r}")
            proc, url, litellm_ready = _start_litellm(executable, model, api_base, scratch)
            litellm = proc
            log(f"  peers: LiteLLM ready after {litellm_ready:.1f} s")
            headers = {"Authorization": f"Bearer {MASTER}"}
            http = httpx.Client(headers=headers, timeout=60)
            info = http.get(f"{url}/model/info")
            info.raise_for_status()
            # -- 1. health: billed calls, tokens, latency
            checks = 10
            fake.completions.clear()
            fake.counts.clear()
            health_body = {}

            def litellm_health() -> None:
                nonlocal health_body
                answer = http.get(f"{url}/health")
                answer.raise_for_status()
                health_body = answer.json()

            litellm_p50 = _timed(litellm_health, checks)
            completions = list(fake.completions)
            litellm_requests = sum(fake.counts.values())
            fake.counts.clear()
            fresh = pb.CheckProviderHealthRequest(refresh=True).SerializeToString()
            uncached_p50 = _timed(lambda: check(fresh, timeout=10), checks)
            llm_requests = sum(fake.counts.values())
            llm_completions = len(fake.completions) - len(completions)
            cached_p50 = _timed(lambda: check(b"", timeout=10), 200)
            assert check(b"", timeout=10).healthy
            # -- 2. which model: /model/info against ResolveLLMConfig
            runs: dict[tuple[str, int], list[Sample]] = {}
            for concurrency in (1, 16):
                for _ in range(ROUNDS):
                    runs.setdefault(("litellm", concurrency), []).append(asyncio.run(
                        _http_loop(f"{url}/model/info", concurrency, SECONDS)))
                    runs.setdefault(("llmconfig", concurrency), []).append(asyncio.run(
                        closed_loop(llm.target, RESOLVE, b"", concurrency, SECONDS)))
        which: dict[str, Any] = {}
        for concurrency in (1, 16):
            row = {}
            for name in ("litellm", "llmconfig"):
                samples = runs[(name, concurrency)]
                row[name] = {"rps": round(statistics.median(s.rps for s in samples)),
                             "p50_us": round(statistics.median(s.p50_us for s in samples)),
                             "failures": sum(s.failures for s in samples)}
            row["llmconfig_rps_ratio"] = round(row["llmconfig"]["rps"] / row["litellm"]["rps"], 1)
            which[f"c{concurrency}"] = row
        llm_ready = statistics.median(_llmconfig_ready_seconds(api_base) for _ in range(3))
        return {
            "litellm": _version_of(executable),
            "health": {
                "checks": checks,
                "litellm_billed_calls_per_check": len(completions) / checks,
                "litellm_upstream_requests_per_check": litellm_requests / checks,
                "litellm_max_tokens_asked": sorted({c["max_tokens"] for c in completions},
                                                   key=str),
                "litellm_prompt_chars": sorted({c["prompt_chars"] for c in completions}),
                "litellm_tokens_per_check": sum(c["total_tokens"] for c in completions) / checks,
                "litellm_healthy": len(health_body.get("healthy_endpoints", ())),
                "litellm_p50_ms": round(litellm_p50 * 1e3, 2),
                "llmconfig_billed_calls_per_check": llm_completions / checks,
                "llmconfig_upstream_requests_per_check": llm_requests / checks,
                "llmconfig_uncached_p50_ms": round(uncached_p50 * 1e3, 2),
                "llmconfig_cached_p50_ms": round(cached_p50 * 1e3, 3),
            },
            "which_model": which,
            "start_to_ready_s": {"litellm": round(litellm_ready, 2),
                                 "llmconfig": round(llm_ready, 3)},
        }
    finally:
        if litellm is not None:
            litellm.terminate()
            try:
                litellm.wait(timeout=15)
            except subprocess.TimeoutExpired:
                litellm.kill()
        llm.stop()
        fake.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _version_of(executable: str) -> str:
    pip = Path(executable).parent / "pip"
    if pip.exists():
        shown = subprocess.run([str(pip), "show", "litellm"], capture_output=True, text=True,
                               timeout=60).stdout
        for line in shown.splitlines():
            if line.startswith("Version:"):
                return "litellm " + line.split(":", 1)[1].strip()
    return "litellm (version unknown)"


def render(results: dict[str, Any]) -> str:
    if "skipped" in results:
        return f"peers: skipped — {results['skipped']}"
    h, w, s = results["health"], results["which_model"], results["start_to_ready_s"]
    lines = [
        f"peers: {results['litellm']} proxy vs llmconfig, one fake OpenAI on loopback",
        f"  health, per check: LiteLLM GET /health {h['litellm_billed_calls_per_check']:g} billed "
        f"completion(s) ({h['litellm_tokens_per_check']:g} tokens by the fake's count, "
        f"max_tokens asked {h['litellm_max_tokens_asked']}), p50 {h['litellm_p50_ms']} ms; "
        f"llmconfig CheckProviderHealth {h['llmconfig_billed_calls_per_check']:g} billed, "
        f"{h['llmconfig_upstream_requests_per_check']:g} GET /v1/models/… uncached (p50 "
        f"{h['llmconfig_uncached_p50_ms']} ms), cached p50 {h['llmconfig_cached_p50_ms']} ms",
    ]
    for key, row in w.items():
        lines.append(
            f"  which model, concurrency {key[1:]}: LiteLLM GET /model/info "
            f"{row['litellm']['rps']} req/s p50 {row['litellm']['p50_us']} µs; llmconfig "
            f"ResolveLLMConfig {row['llmconfig']['rps']} req/s p50 {row['llmconfig']['p50_us']} "
            f"µs (×{row['llmconfig_rps_ratio']})")
    lines.append(f"  start to ready: LiteLLM {s['litellm']} s, llmconfig {s['llmconfig']} s")
    return "\n".join(lines)


def main() -> None:
    servers.pin_client()
    results = run()
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(render(results))
    print(f"\n(written to {RESULTS.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
