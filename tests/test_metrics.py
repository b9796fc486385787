"""Prometheus metrics: scraped over HTTP after real calls, with go-grpc-prometheus names."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

import llmconfig
from llmconfig_server.access.tokens import digest_of

from conftest import GRPCURL, startup_refusal

TOKEN = "llmc_metrics-test-token"


def scrape(server, settled: str = "") -> str:
    """/metrics; with `settled`, once that line appears (an aborted call's status reaches the
    caller before the server's handler has returned and counted it)."""
    url = f"http://{server.running.metrics_address}/metrics"
    deadline = time.monotonic() + 3
    while True:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        if settled in text or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


RESOLVE = {"grpc_service": "llmconfig.v1.LLMConfigService", "grpc_method": "ResolveLLMConfig",
           "grpc_type": "unary"}


def test_metrics_count_the_calls_made(serve, servers):
    client = serve(args=["--metrics-listen", "127.0.0.1:0"])
    for _ in range(3):
        client.resolve()
    with pytest.raises(llmconfig.ConfigInvalid):
        client.resolve(temperature=9.0)
    text = scrape(servers[0], 'grpc_code="InvalidArgument"')
    assert value(text, "grpc_server_started_total", **RESOLVE) == 4
    assert value(text, "grpc_server_handled_total", grpc_code="OK", **RESOLVE) == 3
    assert value(text, "grpc_server_handled_total", grpc_code="InvalidArgument", **RESOLVE) == 1
    assert value(text, "grpc_server_handling_seconds_count", **RESOLVE) == 4


def test_metrics_count_refused_callers_under_their_code(serve, servers, workspace):
    path = workspace.write("tokens.yaml", f"tokens:\n  - name: r\n    sha256: "
                                          f"{digest_of(TOKEN)}\n    scopes: [resolve]\n")
    client = serve(args=["--metrics-listen", "127.0.0.1:0", "--tokens-file", str(path)])
    with pytest.raises(llmconfig.Unauthenticated):
        client.resolve()
    text = scrape(servers[0], 'grpc_code="Unauthenticated"')
    assert value(text, "grpc_server_handled_total", grpc_code="Unauthenticated", **RESOLVE) == 1


def test_metrics_are_off_by_default(serve, servers):
    serve()
    assert servers[0].running.metrics_address is None


def test_a_bad_metrics_address_is_refused(workspace):
    handle = startup_refusal(workspace, ["--metrics-listen", "nowhere"])
    assert "--metrics-listen: 'nowhere' is not HOST:PORT" in handle.log


def test_a_metrics_port_alone_means_loopback(server_process):
    handle = server_process(["--metrics-listen", ":0"])
    assert re.search(r"metrics: http://127\.0\.0\.1:\d+/metrics", handle.log)


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "metrics.example:9090"])
def test_a_metrics_listener_beyond_loopback_is_refused_naming_the_fix(workspace, address):
    handle = startup_refusal(workspace, ["--metrics-listen", address])
    assert "is reachable from other machines" in handle.log
    assert "--metrics-public" in handle.log and "127.0.0.1:PORT" in handle.log


@pytest.mark.parametrize("flag", ["--metrics-public", "--insecure"])
def test_a_metrics_listener_beyond_loopback_serves_when_the_operator_says_so(server_process,
                                                                             flag):
    handle = server_process(["--metrics-listen", "0.0.0.0:0", flag])
    port = handle.wait_for(r"metrics: http://0\.0\.0\.0:(\d+)/metrics").group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert b"grpc_server_started_total" in answer.read()


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def test_idle_metrics_connections_do_not_become_threads(server_process):
    handle = server_process(["--metrics-listen", "127.0.0.1:0"])
    address = handle.wait_for(r"metrics: http://(\S+?)/metrics").group(1)
    host, _, port = address.rpartition(":")
    before = _threads(handle.proc.pid)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(1000)]
    try:
        time.sleep(0.5)  # time for a thread-per-connection server to have started them all
        during = _threads(handle.proc.pid)
        # A scraper still gets through (a new connection displaces the idlest one).
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
            assert b"grpc_server_started_total" in answer.read()
    finally:
        for connection in idle:
            connection.close()
    assert during - before <= 2, (before, during)


def test_metrics_answer_only_get_of_metrics(server_process):
    handle = server_process(["--metrics-listen", "127.0.0.1:0"])
    address = handle.wait_for(r"metrics: http://(\S+?)/metrics").group(1)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://{address}/other", timeout=10)
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as posted:
        urllib.request.urlopen(f"http://{address}/metrics", data=b"x", timeout=10)
    assert posted.value.code in (400, 405)


def test_the_startup_block_says_where_metrics_are(server_process):
    handle = server_process(["--metrics-listen", "127.0.0.1:0"])
    assert re.search(r"metrics: http://127\.0\.0\.1:\d+/metrics", handle.log)


def test_metrics_count_secrets_served_by_token(serve, servers):
    from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK

    client = serve(args=[TRUST_LOOPBACK, "--metrics-listen", "127.0.0.1:0"],
                   env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    client.resolve(include_secrets=True)
    client.resolve()
    text = scrape(servers[0], "llmconfig_secrets_served_total{")
    assert value(text, "llmconfig_secrets_served_total", token="trusted") == 1


def test_metrics_show_provider_health_probes_reloads_and_revision(serve, servers, workspace,
                                                                  emulators):
    import providers

    ollama = providers.ollama()
    emulators.append(ollama)
    path = workspace.write("~/.stigmer/llmconfig.yaml", f"llm:\n  base_url: {ollama.url}\n")
    client = serve(args=["--metrics-listen", "127.0.0.1:0"])
    client.check_health()
    client.check_health(model="llama3.2")  # not the server's own target: counted, no series
    path.write_text(f"llm:\n  base_url: {ollama.url}\n  model: llama3.2\n")
    servers[0].reload()
    text = scrape(servers[0], 'llmconfig_config_reloads_total{result="applied"}')
    assert value(text, "llmconfig_provider_probes_total", provider="ollama",
                 status="HEALTHY") == 1
    assert value(text, "llmconfig_provider_probes_total", provider="ollama",
                 status="MODEL_NOT_FOUND") == 1
    assert value(text, "llmconfig_provider_health", provider="ollama", base_url=ollama.url,
                 status="HEALTHY") == 1
    assert value(text, "llmconfig_provider_health", provider="ollama", base_url=ollama.url,
                 status="UNREACHABLE") == 0
    assert value(text, "llmconfig_config_reloads_total", result="applied") == 1
    revision = client.resolve().revision
    assert value(text, "llmconfig_config_info", revision=revision) == 1


def test_metrics_count_messages_received_and_sent_by_unary_calls(serve, servers):
    client = serve(args=["--metrics-listen", "127.0.0.1:0"])
    client.resolve()
    client.resolve()
    text = scrape(servers[0], "grpc_server_msg_received_total{")
    assert value(text, "grpc_server_msg_received_total", **RESOLVE) == 2
    assert value(text, "grpc_server_msg_sent_total", **RESOLVE) == 2


@pytest.mark.parametrize(("method", "labels"), [
    ("/llmconfig.v1.LLMConfigService/WatchLLMConfig",
     {"grpc_service": "llmconfig.v1.LLMConfigService", "grpc_method": "WatchLLMConfig"}),
    ("/grpc.health.v1.Health/Watch", {"grpc_service": "grpc.health.v1.Health",
                                      "grpc_method": "Watch"}),
])
def test_a_stream_the_client_cancels_is_counted_canceled(serve, servers, method, labels):
    serve(args=["--metrics-listen", "127.0.0.1:0"])
    with grpc.insecure_channel(servers[0].target) as channel:
        for _ in range(5):
            call = channel.unary_stream(method)(b"", timeout=10)
            next(call)  # the first message is out: the handler is waiting for the next
            call.cancel()
    text = scrape(servers[0], f'grpc_code="Canceled",grpc_method="{labels["grpc_method"]}"')
    counted = {code: value(text, "grpc_server_handled_total", grpc_code=code, **labels)
               for code in ("Canceled", "Unknown", "OK")}
    deadline = time.monotonic() + 5
    while counted["Canceled"] < 5 and time.monotonic() < deadline:
        text = scrape(servers[0])
        counted = {code: value(text, "grpc_server_handled_total", grpc_code=code, **labels)
                   for code in counted}
        time.sleep(0.05)
    assert counted == {"Canceled": 5, "Unknown": 0, "OK": 0}
    assert value(text, "grpc_server_msg_sent_total", **labels) == 5


def test_reflection_is_counted_with_metrics_on(serve, servers):
    serve(args=["--metrics-listen", "127.0.0.1:0"])
    done = subprocess.run([GRPCURL, "-plaintext", servers[0].target, "list"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    text = scrape(servers[0], 'grpc_code="OK",grpc_method="ServerReflectionInfo"')
    assert value(text, "grpc_server_handled_total", grpc_code="OK",
                 grpc_method="ServerReflectionInfo") >= 1
    assert value(text, "grpc_server_msg_received_total",
                 grpc_method="ServerReflectionInfo") >= 1
