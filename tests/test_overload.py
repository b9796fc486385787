"""No call ends CANCELLED unless the client cancelled it: a burst on one connection is queued
by the client (MAX_CONCURRENT_STREAMS), an HTTP/2 rapid reset costs bystanders nothing, a watch
resumes after any end it did not cause, and the CLI's watch exits 3 when the service is gone."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import threading
import time

import grpc
import pytest

import llmconfig
from llmconfig.v1 import llmconfig_pb2 as pb

import h2_abuse
from conftest import ServerThread, base_env, inputs_for, startup_refusal

# Bursts of calls (or a signal) against a deadline: `make test` runs these after the rest, one
# at a time, so no other test's work starves them into deadlines the rules do not cover.
pytestmark = pytest.mark.under_load


def test_a_burst_of_4000_resolves_on_one_client_is_never_cancelled(serve, servers):
    serve()
    target = servers[0].target

    async def burst() -> collections.Counter[str]:
        outcomes: collections.Counter[str] = collections.Counter()
        async with llmconfig.AsyncClient(target, timeout=120) as client:
            async def one() -> None:
                try:
                    await client.resolve()
                    outcomes["OK"] += 1
                except llmconfig.LLMConfigError as exc:
                    outcomes[exc.code.name] += 1

            await asyncio.gather(*(one() for _ in range(4000)))
        return outcomes

    outcomes = asyncio.run(burst())
    assert outcomes == {"OK": 4000}


def test_the_connection_limit_is_a_flag(workspace):
    handle = startup_refusal(workspace, ["--max-concurrent-streams", "0"])
    assert "--max-concurrent-streams: '0' is not a whole number between 1 and 10000" in handle.log


def test_a_rapid_reset_flood_costs_a_bystander_no_call(serve, servers):
    bystander = serve()
    host, _, port = servers[0].target.rpartition(":")
    bystander.resolve()
    outcomes: collections.Counter[str] = collections.Counter()
    flooding = threading.Event()

    def calls() -> None:
        flooding.wait(10)
        for _ in range(100):
            try:
                bystander.resolve(timeout=30)
                outcomes["OK"] += 1
            except llmconfig.LLMConfigError as exc:
                outcomes[exc.code.name] += 1
            time.sleep(0.02)

    thread = threading.Thread(target=calls)
    thread.start()
    flooding.set()
    # Bounded in count and time: tens of thousands of streams, a few seconds, then it stops.
    flood = h2_abuse.rapid_reset(host, int(port), max_streams=30_000, max_seconds=4.0)
    thread.join(timeout=60)
    assert flood.streams > 0
    assert outcomes == {"OK": 100}


# -- the client's watch resumes after any end it did not cause ------------------------------

class Flaky:
    """A gRPC server speaking WatchLLMConfig that ends each stream after one event with the
    status a dying server or a proxy sends (CANCELLED, INTERNAL, …), each time with a new
    revision — the way a real server's stream ends in its last moments."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.calls = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.target = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> str:
        self.server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler("llmconfig.v1.LLMConfigService", {
            "WatchLLMConfig": grpc.unary_stream_rpc_method_handler(
                self._watch, request_deserializer=pb.WatchLLMConfigRequest.FromString,
                response_serializer=pb.WatchLLMConfigEvent.SerializeToString)})
        self.server.add_generic_rpc_handlers((handler,))
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return f"127.0.0.1:{port}"

    async def _watch(self, request: pb.WatchLLMConfigRequest, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        yield pb.WatchLLMConfigEvent(config=pb.ResolveLLMConfigResponse(
            config=pb.LLMConfig(provider="ollama", model="qwen2.5-coder:7b"),
            revision=f"r{self.calls}"))
        await context.abort(self.code, "the stream went away")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def flaky(request):
    server = Flaky(request.param)
    yield server
    server.stop()


ENDS = [grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE]


@pytest.mark.parametrize("flaky", ENDS, indirect=True, ids=lambda code: code.name)
def test_the_watch_resumes_after_an_end_it_did_not_cause(flaky):
    with llmconfig.Client(flaky.target) as client:
        watch = client.watch()
        revisions = [next(watch).resolved.revision for _ in range(3)]
        watch.close()
    assert revisions == ["r1", "r2", "r3"]


@pytest.mark.parametrize("flaky", [grpc.StatusCode.CANCELLED], indirect=True,
                         ids=lambda code: code.name)
def test_the_async_watch_resumes_after_an_end_it_did_not_cause(flaky):
    async def follow() -> list[str]:
        async with llmconfig.AsyncClient(flaky.target) as client:
            seen = []
            async for change in client.watch():
                seen.append(change.resolved.revision)
                if len(seen) == 3:
                    break
            return seen

    assert asyncio.run(follow()) == ["r1", "r2", "r3"]


@pytest.mark.parametrize("flaky", [grpc.StatusCode.PERMISSION_DENIED], indirect=True,
                         ids=lambda code: code.name)
def test_the_watch_raises_an_answer_about_the_request(flaky):
    with llmconfig.Client(flaky.target) as client:
        watch = client.watch()
        next(watch)
        with pytest.raises(llmconfig.PermissionDenied):
            next(watch)


def test_the_cli_watch_exits_3_when_the_service_cannot_be_reached(workspace):
    done = subprocess.run([sys.executable, "-m", "llmconfig", "watch", "--target",
                           "127.0.0.1:1", "--timeout", "0.5"], capture_output=True, text=True,
                          timeout=60, env=base_env(workspace), cwd=workspace.cwd)
    assert done.returncode == 3, done.stderr
    assert "cannot be reached" in done.stderr


def test_a_stopping_server_ends_streams_unavailable_asking_to_come_back_later(workspace):
    server = ServerThread(inputs_for(workspace))
    try:
        with grpc.insecure_channel(server.target) as channel:
            call = channel.unary_stream("/llmconfig.v1.LLMConfigService/WatchLLMConfig")(
                b"", timeout=30)
            next(call)
            stopping = asyncio.run_coroutine_threadsafe(server.running.stop(grace=2),
                                                        server.loop)
            with pytest.raises(grpc.RpcError) as ended:
                next(call)
            stopping.result(timeout=30)
        assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
        assert ("grpc-retry-pushback-ms", "1000") in ended.value.trailing_metadata()
    finally:
        server.loop.call_soon_threadsafe(server.loop.stop)
        server.thread.join(timeout=10)


class Busy:
    """A gRPC server whose ResolveLLMConfig is at its limit once: RESOURCE_EXHAUSTED with a
    pushback, then an answer."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.target = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> str:
        self.server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler("llmconfig.v1.LLMConfigService", {
            "ResolveLLMConfig": grpc.unary_unary_rpc_method_handler(
                self._resolve, request_deserializer=pb.ResolveLLMConfigRequest.FromString,
                response_serializer=pb.ResolveLLMConfigResponse.SerializeToString)})
        self.server.add_generic_rpc_handlers((handler,))
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return f"127.0.0.1:{port}"

    async def _resolve(self, request, context):  # type: ignore[no-untyped-def]
        self.calls.append(time.monotonic())
        if len(self.calls) == 1:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "at the limit",
                                (("grpc-retry-pushback-ms", "700"),))
        return pb.ResolveLLMConfigResponse(
            config=pb.LLMConfig(provider="ollama", model="qwen2.5-coder:7b"), revision="r1")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_the_client_retries_an_overloaded_server_after_its_pushback():
    busy = Busy()
    try:
        with llmconfig.Client(busy.target, timeout=30) as client:
            assert client.resolve().revision == "r1"
        assert len(busy.calls) == 2
        assert busy.calls[1] - busy.calls[0] >= 0.6  # the server's 700 ms, not the 0.2 s backoff
    finally:
        busy.stop()
