"""Bounded streams (issue 15, row 2): --max-watch-streams counts WatchLLMConfig and
grpc.health.v1 Watch together and refuses the next one RESOURCE_EXHAUSTED; streams opened without
a token over TCP hold at most a fifth of it; health service names longer than any real one are
refused; a change still reaches every open stream, each with its own resolution. (What a
stream costs and how long a fan-out takes are measured in bench/attack.py, not asserted.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2

from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig_server.access.tokens import digest_of

from conftest import startup_refusal

TOKEN = "llmc_stream-limits-token"
BEARER = (("authorization", f"Bearer {TOKEN}"),)
WATCH = "/llmconfig.v1.LLMConfigService/WatchLLMConfig"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
GUARD = 10.0  # seconds: a hang guard, never the thing asserted


def _identity(data: bytes) -> bytes:
    return data


class Streams:
    """Raw streams on one aio channel, driven from the test through the loop it runs on."""

    def __init__(self, target: str) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)  # grpc.aio looks it up outside coroutines too
        self.channel = self.loop.run_until_complete(self._channel(target))
        self.open: list[Any] = []

    @staticmethod
    async def _channel(target: str) -> Any:
        return grpc.aio.insecure_channel(target)

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, GUARD))

    def start(self, method: str, request: bytes,
              metadata: tuple[tuple[str, str], ...] | None = None) -> grpc.StatusCode | None:
        """Open a stream; None once its first message arrived (it stays open), else the code
        it ended with."""
        call = self.channel.unary_stream(method, request_serializer=_identity,
                                         response_deserializer=_identity)
        stream = call(request, metadata=metadata)

        async def first() -> grpc.StatusCode | None:
            try:
                await stream.read()
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
            return None

        code = self.run(first())
        if code is None:
            self.open.append(stream)
        self.last = stream
        return code  # type: ignore[no-any-return]

    def reason(self) -> str:
        """ErrorInfo.reason of the last stream's status."""
        trailers = self.run(self.last.trailing_metadata())
        raw = dict(trailers)["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(raw)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info.reason
        return ""

    def close(self) -> None:
        for stream in self.open:
            stream.cancel()
        self.run(self.channel.close())
        self.loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def streams():
    made: list[Streams] = []

    def connect(target: str) -> Streams:
        made.append(Streams(target))
        return made[-1]

    yield connect
    for each in made:
        each.close()


@pytest.fixture
def tokens(workspace) -> str:
    return str(workspace.write("tokens.yaml", f"tokens:\n  - name: runner\n    sha256: "
                                              f"{digest_of(TOKEN)}\n    scopes: [resolve]\n"))


WATCH_REQUEST = pb.WatchLLMConfigRequest().SerializeToString()
HEALTH_REQUEST = health_pb2.HealthCheckRequest().SerializeToString()


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not check():
        assert time.monotonic() < deadline, "not within the guard"
        time.sleep(0.05)


def test_watch_streams_beyond_the_maximum_are_resource_exhausted(serve, streams, tokens):
    target = serve(args=["--tokens-file", tokens, "--max-watch-streams", "10"]).target
    conn = streams(target)
    assert [conn.start(WATCH, WATCH_REQUEST, BEARER) for _ in range(10)] == [None] * 10
    assert conn.start(WATCH, WATCH_REQUEST, BEARER) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert conn.reason() == "WATCH_STREAMS_EXHAUSTED"


def test_health_watch_and_config_watch_share_the_maximum(serve, streams, tokens):
    target = serve(args=["--tokens-file", tokens, "--max-watch-streams", "10"]).target
    conn = streams(target)
    assert [conn.start(HEALTH_WATCH, HEALTH_REQUEST) for _ in range(2)] == [None, None]
    assert [conn.start(WATCH, WATCH_REQUEST, BEARER) for _ in range(8)] == [None] * 8
    assert conn.start(WATCH, WATCH_REQUEST, BEARER) is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_streams_without_a_token_over_tcp_hold_at_most_a_fifth(serve, streams, tokens):
    target = serve(args=["--tokens-file", tokens, "--max-watch-streams", "10"]).target
    conn = streams(target)
    assert [conn.start(HEALTH_WATCH, HEALTH_REQUEST) for _ in range(2)] == [None, None]
    assert conn.start(HEALTH_WATCH, HEALTH_REQUEST) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert conn.reason() == "ANONYMOUS_WATCH_STREAMS_EXHAUSTED"
    assert conn.start(WATCH, WATCH_REQUEST, BEARER) is None  # a token's streams still fit


def test_config_watch_without_tokens_over_tcp_counts_as_anonymous(serve, streams):
    conn = streams(serve(args=["--max-watch-streams", "10"]).target)
    assert [conn.start(WATCH, WATCH_REQUEST) for _ in range(2)] == [None, None]
    assert conn.start(WATCH, WATCH_REQUEST) is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unix_socket_callers_have_the_whole_budget(serve, streams, socket_dir):
    target = serve(args=["--listen", f"unix:{socket_dir}/llmc.sock",
                         "--max-watch-streams", "10"]).target
    conn = streams(target)
    assert [conn.start(WATCH, WATCH_REQUEST) for _ in range(10)] == [None] * 10
    assert conn.start(HEALTH_WATCH, HEALTH_REQUEST) is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_an_ended_stream_gives_its_place_back(serve, streams, tokens):
    target = serve(args=["--tokens-file", tokens, "--max-watch-streams", "1"]).target
    conn = streams(target)
    assert conn.start(WATCH, WATCH_REQUEST, BEARER) is None
    conn.open.pop().cancel()

    def admitted() -> bool:
        return conn.start(WATCH, WATCH_REQUEST, BEARER) is None

    eventually(admitted)


def test_a_refused_caller_does_not_take_a_place(serve, streams, tokens):
    target = serve(args=["--tokens-file", tokens, "--max-watch-streams", "1"]).target
    conn = streams(target)
    for _ in range(3):  # no token: UNAUTHENTICATED before any place is counted
        assert conn.start(WATCH, WATCH_REQUEST) is grpc.StatusCode.UNAUTHENTICATED
    assert conn.start(WATCH, WATCH_REQUEST, BEARER) is None


@pytest.mark.parametrize("method", [HEALTH_WATCH, HEALTH_CHECK])
def test_a_health_service_name_longer_than_any_real_one_is_invalid(serve, streams, method):
    conn = streams(serve().target)
    padded = health_pb2.HealthCheckRequest(service="x" * 60_000).SerializeToString()
    if method == HEALTH_WATCH:
        assert conn.start(method, padded) is grpc.StatusCode.INVALID_ARGUMENT
    else:
        call = conn.channel.unary_unary(method, request_serializer=_identity,
                                        response_deserializer=_identity)
        with pytest.raises(grpc.RpcError) as caught:
            conn.run(call(padded))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    known = health_pb2.HealthCheckRequest(service="llmconfig.v1.LLMConfigService")
    assert conn.start(HEALTH_WATCH, known.SerializeToString()) is None


def test_max_watch_streams_must_be_a_count(workspace):
    handle = startup_refusal(workspace, ["--max-watch-streams", "lots"])
    assert "--max-watch-streams: 'lots' is not a whole number" in handle.log


def test_a_change_reaches_every_open_stream_with_its_own_resolution(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml",
                           "local:\n  llm:\n    model: llama3.2\ncloud:\n  llm:\n"
                           "    provider: ollama\n    model: phi4\n")
    target = serve(args=["--reload-interval", "0"]).target
    local = pb.WatchLLMConfigRequest().SerializeToString()
    cloud = pb.WatchLLMConfigRequest(mode="cloud").SerializeToString()

    async def fan_out() -> list[str]:
        # Connections of their own (at most 100 streams each, --max-concurrent-streams).
        channels = [grpc.aio.insecure_channel(target,
                                              options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(4)]
        try:
            calls = [c.unary_stream(WATCH, request_serializer=_identity,
                                    response_deserializer=pb.WatchLLMConfigEvent.FromString)
                     for c in channels]
            opened = [calls[i % 4](cloud if i % 10 == 0 else local) for i in range(300)]
            for stream in opened:
                await stream.read()
            path.write_text("local:\n  llm:\n    model: qwen2.5-coder:14b\ncloud:\n  llm:\n"
                            "    provider: ollama\n    model: phi4:14b\n")
            await asyncio.get_running_loop().run_in_executor(None, servers[0].reload)
            models = [(await stream.read()).config.config.model for stream in opened]
            for stream in opened:
                stream.cancel()
            return models
        finally:
            for channel in channels:
                await channel.close()

    models = asyncio.run(asyncio.wait_for(fan_out(), 60))
    assert models == ["phi4:14b" if i % 10 == 0 else "qwen2.5-coder:14b" for i in range(300)]
