"""The scenarios of the service issue, end to end through the real client."""

from __future__ import annotations

import pytest

import llmconfig
from llmconfig import Source

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK


def test_nothing_set_gives_local_ollama_defaults(serve):
    resolved = serve().resolve()
    c = resolved.config
    assert (c.provider, c.model, c.base_url, c.max_tokens, c.temperature) == (
        "ollama", "qwen2.5-coder:7b", "http://localhost:11434", 8192, 0.0)
    assert c.openai_base_url == "http://localhost:11434/v1"
    assert c.mode == "local"
    assert {o.source for o in resolved.origins} == {Source.DEFAULT}
    assert {o.field for o in resolved.origins} == {
        "mode", "provider", "model", "base_url", "api_key", "max_tokens", "temperature"}
    assert resolved.warnings == ()


def test_cloud_mode_with_anthropic_key_gives_sonnet(serve):
    resolved = serve(env={"MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve()
    c = resolved.config
    assert (c.provider, c.model, c.requested_model, c.max_tokens) == (
        "anthropic", "claude-sonnet-5-5", "claude-sonnet-5-5", 20000)
    assert c.temperature is None
    assert c.openai_base_url == ""
    assert (c.api_key, c.api_key_present, c.api_key_hint) == ("", True, "sk-ant-…f2c9")


def test_include_secrets_returns_the_key(serve):
    client = serve(args=[TRUST_LOOPBACK], env={"MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY


def test_local_mode_with_anthropic_key_uses_anthropic(serve):
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve()
    assert (resolved.config.provider, resolved.config.api_key_present) == ("anthropic", True)


def test_provider_flag_ollama_ignores_anthropic_key(serve):
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                     args=["--llm-provider", "ollama"]).resolve(include_secrets=True)
    assert resolved.config.provider == "ollama"
    assert (resolved.config.api_key, resolved.config.api_key_present) == ("", False)


def test_model_flag_names_ollama(serve):
    resolved = serve(args=["--llm-model", "llama3:70b"]).resolve()
    assert (resolved.config.provider, resolved.config.model) == ("ollama", "llama3:70b")


def test_provider_prefixed_override_splits_at_known_prefix(serve):
    resolved = serve().resolve(model="ollama:qwen2.5-coder:7b")
    assert (resolved.config.provider, resolved.config.model) == ("ollama", "qwen2.5-coder:7b")
    assert resolved.config.requested_model == "ollama:qwen2.5-coder:7b"


def test_claude_override_without_any_key_names_the_variables_to_set(serve):
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        serve().resolve(model="claude-sonnet-5.5")
    message = caught.value.message
    assert "api_key is required for provider anthropic" in message
    assert "set ANTHROPIC_API_KEY_FILE to its path" in message
    assert "(or set ANTHROPIC_API_KEY or STIGMER_LLM_API_KEY)" in message
    assert caught.value.reason == "API_KEY_MISSING"
    assert [v.reason for v in caught.value.violations] == ["API_KEY_MISSING"]


def test_openai_with_only_an_anthropic_key_is_refused(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve(provider="openai")
    assert "api_key is required for provider openai" in caught.value.message
    assert "OPENAI_API_KEY" in caught.value.message


def test_openai_with_an_anthropic_shaped_generic_key_is_refused(serve):
    # The original drift: a generic key fallback handing an Anthropic key to OpenAI.
    client = serve(env={"STIGMER_LLM_API_KEY": ANTHROPIC_KEY})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve(provider="openai")
    assert "api_key is required for provider openai" in caught.value.message


def test_openai_with_openai_key(serve):
    resolved = serve(args=[TRUST_LOOPBACK],
                     env={"OPENAI_API_KEY": "sk-proj-" + "x" * 40, "ANTHROPIC_API_KEY":
                          ANTHROPIC_KEY}).resolve(provider="openai", include_secrets=True)
    assert resolved.config.api_key.startswith("sk-proj-")
    assert resolved.origin("api_key").detail == "OPENAI_API_KEY"
