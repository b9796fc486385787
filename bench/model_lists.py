"""`python -m bench.model_lists`: what one refresh of a provider's model list costs.

An Anthropic-shaped server on loopback lists N models (default 1,000) the way the API does —
newest first, 100 a page, `after_id` / `has_more`, each model object with its capabilities
(~1.5 KB, as the real API's) — and the server's `Refresher` lists it, in process, against a
fresh state each round (a target is listed at most once per 10 s). Reported, median of the
rounds: the refresh's wall time (HTTP pages + parsing + the state rebuild the changed list
triggers), the memory it retains (tracemalloc, after), its peak (tracemalloc, during), and the
answers' bytes. Loopback only; no key leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MODELS = int(os.environ.get("BENCH_MODELS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
KEY = "sk-ant-api03-BENCHbenchBENCHbenchBENCH-0000"
CAPABILITIES = {name: {"supported": True} for name in (
    "batch", "citations", "code_execution", "image_input", "pdf_input", "structured_outputs")}
CAPABILITIES["thinking"] = {"supported": True, "types": {"adaptive": {"supported": True},
                                                         "enabled": {"supported": True}}}
CAPABILITIES["effort"] = {"supported": True, **{level: {"supported": True} for level in (
    "low", "medium", "high", "max")}}
CAPABILITIES["context_management"] = {"supported": True, **{name: {"supported": True} for name in (
    "clear_thinking_20251015", "clear_tool_uses_20250919", "compact_20260112")}}


def anthropic_server(count: int) -> tuple[ThreadingHTTPServer, str, list[int]]:
    ids = [f"claude-bench-{n:05d}" for n in range(count)]
    index = {model: n for n, model in enumerate(ids)}
    sent: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path != "/v1/models" or self.headers.get("x-api-key") != KEY:
                self.send_error(404)
                return
            limit = int(query.get("limit", ["20"])[0])
            after = query.get("after_id", [""])[0]
            start = index[after] + 1 if after in index else 0
            chunk = ids[start:start + limit]
            body = json.dumps({
                "data": [{"type": "model", "id": m, "display_name": m.replace("-", " "),
                          "created_at": "2026-10-07T00:00:00Z", "max_input_tokens": 1_000_000,
                          "max_tokens": 128_000, "capabilities": CAPABILITIES} for m in chunk],
                "has_more": start + len(chunk) < len(ids),
                "first_id": chunk[0] if chunk else None,
                "last_id": chunk[-1] if chunk else None}).encode()
            sent.append(len(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", sent


async def one_round(url: str, home: Path, sent: list[int], memory: bool,
                    ) -> tuple[float, int, int, int]:
    from llmconfig_server.flags import parse
    from llmconfig_server.health.model_lists import Refresher
    from llmconfig_server.live.state import Inputs, ServerState, build

    environ = {"MODE": "cloud", "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url}
    options = parse(["--listen", "127.0.0.1:0", "--models-refresh-interval", "0"], environ)
    state = ServerState(Inputs(options, environ, home, home), build(
        Inputs(options, environ, home, home)))
    refresher = Refresher(state, 0)
    await refresher.refresh(["anthropic"])  # warm: httpx loaded, the pool connected
    state = ServerState(state.inputs, build(state.inputs, state.runtime))
    refresher = Refresher(state, 0)
    sent.clear()
    if memory:  # tracemalloc slows everything down: the time comes from rounds without it
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    began = time.perf_counter()
    await refresher.refresh(["anthropic"])
    elapsed = time.perf_counter() - began
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    listing = state.runtime.lists.get("anthropic", url)
    assert listing is not None and len(listing.models) == MODELS, "the list was not learned"
    assert state.current.resolver.catalog.model("anthropic", "claude-bench-00000") is not None
    await state.runtime.http.aclose()
    return elapsed, current - before, peak - before, len(listing.models)


def main() -> None:
    server, url, sent = anthropic_server(MODELS)
    times, kept, peaks = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(ROUNDS):
            times.append(asyncio.run(one_round(url, Path(tmp), sent, memory=False))[0])
            _, retained, peak, _ = asyncio.run(one_round(url, Path(tmp), sent, memory=True))
            kept.append(retained)
            peaks.append(peak)
    server.shutdown()
    print(f"model list refresh, {MODELS} Anthropic models ({len(sent)} pages, "
          f"{sum(sent) / 1024:.0f} KiB of answers), median of {ROUNDS} rounds on "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}:")
    print(f"  time      {statistics.median(times) * 1e3:.0f} ms "
          f"(min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f}); includes the state "
          "rebuild the new list triggers")
    print(f"  retained  {statistics.median(kept) / 1024:.0f} KiB (the list, and the catalog "
          "and state rebuilt with it)")
    print(f"  peak      {statistics.median(peaks) / 1024:.0f} KiB above the start")


if __name__ == "__main__":
    main()
