"""Who may call what: tokens and scopes per RPC, the open health and reflection services, the
secrets scope (also for remembered answers), the audit line, and the clients' token support."""

from __future__ import annotations

import logging
import os

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import llmconfig
from llmconfig_server.access.tokens import digest_of

from conftest import ANTHROPIC_KEY

RESOLVER, SECRETS, HEALTHER = "llmc_resolver-token", "llmc_secrets-token", "llmc_health-token"
UNKNOWN = "llmc_nobody-knows-this-one"


def tokens_yaml() -> str:
    entries = [("runner", RESOLVER, "[resolve]"), ("keyholder", SECRETS, "[resolve, secrets]"),
               ("daemon", HEALTHER, "[health]")]
    return "tokens:\n" + "".join(
        f"  - name: {name}\n    sha256: {digest_of(token)}\n    scopes: {scopes}\n"
        for name, token, scopes in entries)


@pytest.fixture
def guarded(serve, workspace):
    """A server with a tokens file; returns a function giving a client with a given token."""
    path = workspace.write("tokens.yaml", tokens_yaml())
    first = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                  args=["--tokens-file", str(path), "--probe-timeout", "0.5"])
    clients = []

    def client(token: str | None) -> llmconfig.Client:
        made = llmconfig.Client(first.target, token=token) if token else \
            llmconfig.Client(first.target)
        clients.append(made)
        return made

    yield client
    for made in clients:
        made.close()


CALLS = {
    "resolve": lambda c: c.resolve(),
    "secrets": lambda c: c.resolve(include_secrets=True),
    "health": lambda c: c.check_health(provider="ollama"),  # nothing on :11434: UNREACHABLE
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_no_token_is_unauthenticated(guarded, call, monkeypatch):
    monkeypatch.delenv("STIGMER_LLMCONFIG_TOKEN", raising=False)
    monkeypatch.delenv("STIGMER_LLMCONFIG_TOKEN_FILE", raising=False)
    with pytest.raises(llmconfig.Unauthenticated) as caught:
        CALLS[call](guarded(None))
    assert caught.value.reason == "TOKEN_MISSING"
    assert "STIGMER_LLMCONFIG_TOKEN_FILE" in caught.value.message


@pytest.mark.parametrize("call", sorted(CALLS))
def test_unknown_token_is_unauthenticated(guarded, call):
    with pytest.raises(llmconfig.Unauthenticated) as caught:
        CALLS[call](guarded(UNKNOWN))
    assert caught.value.reason == "TOKEN_UNKNOWN"


@pytest.mark.parametrize(("call", "token", "scope"), [
    ("resolve", HEALTHER, "resolve"),
    ("secrets", RESOLVER, "secrets"),
    ("secrets", HEALTHER, "resolve"),
    ("health", RESOLVER, "health"),
    ("health", SECRETS, "health"),
])
def test_token_without_the_scope_is_permission_denied_naming_it(guarded, call, token, scope):
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        CALLS[call](guarded(token))
    assert caught.value.reason == "SCOPE_MISSING"
    assert f"lacks the {scope!r} scope" in caught.value.message


@pytest.mark.parametrize(("call", "token"), [
    ("resolve", RESOLVER), ("resolve", SECRETS), ("secrets", SECRETS), ("health", HEALTHER),
])
def test_token_with_the_scope_is_served(guarded, call, token):
    answer = CALLS[call](guarded(token))
    if call == "secrets":
        assert answer.config.api_key == ANTHROPIC_KEY
    elif call == "resolve":
        assert answer.config.api_key == ""


def test_a_remembered_answer_with_the_key_still_needs_the_secrets_scope(guarded):
    assert guarded(SECRETS).resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY
    with pytest.raises(llmconfig.PermissionDenied):
        guarded(RESOLVER).resolve(include_secrets=True)


def test_a_remembered_health_answer_still_needs_the_health_scope(guarded):
    healther = guarded(HEALTHER)
    healther.check_health(provider="ollama")
    assert healther.check_health(provider="ollama").cached  # its bytes are remembered now
    with pytest.raises(llmconfig.PermissionDenied):
        guarded(RESOLVER).check_health(provider="ollama")
    with pytest.raises(llmconfig.Unauthenticated):
        guarded(UNKNOWN).check_health(provider="ollama")


def test_health_protocol_and_reflection_need_no_token(guarded):
    target = guarded(None).target
    with grpc.insecure_channel(target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            list_services="")]), timeout=5)
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert "llmconfig.v1.LLMConfigService" in names


def test_a_non_bearer_authorization_is_unauthenticated(guarded):
    target = guarded(None).target
    with grpc.insecure_channel(target) as channel:
        from llmconfig.v1 import llmconfig_pb2, llmconfig_pb2_grpc
        stub = llmconfig_pb2_grpc.LLMConfigServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ResolveLLMConfig(llmconfig_pb2.ResolveLLMConfigRequest(), timeout=5,
                                  metadata=(("authorization", f"Basic {RESOLVER}"),))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_undecodable_bytes_without_a_token_are_unauthenticated_not_parsed(guarded):
    target = guarded(None).target
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/llmconfig.v1.LLMConfigService/CheckProviderHealth",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as caught:
            call(b"\xff\xff\xff", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_the_token_comes_from_the_token_file_variable(guarded, workspace, monkeypatch):
    path = workspace.write("runner.token", SECRETS + "\n")
    monkeypatch.setenv("STIGMER_LLMCONFIG_TOKEN_FILE", str(path))
    assert guarded(None).resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY


def test_a_secret_answer_is_audited_with_token_peer_rpc_provider_and_hint(guarded, caplog):
    caplog.set_level(logging.INFO, logger="llmconfig_server.audit")
    client = guarded(SECRETS)
    for _ in range(2):  # the second answer is a remembered one: audited all the same
        client.resolve(include_secrets=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "llmconfig_server.audit"]
    assert len(lines) == 2
    assert lines[0].startswith("secret served: token=keyholder peer=ipv4:127.0.0.1:")
    assert "rpc=ResolveLLMConfig provider=anthropic key=sk-ant-…f2c9" in lines[0]
    assert ANTHROPIC_KEY not in caplog.text


def test_an_answer_without_the_key_is_not_audited(guarded, caplog):
    caplog.set_level(logging.INFO, logger="llmconfig_server.audit")
    guarded(SECRETS).resolve()
    assert not [r for r in caplog.records if r.name == "llmconfig_server.audit"]


def test_without_a_tokens_file_the_caller_is_trusted_and_audited_with_its_uid(
        serve, socket_dir, caplog):
    caplog.set_level(logging.INFO, logger="llmconfig_server.audit")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   args=["--listen", f"unix:{socket_dir}/llmc.sock"])
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY
    assert f"secret served: token=trusted peer=unix: uid={os.getuid()} " in caplog.text


def test_chat_model_works_with_a_token(guarded, monkeypatch):
    monkeypatch.setenv("STIGMER_LLMCONFIG_TOKEN", SECRETS)
    model = llmconfig.chat_model(target=guarded(None).target)
    assert type(model).__name__ == "ChatAnthropic"


def test_async_client_sends_its_token(guarded):
    import asyncio

    target = guarded(None).target

    async def ask() -> str:
        async with llmconfig.AsyncClient(target, token=SECRETS) as client:
            return (await client.resolve(include_secrets=True)).config.api_key

    assert asyncio.run(ask()) == ANTHROPIC_KEY


# -- keys over a TCP listener without tokens (issue 15, row 7) --------------------------------

def test_a_key_over_loopback_tcp_without_tokens_is_refused_naming_the_three_ways(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        client.resolve(include_secrets=True)
    assert caught.value.reason == "LOOPBACK_NOT_TRUSTED"
    for way in ("--listen unix:PATH", "--tokens-file", "--trust-loopback"):
        assert way in caught.value.message
    assert client.resolve().config.api_key_present  # the rest of the answer is served


def test_trust_loopback_hands_the_key_to_a_loopback_caller(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--trust-loopback"])
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY


def test_an_answer_without_a_key_is_served_to_a_loopback_caller_asking_for_secrets(serve):
    # Ollama needs no key: chat_model() asks include_secrets and must work on `make run`.
    assert serve().resolve(include_secrets=True).config.provider == "ollama"


def test_runner_secrets_over_loopback_tcp_without_tokens_are_refused(serve):
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        serve().resolve_runner(include_secrets=True)  # the local backend key is a secret
    assert caught.value.reason == "LOOPBACK_NOT_TRUSTED"


def test_a_keyed_watch_event_over_loopback_tcp_without_tokens_ends_the_stream(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        next(iter(client.watch(include_secrets=True)))
    assert caught.value.reason == "LOOPBACK_NOT_TRUSTED"


def test_a_unix_socket_caller_gets_the_key_without_tokens(serve, servers, socket_dir):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   args=["--listen", f"unix:{socket_dir}/llmc.sock", "--listen", "127.0.0.1:0"])
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY
    tcp = servers[0].running.addresses[1]
    with llmconfig.Client(tcp) as over_tcp, pytest.raises(llmconfig.PermissionDenied):
        over_tcp.resolve(include_secrets=True)


def test_trust_loopback_does_not_trust_other_machines(serve):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it picks the outgoing address
            own = probe.getsockname()[0]
        except OSError:
            own = "127.0.0.1"
    if own.startswith("127."):
        pytest.skip("this machine has no address beyond loopback")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   args=["--listen", "0.0.0.0:0", "--insecure", "--trust-loopback"])
    port = client.target.rsplit(":", 1)[1]
    with llmconfig.Client(f"{own}:{port}") as remote, \
            pytest.raises(llmconfig.PermissionDenied) as caught:
        remote.resolve(include_secrets=True)
    assert caught.value.reason == "TOKEN_REQUIRED_FOR_SECRETS"
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY  # loopback
