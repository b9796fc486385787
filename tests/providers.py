"""Real HTTP servers on 127.0.0.1 that speak the providers' documented APIs, including their
failure answers, for the health tests. Each records every request it receives (method, raw
path, headers), so a test can say exactly what upstream saw."""

from __future__ import annotations

import functools
import itertools
import json
import re
import socket
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False  # accept the request and never answer
    # Streamed instead of `body`: each chunk written as it comes (`interval` seconds apart),
    # until the client hangs up or the emulator stops; `headers` say the length, if any.
    chunks: Callable[[], Iterable[bytes]] | None = None
    interval: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body or b"", "application/octet-stream"


Route = Callable[["Request"], Reply]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


class _QuietServer(ThreadingHTTPServer):
    """A probe at its limit hangs up mid-answer: not worth a traceback on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Emulator:
    """A threaded HTTP server on 127.0.0.1:0. `route(request)` decides every answer unless an
    override for the path (`emulator.override(path, reply)`) says otherwise."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[Request] = []
        self.counts: Counter[str] = Counter()
        self.overrides: dict[str, Reply] = {}
        self._released = threading.Event()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; without TCP_NODELAY, Nagle and the
            # client's delayed ACK add ~40 ms to every answer on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                # A body is read, so a kept-alive connection's next request starts where it
                # should (bench/peers.py's LiteLLM POSTs completions).
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if 0 < length <= 1 << 20 else b""
                request = Request(self.command, self.path,
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                emulator.requests.append(request)
                emulator.counts[self.path] += 1
                reply = emulator.overrides.get(self.path) or emulator.route(request)
                if reply.hang:
                    emulator._released.wait(30)
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.chunks is not None:
                    self._stream(reply)
                    return
                body, content_type = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    if name != "Content-Type":
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, reply: Reply) -> None:
                self.close_connection = True
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for chunk in reply.chunks():  # type: ignore[misc]
                        if emulator._released.is_set():
                            return
                        self.wfile.write(chunk)
                        if reply.interval:
                            self.wfile.flush()
                            time.sleep(reply.interval)
                except OSError:  # the client hung up: what a probe at its limit does
                    pass

            # Probes only GET; anything else is recorded too, and answered like a GET.
            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def override(self, path: str, reply: Reply) -> None:
        self.overrides[path] = reply

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


# -- Ollama: GET /api/version, GET /api/tags ----------------------------------------------------

def ollama(models: Iterable[str] = ("qwen2.5-coder:7b",), version: str = "0.6.2",
           signed_in: bool | None = True) -> Emulator:
    """`-cloud` tags are listed as Ollama lists cloud models (remote_model, remote_host);
    `POST /api/me` answers the signed-in account, 401 with a signin_url when signed out, and
    404 (an Ollama too old to have it) when `signed_in` is None."""
    pulled = list(models)

    def tag(name: str) -> dict[str, Any]:
        entry = {"name": name, "model": name, "modified_at": "2025-05-01T10:00:00Z",
                 "size": 4683087332, "digest": "sha256:" + "0" * 64,
                 "details": {"format": "gguf", "family": name.split(":")[0],
                             "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}}
        if name.endswith("-cloud"):
            entry.update(size=384, remote_model=name.removesuffix("-cloud"),
                         remote_host="https://ollama.com:443")
        return entry

    def route(request: Request) -> Reply:
        if request.path == "/api/version":
            return Reply(body={"version": version})
        if request.path == "/api/tags":
            return Reply(body={"models": [tag(name) for name in pulled]})
        if request.path == "/api/me" and request.method == "POST" and signed_in is not None:
            if signed_in:
                return Reply(body={"name": "alice", "email": "alice@example.com",
                                   "plan": "free"})
            return Reply(401, {"error": "unauthorized", "signin_url":
                               "https://ollama.com/connect?name=host&key=c3NoLWVkMjU1MTk"})
        return Reply(404, "404 page not found")  # Ollama's own answer to unknown paths
    return Emulator(route)


# -- Anthropic: GET /v1/models/{model} with x-api-key and anthropic-version -----------------------

def _anthropic_error(status: int, kind: str, message: str) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message},
                          "request_id": "req_011CTestRequest"})


def anthropic(key: str, models: Iterable[str] = ("claude-sonnet-5-5",),
              limits: dict[str, tuple[int, int]] | None = None) -> Emulator:
    """`GET /v1/models/{model}` and the paged `GET /v1/models` (`limit` 1–1000, default 20;
    `after_id`; `has_more`, `first_id`, `last_id`), newest first as the API lists them.
    `limits` gives a model's (max_tokens, max_input_tokens) as the API reports them."""
    listed = list(models)
    known = set(listed)

    def model_object(model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "model", "id": model, "display_name": model,
                                "created_at": "2026-10-07T00:00:00Z"}
        if limits and model in limits:
            body["max_tokens"], body["max_input_tokens"] = limits[model]
        return body

    def page(query: dict[str, list[str]]) -> Reply:
        raw_limit = query.get("limit", ["20"])[0]
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            return _anthropic_error(400, "invalid_request_error",
                                    "limit: Input should be less than or equal to 1000")
        after = query.get("after_id", [None])[0]
        start = listed.index(after) + 1 if after in known else 0
        chunk = listed[start:start + int(raw_limit)]
        return Reply(body={"data": [model_object(m) for m in chunk],
                           "has_more": start + len(chunk) < len(listed),
                           "first_id": chunk[0] if chunk else None,
                           "last_id": chunk[-1] if chunk else None})

    def route(request: Request) -> Reply:
        path, _, query = request.path.partition("?")
        if path != "/v1/models" and not path.startswith("/v1/models/"):
            return _anthropic_error(404, "not_found_error", "Not found")
        # Required, as a version date; the API accepts each published one (our probe sends
        # 2023-06-01, current SDKs newer ones).
        if not re.fullmatch(r"20\d\d-\d\d-\d\d", request.headers.get("anthropic-version", "")):
            return _anthropic_error(400, "invalid_request_error",
                                    "anthropic-version: header is required")
        # The API takes the key as x-api-key (our probe, older SDKs) or as a bearer token
        # (current SDKs send `Authorization: Bearer`).
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if key not in (request.headers.get("x-api-key"), bearer):
            return _anthropic_error(401, "authentication_error", "invalid x-api-key")
        if path == "/v1/models":
            return page(parse_qs(query))
        model = path.removeprefix("/v1/models/")
        if model not in known:
            return _anthropic_error(404, "not_found_error", f"model: {model}")
        return Reply(body=model_object(model))
    return Emulator(route)


def anthropic_billing_error() -> Reply:
    return _anthropic_error(402, "billing_error", "Your credit balance is too low to access the "
                                                 "Anthropic API.")


def anthropic_overloaded() -> Reply:
    return _anthropic_error(529, "overloaded_error", "Overloaded")


def anthropic_rate_limited() -> Reply:
    reply = _anthropic_error(429, "rate_limit_error", "Number of requests has exceeded your rate "
                                                      "limit")
    reply.headers["retry-after"] = "30"
    return reply


# -- OpenAI: GET {base}/models/{model} with Authorization: Bearer ---------------------------------

def _openai_error(status: int, message: str, kind: str, code: str | None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": kind, "param": None,
                                    "code": code}})


def openai(key: str, models: Iterable[str] = ("gpt-6-luna",),
           shutdown: dict[str, str] | None = None) -> Emulator:
    """`GET /models/{model}` and `GET /models` (one page, as the API lists them), each model
    with its `shutdown_date` (YYYY-MM-DD or null)."""
    listed = list(models)
    known = set(listed)

    def model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1715367049, "owned_by": "system",
                "shutdown_date": (shutdown or {}).get(model)}

    def route(request: Request) -> Reply:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if given != key:
            # OpenAI echoes a masked copy of the key it was given.
            masked = f"{given[:3]}{'*' * 20}{given[-4:]}"
            return _openai_error(401, f"Incorrect API key provided: {masked}. You can find your "
                                 "API key at https://platform.openai.com/account/api-keys.",
                                 "invalid_request_error", "invalid_api_key")
        if urlsplit(request.path).path == "/v1/models":
            return Reply(body={"object": "list", "data": [model_object(m) for m in listed]})
        model = request.path.removeprefix("/v1/models/")
        if model not in known:
            return _openai_error(404, f"The model `{model}` does not exist or you do not have "
                                 "access to it.", "invalid_request_error", "model_not_found")
        return Reply(body=model_object(model))
    return Emulator(route)


def openai_region_refused() -> Reply:
    return _openai_error(403, "Country, region, or territory not supported",
                         "request_forbidden", "unsupported_country_region_territory")


def openai_permission_refused() -> Reply:
    return _openai_error(403, "You have insufficient permissions for this operation. Missing "
                         "scopes: api.model.read.", "invalid_request_error", None)


# -- Any OpenAI-compatible server (vLLM, LM Studio, …): GET /v1/models ----------------------------

def openai_compatible(models: Iterable[str] = ("Qwen/Qwen3-Coder-30B-A3B-Instruct",),
                      key: str | None = None) -> Emulator:
    """vLLM's answer shape (`--api-key` makes it require a Bearer key)."""
    listed = list(models)

    def route(request: Request) -> Reply:
        if key is not None and request.headers.get("authorization") != f"Bearer {key}":
            return Reply(401, {"error": "Unauthorized"})
        if urlsplit(request.path).path != "/v1/models":
            return Reply(404, {"detail": "Not Found"})
        return Reply(body={"object": "list", "data": [
            {"id": m, "object": "model", "created": 1764633600, "owned_by": "vllm",
             "root": m, "parent": None, "max_model_len": 32768} for m in listed]})
    return Emulator(route)


def openai_quota_exhausted() -> Reply:
    return _openai_error(429, "You exceeded your current quota, please check your plan and "
                         "billing details.", "insufficient_quota", "insufficient_quota")


# -- Anything: a capturing server -----------------------------------------------------------------

def capturing() -> Emulator:
    """Answers every request with 200 and a body each probe accepts (an Anthropic/OpenAI model
    object that is also an Ollama version and an empty tag list), so every probe goes as far as
    it can; `requests` then shows every path and header that reached it."""

    def route(request: Request) -> Reply:
        return Reply(body={"type": "model", "id": "captured", "object": "model",
                           "version": "0.0.0", "models": []})
    return Emulator(route)


# -- Hostile answers -------------------------------------------------------------------------------

MiB = 1024 * 1024


def huge_body(size: int = 400 * MiB) -> Reply:
    """A JSON answer of `size` bytes (spaces after a `{`), streamed: never held in memory."""
    def chunks() -> Iterator[bytes]:
        yield b"{"
        for _ in range(size // (64 * 1024)):
            yield b" " * (64 * 1024)
    return Reply(headers={"Content-Type": "application/json", "Content-Length": str(size + 1)},
                 chunks=chunks)


@functools.cache
def gzip_bomb_bytes(size: int = 500 * MiB) -> bytes:
    """gzip of `size` zero bytes (~500 KB for 500 MiB), made once per test run."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    parts = [packer.compress(zeros) for _ in range(size // MiB)]
    return b"".join([*parts, packer.flush()])


def gzip_bomb() -> Reply:
    """A small gzip answer that inflates to 500 MiB of zeros."""
    return Reply(body=gzip_bomb_bytes(), headers={"Content-Type": "application/json",
                                                  "Content-Encoding": "gzip"})


def drip(interval: float = 0.05) -> Reply:
    """A 200 that promises a megabyte and sends one byte every `interval` seconds, forever."""
    return Reply(headers={"Content-Type": "application/json", "Content-Length": str(MiB)},
                 chunks=lambda: itertools.repeat(b" "), interval=interval)


def too_many_requests(retry_after: str) -> Reply:
    return Reply(429, {"error": {"type": "rate_limit_error", "message": "slow down"}},
                 {"Retry-After": retry_after})


# -- Network failures ------------------------------------------------------------------------------

class BlackHole:
    """Accepts TCP connections (the kernel completes the handshake) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self) -> None:
        self.sock.close()


def refused_url() -> str:
    """A loopback port with nothing listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
