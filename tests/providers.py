"""Real HTTP servers on 127.0.0.1 that speak the providers' documented APIs, including their
failure answers, for the health tests. Each records every request it receives (method, raw
path, headers), so a test can say exactly what upstream saw."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False  # accept the request and never answer

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
                request = Request(self.command, self.path,
                                  {k.lower(): v for k, v in self.headers.items()})
                emulator.requests.append(request)
                emulator.counts[self.path] += 1
                reply = emulator.overrides.get(self.path) or emulator.route(request)
                if reply.hang:
                    emulator._released.wait(30)
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                body, content_type = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    if name != "Content-Type":
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            # Probes only GET; anything else is recorded too, and answered like a GET.
            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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

def ollama(models: Iterable[str] = ("qwen2.5-coder:7b",), version: str = "0.6.2") -> Emulator:
    pulled = list(models)

    def route(request: Request) -> Reply:
        if request.path == "/api/version":
            return Reply(body={"version": version})
        if request.path == "/api/tags":
            return Reply(body={"models": [
                {"name": name, "model": name, "modified_at": "2025-05-01T10:00:00Z",
                 "size": 4683087332, "digest": "sha256:" + "0" * 64,
                 "details": {"format": "gguf", "family": name.split(":")[0],
                             "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}}
                for name in pulled]})
        return Reply(404, "404 page not found")  # Ollama's own answer to unknown paths
    return Emulator(route)


# -- Anthropic: GET /v1/models/{model} with x-api-key and anthropic-version -----------------------

def _anthropic_error(status: int, kind: str, message: str) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message},
                          "request_id": "req_011CTestRequest"})


def anthropic(key: str, models: Iterable[str] = ("claude-sonnet-4-5-20250929",)) -> Emulator:
    known = set(models)

    def route(request: Request) -> Reply:
        if not request.path.startswith("/v1/models/"):
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
        model = request.path.removeprefix("/v1/models/")
        if model not in known:
            return _anthropic_error(404, "not_found_error", f"model: {model}")
        return Reply(body={"type": "model", "id": model, "display_name": "Claude Sonnet 4.5",
                           "created_at": "2025-09-29T00:00:00Z"})
    return Emulator(route)


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


def openai(key: str, models: Iterable[str] = ("gpt-4o",)) -> Emulator:
    known = set(models)

    def route(request: Request) -> Reply:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if given != key:
            # OpenAI echoes a masked copy of the key it was given.
            masked = f"{given[:3]}{'*' * 20}{given[-4:]}"
            return _openai_error(401, f"Incorrect API key provided: {masked}. You can find your "
                                 "API key at https://platform.openai.com/account/api-keys.",
                                 "invalid_request_error", "invalid_api_key")
        model = request.path.removeprefix("/v1/models/")
        if model not in known:
            return _openai_error(404, f"The model `{model}` does not exist or you do not have "
                                 "access to it.", "invalid_request_error", "model_not_found")
        return Reply(body={"id": model, "object": "model", "created": 1715367049,
                           "owned_by": "system"})
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
