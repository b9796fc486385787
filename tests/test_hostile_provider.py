"""CheckProviderHealth and the model lists against a hostile provider: a real loopback HTTP
server that answers too much (a 400 MiB body, a gzip bomb), too slowly (one byte at a time),
with terminal escapes in what it names, or with 429 — each test pins one rule of the bounded
reader every probe and listing goes through (probes/_common.py, origin_limits.py)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

import llmconfig
from llmconfig import HealthStatus

import providers
from conftest import ANTHROPIC_KEY

GROWTH_BOUND_KB = 200 * 1024  # generous: the cap is 1 MiB of answer


def started(emulators, emulator):
    emulators.append(emulator)
    return emulator


def peak_kb(pid: int) -> int:
    """The process's peak resident set (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def ollama_answering(emulators, reply: providers.Reply) -> providers.Emulator:
    ollama = started(emulators, providers.ollama())
    for path in ("/api/version", "/api/tags"):
        ollama.override(path, reply)
    return ollama


@pytest.fixture
def probed(server_process, emulators):
    """A server process whose Ollama answers `reply`, warmed up (httpx loaded) against a sane
    Ollama; returns (client, pid)."""
    def start(reply: providers.Reply, *args: str) -> tuple[llmconfig.Client, int]:
        hostile = ollama_answering(emulators, reply)
        sane = started(emulators, providers.ollama())
        server = server_process(args=["--allow-any-probe-target", *args],
                                env={"OLLAMA_BASE_URL": hostile.url})
        client = llmconfig.Client(server.target)
        assert client.check_health(base_url=sane.url, timeout=10).healthy
        return client, server.proc.pid
    return start


@pytest.mark.parametrize("reply", [providers.huge_body, providers.gzip_bomb],
                         ids=["400 MiB body", "gzip bomb"])
def test_a_huge_answer_is_a_bad_response_and_read_only_to_the_cap(probed, reply):
    client, pid = probed(reply(), "--probe-timeout", "10")
    before = peak_kb(pid)
    health = client.check_health(timeout=30)
    assert health.status is HealthStatus.BAD_RESPONSE
    assert "answered more than 1024 KiB (after decompression)" in health.message
    assert peak_kb(pid) - before < GROWTH_BOUND_KB


def test_a_provider_that_drips_its_answer_past_the_timeout_gets_timeout(probed):
    client, _ = probed(providers.drip(), "--probe-timeout", "0.5")
    health = client.check_health(timeout=30)
    assert health.status is HealthStatus.TIMEOUT
    assert "did not answer within 0.5 s" in health.message


def test_the_model_list_is_read_through_the_same_cap(serve, emulators):
    ollama = ollama_answering(emulators, providers.gzip_bomb())
    client = serve(env={"OLLAMA_BASE_URL": ollama.url})
    client.list_models("ollama", refresh=True)
    (warning,) = client.last_model_warnings
    assert "more than 1024 KiB (after decompression)" in warning


def test_an_answer_in_an_encoding_not_asked_for_is_a_bad_response(serve, emulators):
    ollama = ollama_answering(emulators, providers.Reply(
        body=b"\x1b\x00", headers={"Content-Encoding": "br"}))
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health()
    assert health.status is HealthStatus.BAD_RESPONSE
    assert "content encoding 'br', not asked for" in health.message


# -- What a provider names is cleaned before it is shown ----------------------------------------

EVIL = "\x1b]0;owned\x07\x1b[2J\u202elatest"


def unshown(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf")]


def test_control_and_format_characters_from_ollama_are_escaped(serve, emulators):
    ollama = started(emulators, providers.ollama(models=[f"qwen:7b{EVIL}", "qwen:14b"],
                                                 version=f"0.6{EVIL}" + "9" * 500))
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health(model="qwen:7b")
    assert health.status is HealthStatus.MODEL_NOT_FOUND
    shown = [health.message, health.server_version, *health.available_models]
    assert [c for text in shown for c in unshown(text)] == []
    assert "\\x1b]0;owned\\x07" in health.message  # escaped, not dropped: the operator sees it
    assert "\\u202e" in health.server_version and len(health.server_version) <= 64


def test_a_keyed_providers_error_message_is_cleaned(serve, emulators):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY))
    claude.override("/v1/models/claude-sonnet-5-5", providers.Reply(
        500, {"type": "error", "error": {"type": "api_error", "message": f"bad{EVIL}"}}))
    health = serve(env={"ANTHROPIC_BASE_URL": claude.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                        "MODE": "cloud"}).check_health()
    assert health.status is HealthStatus.UNAVAILABLE
    assert unshown(health.message) == [] and "bad\\x1b]0;owned" in health.message


# -- How often a provider is asked --------------------------------------------------------------

def anthropic_env(url: str) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"}


def test_checks_of_distinct_models_past_the_probe_rate_are_not_sent_upstream(serve, emulators):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY))
    # One request every 100 s: the first check goes, the others' turn is too far away.
    client = serve(env=anthropic_env(claude.url), args=["--probe-rate", "0.01"])
    verdicts = [client.check_health(model=f"claude-{n}") for n in range(20)]
    assert len(claude.requests) == 1
    assert verdicts[0].status is HealthStatus.MODEL_NOT_FOUND
    assert {v.status for v in verdicts[1:]} == {HealthStatus.RATE_LIMITED}
    assert "at most 0.01 requests a second (--probe-rate)" in verdicts[1].message


@pytest.mark.parametrize("retry_after", ["120", "Wed, 21 Oct 2099 07:28:00 GMT"],
                         ids=["seconds", "HTTP date"])
def test_a_429_pauses_the_origin_as_long_as_retry_after_says(serve, emulators, retry_after):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY))
    for model in ("claude-sonnet-5-5", "claude-other"):
        claude.override(f"/v1/models/{model}", providers.too_many_requests(retry_after))
    client = serve(env=anthropic_env(claude.url))
    first = client.check_health()
    then = client.check_health(model="claude-other")
    assert (first.status, then.status) == (HealthStatus.RATE_LIMITED, HealthStatus.RATE_LIMITED)
    assert len(claude.requests) == 1  # the second check was answered without asking
    assert "answered 429 (too many requests) with Retry-After" in then.message
    assert "does not ask it again for" in then.message


def test_a_429_pauses_the_model_listing_too(serve, emulators):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY))
    claude.override("/v1/models/claude-sonnet-5-5", providers.too_many_requests("120"))
    client = serve(env=anthropic_env(claude.url))
    assert client.check_health().status is HealthStatus.RATE_LIMITED
    client.list_models("anthropic", refresh=True)
    assert [r.path for r in claude.requests] == ["/v1/models/claude-sonnet-5-5"]
    (warning,) = client.last_model_warnings
    assert "answered 429" in warning


def test_the_probe_rate_must_be_a_positive_number(server_process):
    server = server_process(args=["--probe-rate", "0"], wait_ready=False)
    assert server.finish() == 2
    assert "--probe-rate: '0' is not a number of requests a second" in server.log
