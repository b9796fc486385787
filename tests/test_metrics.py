"""Prometheus metrics: scraped over HTTP after real calls, with go-grpc-prometheus names."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

import llmconfig
from llmconfig_server.tokens import digest_of

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


def test_a_bad_metrics_address_is_refused(server_process):
    handle = server_process(["--metrics-listen", "nowhere"], wait_ready=False)
    assert handle.finish() == 2
    assert "--metrics-listen: 'nowhere' is not HOST:PORT" in handle.log


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
