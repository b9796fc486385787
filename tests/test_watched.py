"""The watched client (issue 20): `Client(watch=True)` answers a repeated resolve() from memory,
kept current by one WatchLLMConfig stream per request shape; honest about staleness while the
stream is down, back to the unary RPC past `max_staleness`, answers dropped at once when a
token is revoked, bounded in shapes, and leaving no thread or stream behind. Against the real
server; what it costs and how fast a change travels are measured in bench/watch.py."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import llmconfig
from llmconfig_server.access.tokens import digest_of

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK, ServerThread, inputs_for

GUARD = 10.0  # seconds: a hang guard, never the thing asserted
METRICS = ["--metrics-listen", "127.0.0.1:0"]
T = TypeVar("T")


def eventually(check: Callable[[], T | None], within: float = GUARD) -> T:
    """`check()`'s first true result; a typed error meanwhile is tried again (the last one is
    raised at the guard)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if (result := check()) is not None and result is not False:
                return result
        except llmconfig.LLMConfigError:
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, "not within the hang guard"
        time.sleep(0.02)


E = TypeVar("E", bound=BaseException)


def raised(kind: type[E], call: Callable[..., object], *args: Any, **kwargs: Any) -> E | None:
    """The `kind` error `call` raises, or None when it answers."""
    try:
        call(*args, **kwargs)
    except kind as exc:
        return exc
    return None


def remembered(client: llmconfig.Client, **kwargs: Any) -> llmconfig.Resolved:
    """Once `client` answers `kwargs` from memory: the same object twice (a call to the server
    makes a new one each time)."""
    def check() -> llmconfig.Resolved | None:
        first = client.resolve(**kwargs)
        return first if client.resolve(**kwargs) is first else None
    return eventually(check)


def config(model: str) -> str:
    return f"local:\n  llm:\n    model: {model}\n"


def metric(address: str, name: str, method: str) -> float:
    """The sum of `name` over the lines of LLMConfigService's `method` (all codes), as the
    server's /metrics at `address` renders it (at most once a second or so)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and f'grpc_method="{method}"' in line)


def settled(server: ServerThread) -> ServerThread:
    """`server` once its /metrics counts every call made so far: one ListModels call of our
    own (nothing else asks it), and a rendering that counts it."""
    address = server.running.metrics_address
    before = metric(address, "grpc_server_started_total", "ListModels")
    with llmconfig.Client(server.target, watch=False) as probe:
        probe.list_models()
    eventually(lambda: metric(address, "grpc_server_started_total", "ListModels") > before)
    return server


def unary_calls(server: ServerThread) -> float:
    return metric(settled(server).running.metrics_address, "grpc_server_started_total",
                  "ResolveLLMConfig")


def open_streams(address: str) -> float:
    return (metric(address, "grpc_server_started_total", "WatchLLMConfig")
            - metric(address, "grpc_server_handled_total", "WatchLLMConfig"))


def open_streams_of(server: ServerThread) -> float:
    return open_streams(server.running.metrics_address)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def restartable(workspace):
    """(start(), stop()) of a server that comes back on the same port."""
    port = free_port()
    running: list[ServerThread] = []

    def start() -> ServerThread:
        running.append(ServerThread(inputs_for(workspace, args=["--listen",
                                                                f"127.0.0.1:{port}"])))
        return running[-1]

    def stop() -> None:
        running.pop().stop()

    yield start, stop
    while running:
        stop()


# -- from memory, kept current ------------------------------------------------------------------

def test_repeated_resolves_are_answered_from_memory_once_the_stream_is_open(serve, servers):
    client = serve(args=METRICS, client_options={"watch": True})
    first = remembered(client, model="llama3.2")
    asked = unary_calls(servers[0])
    for _ in range(100):
        assert client.resolve(model="llama3.2") is first
    assert unary_calls(servers[0]) == asked
    assert open_streams_of(servers[0]) == 1


def test_the_first_resolve_of_a_request_asks_the_server(serve, servers):
    client = serve(args=METRICS, client_options={"watch": True})
    assert not client.resolve().stale
    assert unary_calls(servers[0]) == 1


def test_a_change_reaches_every_watched_client(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    serve()
    clients = [llmconfig.Client(servers[0].target, watch=True) for _ in range(5)]
    try:
        for client in clients:
            remembered(client)
        path.write_text(config("qwen2.5-coder:14b"))
        servers[0].reload()
        for client in clients:
            eventually(lambda c=client: c.resolve().config.model == "qwen2.5-coder:14b")
            assert not client.resolve().stale
    finally:
        for client in clients:
            client.close()


def test_an_error_event_makes_calls_raise_what_the_unary_call_raises(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", "cloud:\n  llm:\n    provider: anthropic\n")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, client_options={"watch": True})
    remembered(client, mode="cloud")
    path.write_text("cloud:\n  llm:\n    provider: openai\n")  # cloud needs an OpenAI key now
    servers[0].reload()
    with llmconfig.Client(servers[0].target) as plain, \
            pytest.raises(llmconfig.PreconditionFailed) as unary:
        plain.resolve("cloud")

    error = eventually(lambda: raised(llmconfig.PreconditionFailed, client.resolve, "cloud"))
    assert (error.reason, error.message, error.violations) == \
        (unary.value.reason, unary.value.message, unary.value.violations)
    assert error.reason == "API_KEY_MISSING"


def test_a_good_event_after_an_error_event_answers_again(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", "cloud:\n  llm:\n    provider: anthropic\n")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, client_options={"watch": True})
    remembered(client, mode="cloud")
    path.write_text("cloud:\n  llm:\n    provider: openai\n")
    servers[0].reload()
    eventually(lambda: raised(llmconfig.PreconditionFailed, client.resolve, "cloud"))
    path.write_text("cloud:\n  llm:\n    provider: anthropic\n")
    servers[0].reload()
    eventually(lambda: client.resolve("cloud").config.provider == "anthropic")


def test_secrets_are_remembered_only_for_calls_that_ask_for_them(serve):
    client = serve(args=[TRUST_LOOPBACK], env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"},
                   client_options={"watch": True})
    assert remembered(client, include_secrets=True).config.api_key == ANTHROPIC_KEY
    assert remembered(client).config.api_key == ""


# -- the stream down: stale within the bound, then the unary RPC ----------------------------------

def test_answers_keep_coming_marked_stale_while_the_server_restarts(restartable, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    start, stop = restartable
    first = start()
    with llmconfig.Client(first.target, watch=True) as client:
        remembered(client)
        stop()
        during = eventually(lambda: (answer := client.resolve()).stale and answer)
        assert during.config.model == "llama3.2:3b"
        path.write_text(config("qwen2.5-coder:14b"))
        start()
        after = eventually(lambda: (answer := client.resolve()).config.model
                           == "qwen2.5-coder:14b" and answer)
        assert not after.stale


def test_a_restart_within_the_bound_fails_no_call(restartable):
    start, stop = restartable
    first = start()
    answers = []
    with llmconfig.Client(first.target, watch=True) as client:
        remembered(client)
        stop()
        down = time.monotonic()
        while time.monotonic() < down + 0.5:  # every call answers while it is down
            answers.append(client.resolve())
        start()
        deadline = time.monotonic() + GUARD
        while (answer := client.resolve()).stale:
            answers.append(answer)
            assert time.monotonic() < deadline, "not back within the hang guard"
    assert {answer.config.model for answer in answers} == {"qwen2.5-coder:7b"}
    assert any(answer.stale for answer in answers)


def test_past_max_staleness_calls_go_back_to_the_unary_rpc_and_raise_as_today(restartable):
    start, stop = restartable
    first = start()
    with llmconfig.Client(first.target, watch=True, max_staleness=0.5, timeout=0.5) as client:
        remembered(client)
        stop()
        eventually(lambda: raised(llmconfig.ServiceUnavailable, client.resolve))


def test_the_stream_resumes_and_answers_from_memory_again(restartable, workspace):
    start, stop = restartable
    first = start()
    with llmconfig.Client(first.target, watch=True, max_staleness=0.2) as client:
        remembered(client)
        stop()
        time.sleep(0.5)  # past the bound: the unary RPC answers once the server is back
        start()
        assert not remembered(client).stale


def test_a_resumed_stream_of_an_unchanged_answer_is_confirmed_by_its_header_alone(workspace):
    args = ["--listen", f"127.0.0.1:{free_port()}", *METRICS]
    first = ServerThread(inputs_for(workspace, args=args))
    with llmconfig.Client(first.target, watch=True) as client:
        remembered(client)
        first.stop()
        eventually(lambda: client.resolve().stale)
        second = ServerThread(inputs_for(workspace, args=args))
        try:
            eventually(lambda: not client.resolve().stale)
            address = settled(second).running.metrics_address
            assert open_streams(address) == 1
            assert metric(address, "grpc_server_msg_sent_total", "WatchLLMConfig") == 0
        finally:
            second.stop()


# -- tokens -------------------------------------------------------------------------------------

RUNNER, KEEPER = "llmc_runner-token", "llmc_keeper-token"


def tokens_yaml(*entries: tuple[str, str, str]) -> str:
    return "tokens:\n" + "".join(f"  - name: {name}\n    sha256: {digest_of(token)}\n"
                                 f"    scopes: [{scopes}]\n" for name, token, scopes in entries)


@pytest.fixture
def tokened(serve, servers, workspace):
    """(tokens file, watched client with RUNNER's token) on a server with a key."""
    path = workspace.write("tokens.yaml", tokens_yaml(("keeper", KEEPER, "resolve, secrets"),
                                                      ("runner", RUNNER, "resolve, secrets")))
    serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"},
          args=["--tokens-file", str(path), "--reload-interval", "0"])
    with llmconfig.Client(servers[0].target, token=RUNNER, watch=True) as client:
        yield path, client


def test_a_revoked_token_drops_its_remembered_answers_at_once(tokened, servers):
    path, client = tokened
    remembered(client, include_secrets=True)
    path.write_text(tokens_yaml(("keeper", KEEPER, "resolve, secrets")))
    servers[0].reload()
    eventually(lambda: raised(llmconfig.Unauthenticated, client.resolve, include_secrets=True))
    for _ in range(20):  # never served again
        with pytest.raises(llmconfig.Unauthenticated):
            client.resolve(include_secrets=True)


def test_a_token_descoped_of_secrets_drops_only_its_keyed_answers(tokened, servers):
    path, client = tokened
    remembered(client, include_secrets=True)
    plain = remembered(client)
    path.write_text(tokens_yaml(("keeper", KEEPER, "resolve, secrets"),
                                ("runner", RUNNER, "resolve")))
    servers[0].reload()
    eventually(lambda: raised(llmconfig.PermissionDenied, client.resolve, include_secrets=True))
    assert client.resolve() is plain  # its stream is still open


# -- faults and bounds --------------------------------------------------------------------------

def test_the_first_call_to_a_server_that_never_answers_raises_as_today():
    with socket.socket() as silent:  # accepts connections (the kernel does) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        before = set(threading.enumerate())
        with llmconfig.Client(target, watch=True, timeout=0.5) as client:
            with pytest.raises(llmconfig.ServiceUnavailable):
                client.resolve()
            with pytest.raises(llmconfig.ServiceUnavailable):
                client.resolve_runner()
            assert set(threading.enumerate()) - before == set()  # nothing started for it


@pytest.mark.under_load  # a burst: see test_overload's pytestmark
def test_ten_thousand_request_shapes_hold_at_most_max_watched_streams(server_process):
    # A server process of its own, and asyncio calls 16 at a time: each new shape costs the
    # server a resolution and a stream, and this keeps the test to seconds.
    server = server_process(["--metrics-listen", "127.0.0.1:0"])
    metrics = server.wait_for(r"metrics: http://(\S+)/metrics").group(1)

    async def ask_all() -> None:
        async with llmconfig.AsyncClient(server.target, watch=True, max_watched=4) as client:
            shapes = iter(range(10_000))

            async def asker() -> None:
                for i in shapes:
                    await client.resolve(temperature=i / 5000)

            await asyncio.gather(*(asker() for _ in range(16)))
            while open_streams(metrics) > 4:  # the evicted ones' cancellations in flight
                await asyncio.sleep(0.1)
            last = await client.resolve(temperature=9999 / 5000)
            assert last.config.temperature == 9999 / 5000

    asyncio.run(asyncio.wait_for(ask_all(), GUARD * 12))


def test_the_least_recently_used_shape_is_the_one_closed(serve, servers):
    client = serve(args=METRICS, client_options={"watch": True, "max_watched": 2})
    a = remembered(client, model="llama3.2")
    remembered(client, model="qwen2.5-coder:14b")
    assert client.resolve(model="llama3.2") is a  # used: the other one is older now
    client.resolve(model="qwen2.5-coder:7b")
    eventually(lambda: open_streams_of(servers[0]) == 2)
    assert client.resolve(model="llama3.2") is a
    asked = unary_calls(servers[0])
    client.resolve(model="qwen2.5-coder:14b")
    assert unary_calls(servers[0]) == asked + 1


def test_watched_clients_in_one_process_leave_room_for_each_others_calls(serve, servers):
    # 13 clients × 8 streams: more than the 100 one connection takes. Each watched client has a
    # connection of its own, so none of them waits behind the others' streams.
    serve(args=METRICS)

    async def scenario() -> None:
        clients = [llmconfig.AsyncClient(servers[0].target, watch=True) for _ in range(13)]
        try:
            for client in clients:
                for shape in range(8):
                    await client.resolve(temperature=shape / 10)
            while open_streams_of(servers[0]) <= 100:
                await asyncio.sleep(0.05)
            for client in clients:
                assert (await client.resolve(temperature=1.5, timeout=GUARD)).config.temperature \
                    == 1.5
        finally:
            for client in clients:
                await client.close()

    asyncio.run(asyncio.wait_for(scenario(), GUARD * 3))


def test_close_ends_the_thread_and_every_stream(serve, servers):
    serve(args=METRICS)
    before = set(threading.enumerate())
    client = llmconfig.Client(servers[0].target, watch=True)
    remembered(client)
    remembered(client, model="llama3.2")
    assert [thread.name for thread in set(threading.enumerate()) - before] == \
        ["llmconfig-watch"]  # one for all its streams
    client.close()
    assert set(threading.enumerate()) - before == set()
    eventually(lambda: open_streams_of(servers[0]) == 0)


def test_a_watched_client_dropped_unclosed_ends_its_thread_and_streams(serve, servers):
    serve(args=METRICS)
    before = set(threading.enumerate())
    client = llmconfig.Client(servers[0].target, watch=True)
    remembered(client)
    del client
    gc.collect()
    eventually(lambda: set(threading.enumerate()) - before == set())
    eventually(lambda: open_streams_of(servers[0]) == 0)


def test_max_staleness_must_be_a_positive_number_of_seconds():
    with pytest.raises(ValueError, match="max_staleness"):
        llmconfig.Client("127.0.0.1:1", watch=True, max_staleness=0)


@pytest.mark.parametrize("count", [0, 65])
def test_max_watched_is_1_to_64_leaving_room_for_calls_on_the_connection(count):
    with pytest.raises(ValueError, match="max_watched must be 1 to 64"):
        llmconfig.Client("127.0.0.1:1", watch=True, max_watched=count)


def test_the_environment_turns_watching_on(serve, servers, monkeypatch):
    monkeypatch.setenv("STIGMER_LLMCONFIG_WATCH", "1")
    serve(args=METRICS)
    with llmconfig.Client(servers[0].target) as client:
        remembered(client)
        assert open_streams_of(settled(servers[0])) == 1


# -- the runner ---------------------------------------------------------------------------------

def remembered_runner(client: llmconfig.Client, **kwargs: Any) -> llmconfig.RunnerResolved:
    def check() -> llmconfig.RunnerResolved | None:
        first = client.resolve_runner(**kwargs)
        return first if client.resolve_runner(**kwargs) is first else None
    return eventually(check)


def test_a_watched_runner_follows_a_change_of_its_llm(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    client = serve(client_options={"watch": True})
    assert remembered_runner(client).llm.config.model == "llama3.2:3b"
    path.write_text(config("qwen2.5-coder:14b"))
    servers[0].reload()
    eventually(lambda: client.resolve_runner().llm.config.model == "qwen2.5-coder:14b")


def test_a_change_of_the_runners_own_settings_reaches_a_watched_runner(serve, servers,
                                                                        workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml",
                           "local:\n  runner:\n    sandbox: {root_dir: /srv/a}\n")
    client = serve(client_options={"watch": True, "max_staleness": 1.0})
    assert remembered_runner(client).config.sandbox.root_dir == "/srv/a"
    path.write_text("local:\n  runner:\n    sandbox: {root_dir: /srv/b}\n")
    servers[0].reload()  # no LLM event: the runner is asked again every max_staleness / 2
    answer = eventually(lambda: (runner := client.resolve_runner()).config.sandbox.root_dir
                        == "/srv/b" and runner)
    assert not answer.stale


def test_a_watched_runner_is_stale_while_the_server_restarts(restartable):
    start, stop = restartable
    first = start()
    with llmconfig.Client(first.target, watch=True) as client:
        remembered_runner(client)
        stop()
        during = eventually(lambda: (runner := client.resolve_runner()).stale and runner)
        assert during.llm.stale
        start()
        eventually(lambda: not client.resolve_runner().stale)


# -- asyncio and chat_model() -------------------------------------------------------------------

def test_the_async_client_answers_from_memory_and_follows_changes(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    serve()

    async def scenario() -> None:
        async with llmconfig.AsyncClient(servers[0].target, watch=True) as client:
            async def from_memory() -> llmconfig.Resolved:
                while (first := await client.resolve()) is not await client.resolve():
                    await asyncio.sleep(0.02)
                return first

            assert (await asyncio.wait_for(from_memory(), GUARD)).config.model == "llama3.2:3b"
            path.write_text(config("qwen2.5-coder:14b"))
            servers[0].reload()
            while (await client.resolve()).config.model != "qwen2.5-coder:14b":
                await asyncio.sleep(0.02)

    asyncio.run(asyncio.wait_for(scenario(), GUARD * 2))


def test_chat_model_answers_from_one_watched_client_when_watching_is_on(serve, servers,
                                                                         workspace, monkeypatch):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    monkeypatch.setenv("STIGMER_LLMCONFIG_WATCH", "1")
    serve(args=[*METRICS, TRUST_LOOPBACK])
    from llmconfig._client import close_shared

    try:
        target = servers[0].target
        eventually(lambda: llmconfig.chat_model(target=target).model == "llama3.2:3b"
                   and open_streams_of(servers[0]) == 1)
        asked = unary_calls(servers[0])
        for _ in range(5):
            llmconfig.chat_model(target=target)
        assert unary_calls(servers[0]) == asked
        path.write_text(config("qwen2.5-coder:14b"))
        servers[0].reload()
        eventually(lambda: llmconfig.chat_model(target=target).model == "qwen2.5-coder:14b")
    finally:
        close_shared()
