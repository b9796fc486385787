"""Health says what is really wrong: an account that cannot pay, a key without permission, a
country the provider refuses, an Ollama cloud model whose Ollama is not signed in."""

from __future__ import annotations

from llmconfig import HealthStatus

import providers
from conftest import ANTHROPIC_KEY, OPENAI_KEY


def started(emulators, emulator):
    emulators.append(emulator)
    return emulator


def anthropic(serve, emulators):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY))
    return claude, serve(env={"MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                              "ANTHROPIC_BASE_URL": claude.url})


def openai(serve, emulators):
    gpt = started(emulators, providers.openai(OPENAI_KEY))
    return gpt, serve(env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{gpt.url}/v1",
                           "STIGMER_LLM_PROVIDER": "openai"})


def test_anthropic_billing_error_is_quota_exceeded_naming_the_console(serve, emulators):
    claude, client = anthropic(serve, emulators)
    claude.override("/v1/models/claude-sonnet-5-5", providers.anthropic_billing_error())
    health = client.check_health()
    assert health.status is HealthStatus.QUOTA_EXCEEDED
    assert health.message == (
        "The Anthropic key (sk-ant-…f2c9, from ANTHROPIC_API_KEY) is valid, but the Anthropic "
        "account cannot pay for requests (billing_error: Your credit balance is too low to "
        "access the Anthropic API.) — add credit or a payment method at "
        "https://console.anthropic.com/settings/billing; retrying will not help")


def test_a_quota_verdict_is_not_cached_as_a_rate_limit(serve, emulators):
    claude, client = anthropic(serve, emulators)
    claude.override("/v1/models/claude-sonnet-5-5", providers.anthropic_billing_error())
    assert client.check_health().status is HealthStatus.QUOTA_EXCEEDED
    del claude.overrides["/v1/models/claude-sonnet-5-5"]  # the account was topped up
    assert client.check_health(refresh=True).status is HealthStatus.HEALTHY


def test_openai_refusing_the_servers_country_is_named_as_such(serve, emulators):
    gpt, client = openai(serve, emulators)
    gpt.override("/v1/models/gpt-6-luna", providers.openai_region_refused())
    health = client.check_health()
    assert health.status is HealthStatus.UNAUTHENTICATED
    assert health.message.startswith("OpenAI refuses requests from the country, region or "
                                     "territory this server runs in")
    assert "the key is not the problem" in health.message
    assert "https://platform.openai.com/docs/supported-countries" in health.message


def test_openai_key_without_permission_is_named_as_such(serve, emulators):
    gpt, client = openai(serve, emulators)
    gpt.override("/v1/models/gpt-6-luna", providers.openai_permission_refused())
    health = client.check_health()
    assert health.status is HealthStatus.UNAUTHENTICATED
    assert health.message.startswith("The OpenAI key (sk-proj-…9a1b, from OPENAI_API_KEY) is "
                                     "valid but lacks permission for this")
    assert "Missing scopes: api.model.read" in health.message


def test_an_ollama_cloud_model_without_signin_says_to_run_ollama_signin(serve, emulators):
    ollama = started(emulators, providers.ollama(["gpt-oss:120b-cloud"], signed_in=False))
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health(model="gpt-oss:120b-cloud")
    assert (health.status, health.model_available) == (HealthStatus.UNAUTHENTICATED, True)
    assert 'run "ollama signin" on the machine running Ollama' in health.message
    assert [r.path for r in ollama.requests if r.method == "POST"] == ["/api/me"]


def test_a_signed_in_ollama_cloud_model_is_healthy(serve, emulators):
    ollama = started(emulators, providers.ollama(["gpt-oss:120b-cloud"], signed_in=True))
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health(model="gpt-oss:120b-cloud")
    assert health.status is HealthStatus.HEALTHY


def test_an_ollama_that_cannot_say_keeps_a_cloud_model_healthy(serve, emulators):
    ollama = started(emulators, providers.ollama(["gpt-oss:120b-cloud"], signed_in=None))
    health = serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health(model="gpt-oss:120b-cloud")
    assert health.status is HealthStatus.HEALTHY


def test_a_local_model_never_asks_about_signin(serve, emulators):
    ollama = started(emulators, providers.ollama(["qwen2.5-coder:7b"], signed_in=False))
    assert serve(env={"OLLAMA_BASE_URL": ollama.url}).check_health().healthy
    assert not [r for r in ollama.requests if r.path == "/api/me"]
