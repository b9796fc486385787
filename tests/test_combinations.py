"""Every service behaves the same whatever features are on: metrics, tokens, TLS, a Unix
listener, JSON logs. Each combination is a real `llmconfig-server` process, checked over each
of its listeners with grpcurl (list, describe of a service and of a method, a call), raw gRPC
(reflection v1 and v1alpha, grpc.health.v1 Check and Watch) and the real client (every
llmconfig.v1 RPC, the WatchLLMConfig stream included), and its log must hold no traceback.

Five on/off features make 32 servers; a covering array of strength 2 (every pair of features
seen in all four on/off combinations) needs 6, all-off and all-on among them. Features break
each other in pairs (metrics × reflection was the bug that asked for this test), and 6 servers
keep the test to seconds where 32 would add a minute to every run of the suite.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

import llmconfig
from llmconfig_server.access.tokens import digest_of

import pki
from conftest import GRPCURL

FEATURES = ("metrics", "tokens", "tls", "unix", "json")
COVERING = [
    (0, 0, 0, 0, 0),
    (1, 1, 1, 1, 1),
    (0, 0, 0, 1, 1),
    (0, 1, 1, 0, 0),
    (1, 0, 1, 0, 1),
    (1, 1, 0, 1, 0),
]
TOKEN = "llmc_combination-test-token"
SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection", "llmconfig.v1.LLMConfigService"]
METHOD_SYMBOL = "llmconfig.v1.LLMConfigService.ResolveLLMConfig"


def test_the_covering_array_covers_every_pair():
    for i in range(len(FEATURES)):
        for j in range(i + 1, len(FEATURES)):
            assert {(row[i], row[j]) for row in COVERING} == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pki.Pki:
    return pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="llmc-", dir="/tmp"))  # short: sun_path ≤ 107 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class Target:
    """One listener of the server under test, as grpcurl, raw gRPC and the client reach it."""

    def __init__(self, address: str, tls: pki.Pki | None, token: str | None) -> None:
        self.address, self.tls, self.token = address, tls, token

    def grpcurl(self, *verb: str, data: str | None = None, token: bool = False,
                ) -> subprocess.CompletedProcess[str]:
        options = ["-d", data] if data is not None else []
        where = ["-unix", self.address[len("unix:"):]] if self.address.startswith("unix:") \
            else [self.address]
        security = ["-cacert", str(self.tls.ca)] if self.tls else ["-plaintext"]
        auth = ["-H", f"authorization: Bearer {self.token}"] if token and self.token else []
        return subprocess.run([GRPCURL, *security, *auth, *options, *where, *verb],
                              capture_output=True, text=True, timeout=30)

    def channel(self) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(self.address, grpc.ssl_channel_credentials(
                self.tls.ca.read_bytes()))
        return grpc.insecure_channel(self.address)

    def client(self) -> llmconfig.Client:
        return llmconfig.Client(self.address, token=self.token,
                                ca_file=str(self.tls.ca) if self.tls else None)


def start_server(server_process, workspace, certs, socket_dir, features: dict[str, int]):
    args = ["--drain-seconds", "0", "--reload-interval", "0"]
    if features["metrics"]:
        args += ["--metrics-listen", "127.0.0.1:0"]
    if features["tokens"]:
        path = workspace.write("tokens.yaml", f"tokens:\n  - name: all\n    sha256: "
                                              f"{digest_of(TOKEN)}\n"
                                              "    scopes: [resolve, health, secrets]\n")
        args += ["--tokens-file", str(path)]
    if features["tls"]:
        args += ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    if features["unix"]:
        args += ["--listen", f"unix:{socket_dir}/llmc.sock"]
    if features["json"]:
        args += ["--log-format", "json"]
    handle = server_process(args)
    targets = [Target(handle.target, certs if features["tls"] else None,
                      TOKEN if features["tokens"] else None)]
    if features["unix"]:  # Unix sockets stay plaintext: file permissions guard them
        targets.append(Target(f"unix:{socket_dir}/llmc.sock", None,
                              TOKEN if features["tokens"] else None))
    return handle, targets


def reflection_answers(target: Target, service: str) -> list[Any]:
    requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=METHOD_SYMBOL)]
    with target.channel() as channel:
        call = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        return list(call(iter(requests), timeout=10))


def check_target(target: Target) -> None:
    listed = target.grpcurl("list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == SERVICES
    described = target.grpcurl("describe", "llmconfig.v1.LLMConfigService")
    assert described.returncode == 0, described.stderr
    assert "rpc WatchLLMConfig ( .llmconfig.v1.WatchLLMConfigRequest )" in described.stdout
    method = target.grpcurl("describe", METHOD_SYMBOL)
    assert method.returncode == 0, method.stderr
    assert f"{METHOD_SYMBOL} is a method" in method.stdout
    called = target.grpcurl("llmconfig.v1.LLMConfigService/ResolveLLMConfig", token=True,
                            data='{"overrides": {"model": "llama3.2"}}')
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["config"]["model"] == "llama3.2:3b"
    health = target.grpcurl("grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}

    for service in ("grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection"):
        listing, symbol = reflection_answers(target, service)
        assert [s.name for s in listing.list_services_response.service] == SERVICES
        assert symbol.file_descriptor_response.file_descriptor_proto, symbol
    with target.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="llmconfig.v1.LLMConfigService"),
                           timeout=10)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()

    with target.client() as client:
        assert client.resolve(model="llama3.2").config.model == "llama3.2:3b"
        assert client.resolve_runner().config.temporal.address
        assert client.check_health(timeout=10).provider == "ollama"
        first = next(iter(client.watch()))
        assert first.ok and first.resolved is not None
        assert first.resolved.config.provider == "ollama"
    if target.token:  # the same answer for a caller without the token, whatever else is on
        with llmconfig.Client(target.address, ca_file=str(target.tls.ca) if target.tls
                              else None) as anonymous, \
                pytest.raises(llmconfig.Unauthenticated):
            anonymous.resolve()


@pytest.mark.parametrize("row", COVERING,
                         ids=["+".join(f for f, on in zip(FEATURES, row, strict=True) if on)
                              or "none" for row in COVERING])
def test_every_service_answers_the_same_with_any_features_on(server_process, workspace, certs,
                                                             socket_dir, row):
    features = dict(zip(FEATURES, row, strict=True))
    handle, targets = start_server(server_process, workspace, certs, socket_dir, features)
    for target in targets:
        check_target(target)
    if features["metrics"]:
        address = handle.wait_for(r"metrics: http://(\S+?)/metrics").group(1)
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        assert 'grpc_code="Unknown"' not in text
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="ServerReflectionInfo"' \
            in text
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    assert "Traceback" not in handle.log
    if features["json"]:
        for line in handle.lines:
            json.loads(line)
