"""Loopback is decided once (`llmconfig_server.resolve.network.is_loopback`), on the parsed
host, for every question the server asks: which endpoints a container must reach through
`--container-host` (`network: docker`), which listeners need no token or TLS, which callers are
loopback, which probe URLs are this machine.

Hosts are parsed as the C library takes them before deciding: any case, one trailing dot
(`localhost.`), brackets, IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`), inet_aton's short and
numeric forms (`127.1`, `0`, `0x7f000001`, `2130706433`), and the loopback names of hosts files
(`ip6-localhost`, `localhost.localdomain`, …). A name that merely starts or ends like one
(`localhost.evil`, `127.0.0.1.evil.example`) is not loopback: it may resolve to anything.
"""

from __future__ import annotations

import pytest

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK

CONTAINER = "host.docker.internal"
LOOPBACK_SPELLINGS = [
    "localhost", "localhost.", "LocalHost", "127.0.0.1", "127.1", "127.0.0.2", "0", "0.0.0.0",
    "0x7f000001", "2130706433", "017700000001", "[::1]", "[::ffff:127.0.0.1]", "[::]",
    "ip6-localhost", "ip6-loopback", "localhost.localdomain",
]
LOOK_ALIKES = [
    "127.0.0.1.evil.example", "localhost.evil", "0x7f000001.example", "evil-localhost",
    "128.0.0.1", "10.0.0.1", "[::2]", "localhost6.evil", "127.0.0.1x",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_rewritten_for_a_container(serve, host):
    resolved = serve().resolve(provider="ollama", base_url=f"http://{host}:11434",
                               network="docker")
    assert resolved.config.base_url == f"http://{CONTAINER}:11434"
    assert f"for a container: http://{host}:11434 → http://{CONTAINER}:11434" in \
        resolved.origin("base_url").detail


@pytest.mark.parametrize("host", LOOK_ALIKES)
def test_a_loopback_look_alike_is_left_alone(serve, host):
    resolved = serve().resolve(provider="ollama", base_url=f"http://{host}:11434",
                               network="docker")
    assert resolved.config.base_url == f"http://{host}:11434"


@pytest.mark.parametrize("host", ["127.1", "localhost.", "0", "[::ffff:127.0.0.1]",
                                  "ip6-localhost"])
def test_every_spelling_of_loopback_in_a_runner_endpoint_is_rewritten(serve, host):
    runner = serve(env={"TEMPORAL_SERVICE_ADDRESS": f"{host}:7233"}).resolve_runner(
        network="docker")
    assert runner.config.temporal.address == f"{CONTAINER}:7233"


@pytest.mark.parametrize("host", ["127.0.0.1.evil.example", "localhost.evil",
                                  "0x7f000001.example"])
def test_a_look_alike_runner_endpoint_is_left_alone(serve, host):
    runner = serve(env={"TEMPORAL_SERVICE_ADDRESS": f"{host}:7233"}).resolve_runner(
        network="docker")
    assert runner.config.temporal.address == f"{host}:7233"


def test_a_mapped_loopback_listener_needs_no_token(server_process):
    handle = server_process(["--listen", "[::ffff:127.0.0.1]:0"])
    assert handle.proc.poll() is None  # started: loopback needs no token or TLS


def test_a_caller_on_a_mapped_loopback_address_is_a_loopback_caller(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   args=["--listen", "[::ffff:127.0.0.1]:0", TRUST_LOOPBACK])
    resolved = client.resolve(provider="anthropic", include_secrets=True)
    assert resolved.config.api_key == ANTHROPIC_KEY  # the peer ipv6:[::ffff:127.0.0.1] is trusted


@pytest.mark.parametrize("spec", ["0:0", "[::]:0"])
def test_an_unspecified_listener_is_not_loopback(server_process, spec):
    handle = server_process(["--listen", spec], wait_ready=False)
    assert handle.finish() == 2
    assert "Traceback" not in handle.log
