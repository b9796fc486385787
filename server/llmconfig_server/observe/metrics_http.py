"""`/metrics` over HTTP/1.1, on one thread whatever the number of connections.

prometheus-client's own server starts a thread per connection and keeps it while the connection
idles (191 idle connections held 202 threads). Here one thread runs an asyncio loop of its own:
an idle connection is a few KB in that loop, never a thread; at most MAX_CONNECTIONS are open
(a new one closes the one idle longest), a request must arrive within IDLE_SECONDS and fit in
MAX_REQUEST_BYTES. Not on the gRPC loop, so a scrape never waits behind calls nor calls behind a
scrape; the text is rendered at most once per CACHE_SECONDS, so a scrape flood costs a copy of
bytes, not a rendering of every series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

MAX_CONNECTIONS: Final = 64
IDLE_SECONDS: Final = 10.0
MAX_REQUEST_BYTES: Final = 8 * 1024
CACHE_SECONDS: Final = 0.25


class MetricsHTTP:
    """Serve `registry` on http://HOST:PORT/metrics from a thread of its own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="metrics-http",
                                       daemon=True)
        self._open: set[asyncio.StreamWriter] = set()
        self._idle: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self._server: asyncio.Server | None = None
        self._cached: tuple[float, bytes] = (float("-inf"), b"")

    def start(self, host: str, port: int) -> int:
        """Listen (OSError if the address cannot be bound) and serve; the port bound."""
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, host, port, backlog=512,
                                 reuse_address=True, limit=MAX_REQUEST_BYTES), self.loop)
        try:
            self._server = future.result(timeout=10)
        except BaseException:
            self.close()
            raise
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()

    def _body(self) -> bytes:
        now = time.monotonic()
        rendered, body = self._cached
        if now - rendered >= CACHE_SECONDS:
            body = generate_latest(self.registry)
            self._cached = (now, body)
        return body

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        # At the limit, the connection idle longest makes room (a scraper is never locked
        # out by connections that only sit there); if none is idle, the new one goes.
        if len(self._open) >= MAX_CONNECTIONS and not self._evict_idlest():
            writer.transport.abort()
            return
        self._open.add(writer)
        try:
            while True:
                self._idle[writer] = None
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_SECONDS)
                del self._idle[writer]
                keep = self._answer(head, writer)
                await asyncio.wait_for(writer.drain(), IDLE_SECONDS)
                if not keep:
                    break
        except (TimeoutError, OSError, ValueError, KeyError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            self._idle.pop(writer, None)
            self._open.discard(writer)
            writer.close()

    def _evict_idlest(self) -> bool:
        idlest = next(iter(self._idle), None)
        if idlest is None:
            return False
        del self._idle[idlest]
        idlest.transport.abort()
        return True

    def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is to be closed."""
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target, _, version = rest.partition(" ")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers or "transfer-encoding" in headers:
            return self._send(writer, 400, b"a scrape has no body\n", False)
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return self._send(writer, 405, b"GET /metrics\n", keep)
        if path != "/metrics":
            return self._send(writer, 404, b"metrics are at /metrics\n", keep)
        return self._send(writer, 200, self._body(), keep, head_only=method == "HEAD",
                          content_type=CONTENT_TYPE_LATEST)

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, body: bytes, keep: bool, *,
              head_only: bool = False, content_type: str = "text/plain; charset=utf-8",
              ) -> bool:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found",
                  405: "Method Not Allowed"}[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep else 'close'}"
            "\r\n\r\n".encode() + (b"" if head_only else body))
        return keep
