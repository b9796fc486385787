"""--health-listen: grpc.health.v1 alone, in plaintext and without a token, for probes that can
do neither TLS nor tokens (the kubelet's gRPC probe before Kubernetes 1.37's `mode`). It answers
what the main listeners' health service answers, NOT_SERVING during a drain included, and
serves nothing else: no key is reachable on it."""

from __future__ import annotations

import signal
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import llmconfig
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig_server.access.tokens import digest_of

import pki
from conftest import ANTHROPIC_KEY

SERVICE = "llmconfig.v1.LLMConfigService"
HEALTH_LINE = r"health: grpc\.health\.v1 alone on (\S+) \(plaintext, no token\)"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pki.Pki:
    return pki.make(tmp_path_factory.mktemp("pki"))


def check(address: str, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
    return answer.status


def health_address(serve, servers, args: list[str], **options) -> str:
    serve(args=[*args, "--health-listen", "127.0.0.1:0"], **options)
    address = servers[-1].running.health_address
    assert address is not None
    return address


@pytest.mark.parametrize("service", ["", SERVICE])
def test_the_health_listener_answers_serving(serve, servers, service):
    assert check(health_address(serve, servers, []), service) == \
        health_pb2.HealthCheckResponse.SERVING


def test_the_health_listener_serves_no_llmconfig_service_so_no_key(serve, servers):
    address = health_address(serve, servers, ["--trust-loopback"],
                             env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"})
    with grpc.insecure_channel(address) as channel:
        resolve = channel.unary_unary(f"/{SERVICE}/ResolveLLMConfig",
                                      request_serializer=pb.ResolveLLMConfigRequest.SerializeToString,
                                      response_deserializer=pb.ResolveLLMConfigResponse.FromString)
        with pytest.raises(grpc.RpcError) as raised:
            resolve(pb.ResolveLLMConfigRequest(include_secrets=True), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_health_listener_serves_no_reflection(serve, servers):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    address = health_address(serve, servers, [])
    with grpc.insecure_channel(address) as channel:
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        with pytest.raises(grpc.RpcError) as raised:
            list(replies)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_health_listener_needs_neither_tls_nor_a_token_where_the_service_does(
        serve, servers, workspace, certs):
    tokens = workspace.write("tokens.yaml", "tokens:\n  - name: runner\n"
                             f"    sha256: {digest_of('llmc_runner-token')}\n"
                             "    scopes: [resolve]\n")
    address = health_address(
        serve, servers, ["--tokens-file", str(tokens), "--tls-cert", str(certs.server_cert),
                         "--tls-key", str(certs.server_key)],
        client_options={"ca_file": str(certs.ca), "token": "llmc_runner-token"})
    assert check(address) == health_pb2.HealthCheckResponse.SERVING
    # The service's own listener still refuses a plaintext caller.
    with grpc.insecure_channel(servers[-1].target) as channel, \
            pytest.raises(grpc.RpcError) as raised:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_health_listeners_watch_streams_count_in_the_watch_budget(serve, servers):
    # --max-watch-streams 5: one stream without a token over TCP (a fifth).
    address = health_address(serve, servers, ["--max-watch-streams", "5"])
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        first = stub.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        assert next(first).status == health_pb2.HealthCheckResponse.SERVING
        second = stub.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        with pytest.raises(grpc.RpcError) as raised:
            next(second)
        first.cancel()
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_health_listener_refuses_a_service_name_longer_than_any_real_one(serve, servers):
    with pytest.raises(grpc.RpcError) as raised:
        check(health_address(serve, servers, []), "x" * 1000)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_sigterm_turns_the_health_listener_not_serving_during_the_drain(server_process):
    handle = server_process(["--health-listen", "127.0.0.1:0", "--drain-seconds", "5",
                             "--shutdown-grace", "1"])
    address = handle.wait_for(HEALTH_LINE).group(1)
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=30)
    seen: list[int] = []
    changed = threading.Event()

    def read() -> None:
        try:
            for update in watch:
                seen.append(update.status)
                changed.set()
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    assert changed.wait(10) and seen == [health_pb2.HealthCheckResponse.SERVING]
    changed.clear()
    handle.proc.send_signal(signal.SIGTERM)
    assert changed.wait(10)
    # The drain has begun: the service still serves, the probes see NOT_SERVING.
    during = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
    with llmconfig.Client(handle.target) as client:
        assert client.resolve().config.provider == "ollama"
    assert handle.finish() == 0
    reader.join(timeout=10)
    channel.close()
    assert seen == [health_pb2.HealthCheckResponse.SERVING,
                    health_pb2.HealthCheckResponse.NOT_SERVING]
    assert during == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
def test_a_health_listener_beyond_loopback_is_refused_naming_the_fix(server_process, address):
    handle = server_process(["--health-listen", address], wait_ready=False)
    assert handle.finish() == 2
    assert "--health-public" in handle.log and "127.0.0.1:PORT" in handle.log


@pytest.mark.parametrize("flag", ["--health-public", "--insecure"])
def test_a_health_listener_beyond_loopback_serves_when_the_operator_says_so(server_process,
                                                                           flag):
    handle = server_process(["--health-listen", "0.0.0.0:0", flag])
    port = handle.wait_for(r"health: grpc\.health\.v1 alone on 0\.0\.0\.0:(\d+)").group(1)
    assert check(f"127.0.0.1:{port}") == health_pb2.HealthCheckResponse.SERVING


def test_health_listen_port_alone_means_loopback(server_process):
    handle = server_process(["--health-listen", ":0"])
    address = handle.wait_for(HEALTH_LINE).group(1)
    assert address.startswith("127.0.0.1:")


@pytest.mark.parametrize("value", ["unix:/tmp/health.sock", "50062", "127.0.0.1:port"])
def test_health_listen_takes_host_and_port_only(server_process, value):
    handle = server_process(["--health-listen", value], wait_ready=False)
    assert handle.finish() == 2
    assert "--health-listen" in handle.log


def test_health_listen_on_a_service_address_is_refused(server_process):
    handle = server_process(["--listen", "127.0.0.1:50999", "--health-listen", "127.0.0.1:50999"],
                            wait_ready=False)
    assert handle.finish() == 2
    assert "also a --listen address" in handle.log
