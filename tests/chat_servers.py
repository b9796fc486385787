"""Loopback servers that speak the providers' chat APIs as their documentation shows them
(non-streaming answers; Ollama's NDJSON stream of one final chunk), recording what each request
carried: method, path, headers and JSON body."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "Hello from the test server."


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def _ollama_chat(body: dict[str, Any]) -> tuple[str, bytes]:
    chunk = {"model": body.get("model"), "created_at": "2026-12-01T20:00:00Z",
             "message": {"role": "assistant", "content": REPLY}, "done": True,
             "done_reason": "stop", "total_duration": 1000, "load_duration": 10,
             "prompt_eval_count": 3, "prompt_eval_duration": 100, "eval_count": 6,
             "eval_duration": 500}
    return "application/x-ndjson", (json.dumps(chunk) + "\n").encode()


def _openai_chat(body: dict[str, Any]) -> tuple[str, bytes]:
    answer = {"id": "chatcmpl-test", "object": "chat.completion", "created": 1764619200,
              "model": body.get("model"), "system_fingerprint": None,
              "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY,
                                                   "refusal": None},
                           "logprobs": None, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}}
    return "application/json", json.dumps(answer).encode()


def _anthropic_messages(body: dict[str, Any]) -> tuple[str, bytes]:
    answer = {"id": "msg_test", "type": "message", "role": "assistant",
              "model": body.get("model"), "content": [{"type": "text", "text": REPLY}],
              "stop_reason": "end_turn", "stop_sequence": None,
              "usage": {"input_tokens": 3, "output_tokens": 6}}
    return "application/json", json.dumps(answer).encode()


ROUTES = {
    "/api/chat": _ollama_chat,
    "/v1/chat/completions": _openai_chat,
    "/v1/messages": _anthropic_messages,
}


class ChatServer:
    def __init__(self) -> None:
        self.received: list[Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                body = json.loads(raw or b"{}")
                path = self.path.split("?", 1)[0]
                server.received.append(Received(
                    self.command, path, {k.lower(): v for k, v in self.headers.items()}, body))
                route = ROUTES.get(path)
                if route is None:
                    payload, kind, status = b'{"error": "not found"}', "application/json", 404
                else:
                    (kind, payload), status = route(body), 200
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
