"""CheckProviderHealth (and the answers it shares code with) against a hostile caller, an unlucky
operator and a loaded server: each test pins one class of bug found by an adversarial run."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter

import grpc
import httpx
import pytest

import llmconfig
from llmconfig import HealthStatus
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc
from llmconfig_server.flags import parse
from llmconfig_server.health.checker import HealthOptions, ProviderHealth
from llmconfig_server.health.origin_limits import OriginLimits
from llmconfig_server.health.probes import anthropic as anthropic_probe
from llmconfig_server.health.probes.registry import Upstream
from llmconfig_server.live.answers import Answer, AnswerCache
from llmconfig_server.resolve import domain
from llmconfig_server.resolve.domain import ProbeTarget, Verdict
from llmconfig_server.sources.layers import load_server_sources
from llmconfig_server.sources.resolver import Resolver
from llmconfig_server.support.bounded import BoundedCache

import providers
from conftest import ANTHROPIC_KEY, OPENAI_KEY, TRUST_LOOPBACK
from providers import BlackHole

# Bursts of calls (or a signal) against a deadline: `make test` runs these after the rest, one
# at a time, so no other test's work starves them into deadlines the rules do not cover.
pytestmark = pytest.mark.under_load

HEALTH = "/llmconfig.v1.LLMConfigService/CheckProviderHealth"
ANY_RATE = ["--probe-rate", "10000"]  # no check answered RATE_LIMITED without a probe


def started(emulators, emulator):
    emulators.append(emulator)
    return emulator


@pytest.fixture
def capture(emulators):
    return started(emulators, providers.capturing())


def keys_received(emulator) -> list[str]:
    return [value for request in emulator.requests for name, value in request.headers.items()
            if name in ("x-api-key", "authorization")]


# -- A key goes only where the server's configuration sends it --------------------------------

def test_a_key_is_not_sent_to_the_base_url_of_another_provider(serve, capture):
    client = serve(env={"OPENAI_BASE_URL": f"{capture.url}/v1", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                        "MODE": "cloud"})
    health = client.check_health(provider="anthropic", base_url=f"{capture.url}/v1")
    assert health.status is HealthStatus.NOT_CONFIGURED
    assert "sends its Anthropic key (sk-ant-…f2c9) only to the base URLs configured for " \
           "Anthropic" in health.message
    assert capture.requests == []


def test_an_arbitrary_allowed_target_is_not_sent_the_key(serve, capture):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"},
                   args=["--allow-any-probe-target"])
    health = client.check_health(base_url=capture.url)
    assert (health.status, health.provider) == (HealthStatus.NOT_CONFIGURED, "anthropic")
    assert "ANTHROPIC_BASE_URL" in health.message  # how to make it a target for the key
    assert capture.requests == []


def test_a_generic_base_url_resolved_for_the_provider_gets_its_key(serve, capture):
    client = serve(env={"STIGMER_LLM_BASE_URL": capture.url, "STIGMER_LLM_PROVIDER": "anthropic",
                        "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert client.check_health().healthy
    assert keys_received(capture) == [ANTHROPIC_KEY]


def test_a_keyless_provider_is_probed_at_an_allowed_target(serve, capture):
    # STIGMER_LLM_API_KEY is generic: the cascade hands it to ollama too, which sends no key.
    client = serve(env={"STIGMER_LLM_API_KEY": "generic-key-1234567890abcdef"},
                   args=["--allow-any-probe-target"])
    health = client.check_health(provider="ollama", base_url=capture.url)
    assert health.status is HealthStatus.MODEL_NOT_FOUND  # the capture lists no models
    assert capture.requests and keys_received(capture) == []


# -- The model is one path segment ------------------------------------------------------------

def test_a_model_cannot_move_the_anthropic_probe_off_its_path(serve, capture):
    client = serve(env={"ANTHROPIC_BASE_URL": capture.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                        "MODE": "cloud"})
    client.check_health(model="claude-x/../../../../admin?foo=bar")
    assert [r.path for r in capture.requests] == [
        "/v1/models/claude-x%2F..%2F..%2F..%2F..%2Fadmin%3Ffoo%3Dbar"]


def test_a_model_cannot_move_the_openai_probe_off_its_path(serve, capture):
    client = serve(env={"OPENAI_BASE_URL": f"{capture.url}/v1", "OPENAI_API_KEY": OPENAI_KEY},
                   args=["--llm-provider", "openai"])
    client.check_health(model="gpt-x/../../files#x")
    assert [r.path for r in capture.requests] == ["/v1/models/gpt-x%2F..%2F..%2Ffiles%23x"]


@pytest.mark.parametrize("model", ["..", "."])
def test_a_path_step_as_model_is_invalid_argument(serve, capture, model):
    client = serve(env={"ANTHROPIC_BASE_URL": capture.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                        "MODE": "cloud"})
    with pytest.raises(llmconfig.ConfigInvalid):
        client.check_health(provider="anthropic", model=model)
    assert capture.requests == []


# -- Precise statuses, never UNKNOWN ----------------------------------------------------------

def test_undecodable_health_request_is_invalid_argument(serve):
    call = grpc.insecure_channel(serve().target).unary_unary(
        HEALTH, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\xff\xff\xff", timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid llmconfig.v1.CheckProviderHealthRequest" in caught.value.details()


@pytest.mark.parametrize("model", ["claude-x\nabc", "claude-x\x00", "claude-" + "x" * 10_000])
def test_a_model_no_probe_can_carry_is_invalid_argument(serve, capture, model):
    client = serve(env={"ANTHROPIC_BASE_URL": capture.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                        "MODE": "cloud"})
    with pytest.raises(llmconfig.ConfigInvalid):
        client.check_health(model=model)
    assert capture.requests == []


@pytest.mark.parametrize("call", ["resolve", "check_health"])
def test_an_error_quoting_a_huge_value_still_reaches_the_caller(serve, call):
    # The status travels in metadata; quoted whole, a 20,000-character provider overflowed the
    # client's limit, which answered RESOURCE_EXHAUSTED instead of the error.
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        getattr(serve(), call)(provider="é" * 20_000)
    assert "(20000 characters) is not known" in caught.value.message
    assert len(caught.value.message.encode()) <= 1_003


def target_for(url: str, key: str) -> ProbeTarget:
    return ProbeTarget(provider="anthropic", base_url=url, model="claude-sonnet-5-5",
                       api_key=key, key_hint="sk-ant-…f2c9", key_origin="ANTHROPIC_API_KEY_FILE",
                       timeout=2.0)


@pytest.mark.parametrize("key", ["\ufeff" + ANTHROPIC_KEY, ANTHROPIC_KEY + "\n", "sk-ant-é-x"])
def test_a_key_no_header_can_carry_is_reported_not_sent(capture, key):
    # The probe itself, against a real HTTP server: whatever the parsers let through.
    async def probe() -> Verdict:
        async with httpx.AsyncClient() as http:
            return await anthropic_probe.probe(Upstream(http, OriginLimits()),
                                               target_for(capture.url, key))
    verdict = asyncio.run(probe())
    assert verdict.status is domain.HealthStatus.UNAUTHENTICATED
    assert "an HTTP header cannot carry" in verdict.message
    assert "ANTHROPIC_API_KEY_FILE" in verdict.message
    assert capture.requests == []


def test_a_url_no_request_can_use_is_a_verdict(serve):
    # Request validation lets it through (no control character, a port in range); IDNA refuses
    # the host when the probe builds its request.
    client = serve(args=["--allow-any-probe-target"])
    health = client.check_health(provider="ollama", base_url="http://xn--a.example")
    assert health.status is HealthStatus.UNREACHABLE
    assert "the URL is not usable" in health.message


def test_a_probe_that_raises_gives_a_verdict_not_an_rpc_failure(workspace, caplog):
    # The safety net for bugs: a probe that raises (here one that always does) is still a verdict.
    async def broken(http: Upstream, target: ProbeTarget) -> Verdict:
        raise RuntimeError("boom\nWARNING forged")

    sources = load_server_sources(parse([], {}).flags, {}, workspace.cwd, workspace.home)
    checker = ProviderHealth(Resolver(sources), HealthOptions(), probes={"ollama": broken})
    caplog.set_level(logging.DEBUG)
    report = asyncio.run(checker.check())
    assert report.status is domain.HealthStatus.BAD_RESPONSE
    assert "failed unexpectedly (RuntimeError)" in report.message
    assert all("\n" not in r.getMessage() for r in caplog.records)


# -- The log: nothing forged, nothing flooded -------------------------------------------------

def health_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "llmconfig_server.health.checker" and r.levelno >= level]


def test_a_line_break_from_upstream_cannot_forge_a_log_line(serve, emulators, caplog):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY))
    claude.override("/v1/models/claude-sonnet-5-5", providers.Reply(
        500, {"type": "error", "error": {"type": "api_error",
                                         "message": "x\nWARNING llmconfig_server: forged"}}))
    caplog.set_level(logging.INFO)
    serve(env={"ANTHROPIC_BASE_URL": claude.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
               "MODE": "cloud"}).check_health()
    (line,) = health_lines(caplog, logging.INFO)
    assert "\n" not in line
    assert "x\\nWARNING llmconfig_server: forged" in line


def test_checks_of_callers_own_targets_do_not_log_at_info(serve, emulators, caplog):
    ollama = started(emulators, providers.ollama())
    client = serve(env={"OLLAMA_BASE_URL": ollama.url}, args=ANY_RATE)
    caplog.set_level(logging.INFO)
    client.check_health()  # the server's own target: its first status is worth a line
    for n in range(50):
        client.check_health(model=f"qwen-{n}:7b")
    assert len(health_lines(caplog, logging.INFO)) == 1


def test_httpx_does_not_log_each_probe(serve, emulators, caplog):
    ollama = started(emulators, providers.ollama())
    caplog.set_level(logging.INFO)
    serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health()
    assert [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))] == []


# -- Credentials in URLs ----------------------------------------------------------------------

PASSWORD = "s3cret-pw"


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://admin:{PASSWORD}@")


def test_url_credentials_are_redacted_in_resolve_answers(serve, emulators):
    ollama = started(emulators, providers.ollama())
    config = serve(env={"STIGMER_LLM_BASE_URL": with_credentials(ollama.url)}).resolve().config
    hidden = ollama.url.replace("http://", "http://***@")
    assert (config.base_url, config.openai_base_url) == (hidden, f"{hidden}/v1")


def test_url_credentials_come_with_include_secrets(serve, emulators):
    ollama = started(emulators, providers.ollama())
    client = serve(args=[TRUST_LOOPBACK],
                   env={"STIGMER_LLM_BASE_URL": with_credentials(ollama.url)})
    assert client.resolve(include_secrets=True).config.base_url == with_credentials(ollama.url)


def test_url_credentials_are_redacted_in_warnings(serve):
    client = serve(env={"OLLAMA_HOST": f"http://admin:{PASSWORD}@gpu-box"})  # a warned trap
    resolved = client.resolve()
    assert resolved.warnings and PASSWORD not in repr(resolved)
    assert "http://***@gpu-box" in " ".join(resolved.warnings)


def test_url_credentials_are_redacted_in_health_answers(serve):
    url = providers.refused_url()
    health = serve(env={"STIGMER_LLM_BASE_URL": with_credentials(url)}).check_health()
    assert health.status is HealthStatus.UNREACHABLE
    assert health.base_url == url.replace("http://", "http://***@")
    assert PASSWORD not in health.message and "***@" in health.message


def test_the_probe_itself_gets_the_url_credentials(serve, capture):
    serve(env={"STIGMER_LLM_BASE_URL": with_credentials(capture.url)}).check_health()
    expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    assert {r.headers.get("authorization") for r in capture.requests} == {expected}


def test_url_credentials_are_redacted_in_the_startup_report(server_process):
    server = server_process(env={"STIGMER_LLM_BASE_URL": f"http://admin:{PASSWORD}@gpu-box:8080"})
    server.wait_for(r"base_url")
    assert "http://***@gpu-box:8080" in server.log
    assert PASSWORD not in server.log


def test_a_denial_names_none_of_the_servers_urls(serve, emulators):
    ollama = started(emulators, providers.ollama())
    client = serve(env={"OLLAMA_BASE_URL": with_credentials(ollama.url)})
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        client.check_health(base_url="http://example.com")
    assert ollama.url.removeprefix("http://") not in caught.value.message
    assert "api.anthropic.com" not in caught.value.message
    assert "http://example.com" in caught.value.message


@pytest.mark.parametrize("call", ["resolve", "check_health"])
def test_a_request_base_url_with_credentials_is_invalid_argument(serve, call):
    client = serve(args=["--allow-any-probe-target"])
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        getattr(client, call)(base_url=f"http://admin:{PASSWORD}@example.com")
    assert "credentials" in caught.value.message
    assert PASSWORD not in repr(caught.value.violations) + caught.value.message


# -- Caches bounded in bytes ------------------------------------------------------------------

def test_the_answer_cache_is_bounded_in_bytes():
    cache = AnswerCache(capacity=1024, max_bytes=4 * 1024 * 1024)
    for n in range(200):
        cache.put(f"{n}".encode() + b"x" * 60_000, Answer(b"y" * 60_000))  # ~120 KB an entry
    assert cache.bytes <= 4 * 1024 * 1024
    assert 0 < len(cache) < 40
    assert cache.get(b"199" + b"x" * 60_000) is not None  # the newest stay


def test_an_entry_bigger_than_an_eighth_of_the_budget_is_not_kept():
    cache: BoundedCache[str, str] = BoundedCache(10, 8_000, lambda k, v: len(v))
    cache.put("small", "x")
    cache.put("huge", "x" * 2_000)
    assert (cache.get("huge"), cache.get("small")) == (None, "x")


IN_FLIGHT_LIMIT = 1024  # distinct checks in flight (docs/health.md)


# Calls that got no answer from the handler: a missed deadline, or — seen once in ~3,000 calls
# opened at once while stress-ng saturated both cores — a stream the transport reset (CANCELLED,
# 0.08 s in, before any handler answered). Neither says anything about the in-flight bound.
UNANSWERED = {"DEADLINE_EXCEEDED", "CANCELLED"}


def test_past_the_limit_of_checks_in_flight_a_new_one_is_resource_exhausted(serve, emulators):
    hole = started(emulators, BlackHole())
    # Probes of a host that never answers stay in flight for their whole (long) budget, while
    # each caller gets its TIMEOUT at its own deadline.
    client = serve(env={"OLLAMA_BASE_URL": hole.url}, args=ANY_RATE, probe_timeout=300.0)
    held = [f"qwen-{n}:7b" for n in range(IN_FLIGHT_LIMIT)]
    pending = held
    for _ in range(20):
        answers = verdicts(client.target, pending, timeout=5.0)
        assert set(answers.values()) <= {"HEALTH_STATUS_TIMEOUT", *UNANSWERED}
        # A call that missed its deadline may never have reached the server: ask again (the
        # same model joins its check if it is in flight, or starts it).
        pending = [model for model, code in answers.items() if code in UNANSWERED]
        if not pending:
            break
    assert pending == []  # every one of the 1,024 is held in flight
    assert answer_of(client.target, "llama:7b") == "RESOURCE_EXHAUSTED"
    # A check already in flight is joined, not refused.
    assert answer_of(client.target, held[0]) == "HEALTH_STATUS_TIMEOUT"


def answer_of(target: str, model: str) -> str:
    """The server's answer about `model`: a call that misses its deadline on a loaded machine
    says nothing about the rule, so it is asked again (a few times at most)."""
    for _ in range(10):
        code = verdicts(target, [model], timeout=5.0)[model]
        if code not in UNANSWERED:
            return code
    return code


# -- Verdicts before the deadline, under load -------------------------------------------------

def verdicts(target: str, models: list[str], timeout: float) -> dict[str, str]:
    """Each model's answer (a HealthStatus name, or the gRPC status code's name), all asked at
    once."""
    async def one(stub: pb_grpc.LLMConfigServiceStub, model: str) -> str:
        started = time.monotonic()
        try:
            answer = await stub.CheckProviderHealth(pb.CheckProviderHealthRequest(model=model),
                                                    timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            # Past the deadline, the server's end of the call resets the stream; on a loaded
            # machine that reset can reach the client before its own deadline timer runs, and
            # the client says CANCELLED for what is a missed deadline.
            if (exc.code() is grpc.StatusCode.CANCELLED
                    and time.monotonic() - started >= timeout * 0.9):
                return "DEADLINE_EXCEEDED"
            return exc.code().name
        return pb.HealthStatus.Name(answer.status)

    async def run() -> dict[str, str]:
        # A connection carries at most --max-concurrent-streams (100) calls at once; the rest
        # would wait in the client, past their deadline. Enough connections for all at once:
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool",
                                                                1)])
                    for _ in range(len(models) // 90 + 1)]
        try:
            await asyncio.gather(*(channel.channel_ready() for channel in channels))
            stubs = [pb_grpc.LLMConfigServiceStub(channel) for channel in channels]
            codes = await asyncio.gather(*(one(stubs[n % len(stubs)], m)
                                           for n, m in enumerate(models)))
            return dict(zip(models, codes, strict=True))
        finally:
            for channel in channels:
                await channel.close()
    return asyncio.run(run())


def test_distinct_checks_at_a_short_deadline_get_a_verdict_or_deadline_exceeded(server_process,
                                                                                 emulators):
    # The rule, not a speed: whatever the load, an answer is a verdict (here TIMEOUT: the host
    # never answers) or the caller's own DEADLINE_EXCEEDED — never INTERNAL, UNKNOWN or
    # CANCELLED. How many make their deadline is measured by `make bench-hostile`.
    hole = started(emulators, BlackHole())
    server = server_process(args=ANY_RATE, env={"OLLAMA_BASE_URL": hole.url})
    verdicts(server.target, ["warm-up"], timeout=5)  # httpx is loaded on the first check
    codes = Counter(verdicts(server.target, [f"qwen-{n}:7b" for n in range(500)],
                             timeout=0.5).values())
    assert set(codes) <= {"HEALTH_STATUS_TIMEOUT", "DEADLINE_EXCEEDED"}, codes
