"""The client library: typed results and errors, retries, targets, the async client."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest

import llmconfig
from llmconfig import HealthStatus, Source
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc

from conftest import ANTHROPIC_KEY, ServerThread, inputs_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedServer:
    """A stand-in LLMConfigService that answers a scripted list of status codes, then OK, and
    counts the attempts: it observes the client's retry behaviour."""

    def __init__(self, codes: list[grpc.StatusCode]) -> None:
        self.codes = list(codes)
        self.attempts = 0
        outer = self

        class Servicer(pb_grpc.LLMConfigServiceServicer):
            def ResolveLLMConfig(self, request, context):
                outer.attempts += 1
                if outer.codes:
                    context.abort(outer.codes.pop(0), "scripted")
                return pb.ResolveLLMConfigResponse(config=pb.LLMConfig(provider="ollama"))

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_LLMConfigServiceServicer_to_server(Servicer(), self.server)
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


def test_unavailable_answers_are_retried(request):
    scripted = ScriptedServer([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE])
    request.addfinalizer(scripted.stop)
    with llmconfig.Client(scripted.target) as client:
        assert client.resolve().config.provider == "ollama"
    assert scripted.attempts == 3


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.FAILED_PRECONDITION,
                                  grpc.StatusCode.INTERNAL,
                                  grpc.StatusCode.PERMISSION_DENIED])
def test_other_errors_are_not_retried(request, code):
    scripted = ScriptedServer([code])
    request.addfinalizer(scripted.stop)
    with llmconfig.Client(scripted.target) as client, pytest.raises(llmconfig.LLMConfigError):
        client.resolve()
    assert scripted.attempts == 1


def test_client_waits_for_a_server_that_starts_late(workspace):
    port = free_port()
    started: list[ServerThread] = []

    def start_late() -> None:
        time.sleep(0.8)
        started.append(ServerThread(inputs_for(workspace, args=["--listen",
                                                                f"127.0.0.1:{port}"])))

    threading.Thread(target=start_late).start()
    try:
        with llmconfig.Client(f"127.0.0.1:{port}", timeout=10) as client:
            assert client.resolve().config.provider == "ollama"
    finally:
        while not started:
            time.sleep(0.05)
        started[0].stop()


def test_unreachable_service_raises_service_unavailable():
    with llmconfig.Client(f"127.0.0.1:{free_port()}", timeout=1) as client, \
            pytest.raises(llmconfig.ServiceUnavailable):
        client.resolve()


def test_invalid_argument_is_config_invalid_with_violations(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve().resolve(temperature=9.0)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.reason == "OUT_OF_RANGE"
    assert caught.value.violations == (llmconfig.Violation(
        "overrides.temperature", "OUT_OF_RANGE",
        "overrides.temperature: temperature 9.0 is out of range for ollama (0.0–2.0)"),)


def test_failed_precondition_is_precondition_failed_with_violations(serve):
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        serve().resolve("cloud")
    assert caught.value.violations[0].subject == "ANTHROPIC_API_KEY"
    assert caught.value.violations[0].reason == "API_KEY_MISSING"


def test_permission_denied_is_permission_denied(serve):
    with pytest.raises(llmconfig.PermissionDenied):
        serve().check_health(base_url="http://10.0.0.1:11434")


def test_target_comes_from_the_environment(serve, monkeypatch):
    target = serve().target
    monkeypatch.setenv("STIGMER_LLMCONFIG_TARGET", target)
    with llmconfig.Client() as client:
        assert client.target == target
        assert client.resolve().config.provider == "ollama"


def test_default_target_is_the_servers_default_listen_address(monkeypatch):
    monkeypatch.delenv("STIGMER_LLMCONFIG_TARGET", raising=False)
    with llmconfig.Client() as client:
        assert client.target == "127.0.0.1:50061"


def test_results_are_immutable(serve):
    resolved = serve().resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.config.model = "other"  # type: ignore[misc]
    assert isinstance(resolved.origins, tuple)


def test_origins_are_typed(serve):
    resolved = serve(env={"STIGMER_LLM_MODEL": "phi4:14b"}).resolve()
    assert resolved.origin("model") == llmconfig.Origin("model", Source.ENV, "STIGMER_LLM_MODEL")


def test_async_client_resolves_and_checks_health(serve):
    target = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).target

    async def run() -> tuple[llmconfig.Resolved, llmconfig.Health]:
        async with llmconfig.AsyncClient(target) as client:
            return (await client.resolve(model="claude-opus-4.6"),
                    await client.check_health("openai"))

    resolved, health = asyncio.run(run())
    assert resolved.config.model == "claude-opus-4-6"
    assert health.status is HealthStatus.NOT_CONFIGURED


def test_async_client_raises_typed_errors(serve):
    target = serve().target

    async def run() -> None:
        async with llmconfig.AsyncClient(target) as client:
            await client.resolve(provider="gemini")

    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        asyncio.run(run())
    assert caught.value.violations[0].reason == "UNKNOWN_PROVIDER"


# -- the public surface (issue 19: one request builder, __all__ pinned) ------------------------

PUBLIC = [
    "DEFAULT_TARGET", "DEFAULT_TIMEOUT", "TARGET_ENV",
    "AsyncClient", "Change", "Client", "ConfigInvalid", "Health", "HealthStatus", "LLMConfig",
    "LLMConfigError", "MissingSecret", "ModelInfo", "ModelStatus", "Origin", "PermissionDenied",
    "PreconditionFailed", "Resolved", "RunnerConfig", "RunnerResolved", "ServiceUnavailable",
    "Source", "Unauthenticated", "Unimplemented", "Violation",
    "chat_model",
]


def test_the_public_names_are_pinned_and_sorted_constants_classes_functions():
    assert llmconfig.__all__ == PUBLIC  # a name added or dropped is a decision: say it here
    def group(name: str) -> tuple[int, str]:  # ruff's RUF022 order, as isort sorts imports
        return (0 if name.isupper() else 1 if name[0].isupper() else 2), name

    assert sorted(PUBLIC, key=group) == PUBLIC


def test_every_public_name_can_be_imported():
    for name in PUBLIC:
        assert getattr(llmconfig, name) is not None


@pytest.mark.parametrize("method", ["resolve", "resolve_runner", "check_health", "list_models",
                                    "watch", "close"])
def test_the_async_client_takes_the_calls_of_the_blocking_one(method):
    awaited = inspect.signature(getattr(llmconfig.AsyncClient, method)).parameters
    assert awaited == inspect.signature(getattr(llmconfig.Client, method)).parameters


@pytest.mark.parametrize("method", ["resolve", "resolve_runner", "watch"])
def test_an_unknown_override_is_a_type_error_naming_the_overrides(method):
    with llmconfig.Client("127.0.0.1:1") as client, pytest.raises(TypeError) as caught:
        next(iter(getattr(client, method)(modle="llama3.2")))
    assert f"{method}() got an unexpected keyword argument 'modle'" in str(caught.value)
    assert "model, provider, temperature" in str(caught.value)
