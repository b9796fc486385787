"""CheckProviderHealth against real HTTP servers that speak the providers' APIs."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import llmconfig
from llmconfig import HealthStatus
from llmconfig._channel import CHANNEL_OPTIONS
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc

import providers
from conftest import ANTHROPIC_KEY, OPENAI_KEY
from providers import BlackHole, Reply, refused_url


def started(emulators, emulator):
    emulators.append(emulator)
    return emulator


@pytest.fixture
def ollama(emulators):
    return started(emulators, providers.ollama(["qwen2.5-coder:7b", "nomic-embed-text:latest"]))


# -- Ollama ----

def test_ollama_running_with_model_pulled_is_healthy(serve, ollama):
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health()
    assert (health.status, health.healthy, health.model_available) == (
        HealthStatus.HEALTHY, True, True)
    assert (health.provider, health.base_url, health.model) == (
        "ollama", ollama.url, "qwen2.5-coder:7b")
    assert health.server_version == "0.6.2"
    assert health.available_models == ("nomic-embed-text:latest", "qwen2.5-coder:7b")
    assert health.message == f"Ollama 0.6.2 at {ollama.url} is running and qwen2.5-coder:7b " \
                             "is pulled"
    assert health.cached is False
    assert health.latency > 0
    assert abs(datetime.now(UTC) - health.checked_at) < timedelta(minutes=5)  # a current time


def test_untagged_model_means_latest(serve, ollama):
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health(model="nomic-embed-text")
    assert (health.status, health.model) == (HealthStatus.HEALTHY, "nomic-embed-text")


def test_model_not_pulled_names_the_pulled_sibling_and_the_pull_command(serve, emulators):
    emulator = started(emulators, providers.ollama(["qwen2.5-coder:14b"]))
    health = serve(env={"OLLAMA_BASE_URL": emulator.url}).check_health()
    assert health.status is HealthStatus.MODEL_NOT_FOUND
    assert health.message == ('Model qwen2.5-coder:7b is not pulled (qwen2.5-coder:14b is) — '
                              'run "ollama pull qwen2.5-coder:7b"')
    assert health.available_models == ("qwen2.5-coder:14b",)


def test_ollama_not_running_is_unreachable_not_timeout_with_the_fix(serve):
    # A refused port is told apart at once (no wait for the budget: a generous one here).
    url = refused_url()
    client = serve(env={"OLLAMA_BASE_URL": url}, args=["--probe-timeout", "30"])
    health = client.check_health(timeout=60)
    assert health.status is HealthStatus.UNREACHABLE
    assert health.message == f'Ollama is not running at {url} — start it with "ollama serve"'


def test_ollama_on_localhost_from_a_container_gets_a_docker_hint(serve):
    url = refused_url()
    health = serve(env={"OLLAMA_BASE_URL": url}, in_container=True).check_health()
    assert "host.docker.internal" in health.message
    assert health.message.startswith(f'Ollama is not running at {url} — start it with')


def test_black_holed_ollama_times_out_within_the_probe_timeout(serve, emulators):
    hole = started(emulators, BlackHole())
    client = serve(env={"OLLAMA_BASE_URL": hole.url}, args=["--probe-timeout", "0.5"])
    health = client.check_health(timeout=60)  # the probe's own budget ends it, not the caller
    assert health.status is HealthStatus.TIMEOUT
    assert "did not answer within 0.5 s" in health.message


def test_probe_never_outlives_the_callers_deadline(serve, emulators):
    hole = started(emulators, BlackHole())
    client = serve(env={"OLLAMA_BASE_URL": hole.url}, args=["--probe-timeout", "60"])
    health = client.check_health(timeout=3)  # the caller's gRPC deadline
    # An answer, not DEADLINE_EXCEEDED: it came before the deadline (due 0.75 s before it).
    assert health.status is HealthStatus.TIMEOUT
    assert "the caller's deadline" in health.message


def test_slow_ollama_within_the_budget_is_healthy(serve, ollama):
    ollama.override("/api/tags", Reply(body={"models": [{"name": "qwen2.5-coder:7b"}]},
                                       delay=0.3))
    assert serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health().healthy


@pytest.mark.parametrize(("reply", "status"), [
    (Reply(500, {"error": "llama runner process has terminated"}), HealthStatus.UNAVAILABLE),
    (Reply(503, "Service Unavailable"), HealthStatus.UNAVAILABLE),
    (Reply(429, "Too Many Requests"), HealthStatus.RATE_LIMITED),
    (Reply(200, "<html>not ollama</html>"), HealthStatus.BAD_RESPONSE),
    (Reply(200, {"something": "else"}), HealthStatus.BAD_RESPONSE),
    (Reply(404, "404 page not found"), HealthStatus.BAD_RESPONSE),
    (Reply(401, "Unauthorized"), HealthStatus.UNAUTHENTICATED),
])
def test_ollama_failure_answers_map_to_statuses(serve, ollama, reply, status):
    ollama.override("/api/tags", reply)
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health()
    assert health.status is status
    assert "Traceback" not in health.message


# -- Anthropic ----

@pytest.fixture
def claude(emulators):
    return started(emulators, providers.anthropic(ANTHROPIC_KEY))


def anthropic_client(serve, url, key=ANTHROPIC_KEY):
    env = {"ANTHROPIC_BASE_URL": url, "MODE": "cloud"}
    if key:
        env["ANTHROPIC_API_KEY"] = key
    return serve(env=env)


def test_anthropic_valid_key_and_model_is_healthy(serve, claude):
    health = anthropic_client(serve, claude.url).check_health()
    assert (health.status, health.model, health.model_available) == (
        HealthStatus.HEALTHY, "claude-sonnet-5-5", True)
    (request,) = claude.requests
    assert request.path == "/v1/models/claude-sonnet-5-5"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["x-api-key"] == ANTHROPIC_KEY


def test_anthropic_rejected_key_names_its_hint_and_origin(serve, claude):
    bad = "sk-ant-api03-WRONGKEYwrongkeyWRONGKEY-dead"
    health = anthropic_client(serve, claude.url, bad).check_health()
    assert health.status is HealthStatus.UNAUTHENTICATED
    assert health.message.startswith(
        "The Anthropic key (sk-ant-…dead, from ANTHROPIC_API_KEY) was rejected "
        "(authentication_error: invalid x-api-key)")
    assert bad[-8:] not in health.message


def test_anthropic_unknown_model_is_model_not_found(serve, claude):
    health = anthropic_client(serve, claude.url).check_health(model="claude-nonexistent-9")
    assert health.status is HealthStatus.MODEL_NOT_FOUND
    assert "Anthropic has no model claude-nonexistent-9" in health.message


@pytest.mark.parametrize(("reply", "status", "says"), [
    (providers.anthropic_overloaded(), HealthStatus.UNAVAILABLE, "overloaded_error"),
    (Reply(500, {"type": "error", "error": {"type": "api_error", "message": "Internal"}}),
     HealthStatus.UNAVAILABLE, "api_error"),
    (providers.anthropic_rate_limited(), HealthStatus.RATE_LIMITED, "retry after 30 s"),
    (Reply(200, "OK"), HealthStatus.BAD_RESPONSE, "not with JSON"),
    (Reply(200, {"id": "x"}), HealthStatus.BAD_RESPONSE, "without Anthropic's model object"),
])
def test_anthropic_failure_answers_map_to_statuses(serve, claude, reply, status, says):
    claude.override("/v1/models/claude-sonnet-5-5", reply)
    health = anthropic_client(serve, claude.url).check_health()
    assert health.status is status
    assert says in health.message


def test_missing_key_is_not_configured_without_any_request(serve, claude):
    health = serve(env={"ANTHROPIC_BASE_URL": claude.url}).check_health(provider="anthropic")
    assert health.status is HealthStatus.NOT_CONFIGURED
    assert "set ANTHROPIC_API_KEY" in health.message
    assert claude.requests == []


# -- OpenAI ----

@pytest.fixture
def gpt(emulators):
    return started(emulators, providers.openai(OPENAI_KEY))


def openai_client(serve, url, key=OPENAI_KEY):
    return serve(env={"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": key},
                 args=["--llm-provider", "openai"])


def test_openai_valid_key_and_model_is_healthy(serve, gpt):
    health = openai_client(serve, gpt.url).check_health()
    assert (health.status, health.model) == (HealthStatus.HEALTHY, "gpt-6-luna")
    (request,) = gpt.requests
    assert (request.path, request.headers["authorization"]) == (
        "/v1/models/gpt-6-luna", f"Bearer {OPENAI_KEY}")


def test_openai_rejected_key_never_echoes_the_key(serve, gpt):
    bad = "sk-proj-WRONGKEYwrongkeyWRONGKEYwrong-beef"
    health = openai_client(serve, gpt.url, bad).check_health()
    assert health.status is HealthStatus.UNAUTHENTICATED
    assert "(sk-proj-…beef, from OPENAI_API_KEY) was rejected" in health.message
    assert "sk-" + "*" not in health.message and bad[:12] not in health.message


def test_openai_unknown_model_is_model_not_found(serve, gpt):
    health = openai_client(serve, gpt.url).check_health(model="gpt-9-turbo")
    assert health.status is HealthStatus.MODEL_NOT_FOUND
    assert "model_not_found" in health.message


def test_openai_insufficient_quota_is_quota_exceeded_not_a_rate_limit(serve, gpt):
    gpt.override("/v1/models/gpt-6-luna", providers.openai_quota_exhausted())
    health = openai_client(serve, gpt.url).check_health()
    assert health.status is HealthStatus.QUOTA_EXCEEDED
    assert "cannot pay for requests" in health.message
    assert "https://platform.openai.com/settings/organization/billing" in health.message
    assert "retrying will not help" in health.message


# -- Load: single flight and cache ----

Answers = list[pb.CheckProviderHealthResponse]


def concurrent_checks(target: str, count: int, **fields: object) -> Answers:
    async def run() -> Answers:
        # The client's own retry policy: past --max-concurrent-streams (100) calls on one
        # connection the server may refuse a stream (UNAVAILABLE), which clients retry.
        async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            stub = pb_grpc.LLMConfigServiceStub(channel)
            request = pb.CheckProviderHealthRequest(**fields)
            return list(await asyncio.gather(*(stub.CheckProviderHealth(request, timeout=20)
                                               for _ in range(count))))
    return asyncio.run(run())


def test_concurrent_identical_checks_share_one_upstream_probe(serve, ollama):
    ollama.override("/api/tags", Reply(body={"models": [{"name": "qwen2.5-coder:7b"}]},
                                       delay=0.3))
    client = serve(env={"OLLAMA_BASE_URL": ollama.url})
    answers = concurrent_checks(client.target, 300)
    assert all(a.healthy for a in answers)
    assert (ollama.counts["/api/tags"], ollama.counts["/api/version"]) == (1, 1)


def test_a_second_check_is_served_from_the_cache(serve, ollama):
    client = serve(env={"OLLAMA_BASE_URL": ollama.url})
    first, second = client.check_health(), client.check_health()
    assert (first.cached, second.cached) == (False, True)
    assert second.checked_at == first.checked_at
    assert ollama.counts["/api/tags"] == 1


def test_refresh_skips_the_cache(serve, ollama):
    client = serve(env={"OLLAMA_BASE_URL": ollama.url})
    client.check_health()
    fresh = client.check_health(refresh=True)
    assert fresh.cached is False
    assert ollama.counts["/api/tags"] == 2


def test_a_remembered_answer_goes_with_the_verdict_a_refresh_replaces(serve, ollama):
    client = serve(env={"OLLAMA_BASE_URL": ollama.url})
    first = client.check_health()
    client.check_health()  # cached: its bytes are remembered for the next identical request
    assert client.check_health().checked_at == first.checked_at
    fresh = client.check_health(refresh=True)
    after = client.check_health()
    assert (after.cached, after.checked_at) == (True, fresh.checked_at)
    assert fresh.checked_at != first.checked_at


def test_unhealthy_results_are_cached_shorter_than_healthy_ones(serve, ollama):
    client = serve(env={"OLLAMA_BASE_URL": ollama.url}, healthy_ttl=30.0, unhealthy_ttl=0.2)
    assert client.check_health().healthy
    ollama.override("/api/tags", Reply(500, {"error": "boom"}))
    assert client.check_health().cached  # healthy: still cached
    broken = client.check_health(refresh=True)
    assert broken.status is HealthStatus.UNAVAILABLE
    time.sleep(0.3)
    assert client.check_health().cached is False  # unhealthy: expired already


def test_different_models_are_probed_separately(serve, ollama):
    client = serve(env={"OLLAMA_BASE_URL": ollama.url})
    client.check_health()
    client.check_health(model="nomic-embed-text")
    assert ollama.counts["/api/tags"] == 2


# -- Safety ----

def test_unconfigured_base_url_is_permission_denied(serve, ollama):
    client = serve()
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        client.check_health(base_url=ollama.url)
    assert caught.value.reason == "PROBE_TARGET_NOT_ALLOWED"
    assert "--allow-any-probe-target" in caught.value.message
    assert ollama.requests == []


def test_configured_base_url_may_be_named(serve, ollama):
    client = serve(env={"OLLAMA_HOST": ollama.url.removeprefix("http://")})
    assert client.check_health(base_url=ollama.url).healthy


def test_allow_any_probe_target_flag_permits_other_urls(serve, ollama):
    client = serve(args=["--allow-any-probe-target"])
    assert client.check_health(base_url=ollama.url).healthy


def test_bad_health_request_is_invalid_argument(serve):
    with pytest.raises(llmconfig.ConfigInvalid):
        serve().check_health(provider="gemini")


def test_provider_outage_does_not_make_the_service_not_serving(serve):
    client = serve(env={"OLLAMA_BASE_URL": refused_url()})
    assert client.check_health().status is HealthStatus.UNREACHABLE
    with grpc.insecure_channel(client.target) as channel:
        for service in ("", "llmconfig.v1.LLMConfigService"):
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_no_key_in_health_answers_or_logs(serve, claude, caplog):
    caplog.set_level(logging.DEBUG)
    client = anthropic_client(serve, claude.url, "sk-ant-api03-WRONGKEYwrongkeyWRONGKEY-dead")
    health = client.check_health()
    claude.override("/v1/models/claude-sonnet-5-5", providers.anthropic_overloaded())
    client.check_health(refresh=True)
    assert "WRONGKEY" not in repr(health)
    assert "WRONGKEY" not in caplog.text
    assert "UNAUTHENTICATED → UNAVAILABLE" in caplog.text  # status changes are logged


def test_unresolvable_host_is_unreachable_and_says_so(serve):
    # .invalid is reserved (RFC 2606): it never resolves.
    health = serve(env={"OLLAMA_HOST": "nonexistent-host.invalid"}).check_health()
    assert health.status is HealthStatus.UNREACHABLE
    assert health.message.startswith("cannot resolve host nonexistent-host.invalid")
