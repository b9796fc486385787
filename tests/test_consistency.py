"""Consistency rules: a model names its provider; values of another provider are not inherited
from lower layers; the same mismatch inside one layer is an error; the catalog's names."""

from __future__ import annotations

import pytest

import llmconfig
from llmconfig import Source

from conftest import ANTHROPIC_KEY, OPENAI_KEY, TRUST_LOOPBACK


@pytest.mark.parametrize(("model", "provider"), [
    ("claude-haiku-4-5-20251001", "anthropic"),
    ("gpt-6-luna", "openai"),
    ("gpt-5.6-sol", "openai"),
    ("o3", "openai"),
    ("chatgpt-4o-latest", "openai"),
    ("ft:gpt-4o-mini:acme::abc123", "openai"),
    ("deepseek-coder-v2:16b", "ollama"),
    ("mistral", "ollama"),
    ("gemma2:9b", "ollama"),
    ("some-model:q4", "ollama"),
    ("gpt-oss:20b", "ollama"),
    ("anthropic:claude-opus-4.6", "anthropic"),
])
def test_model_names_its_provider(serve, model, provider):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY})
    resolved = client.resolve(model=model)
    assert resolved.config.provider == provider
    assert resolved.origin("provider").detail == f"implied by model {model!r} in request " \
        "overrides.model"


def test_model_in_lower_layer_sets_provider_when_no_provider_above(serve):
    resolved = serve(env={"STIGMER_LLM_MODEL": "claude-opus-4.6", "ANTHROPIC_API_KEY":
                          ANTHROPIC_KEY}).resolve()
    assert (resolved.config.provider, resolved.config.model) == (
        "anthropic", "claude-opus-4-6")
    assert resolved.origin("provider").source is Source.ENV


def test_provider_in_higher_layer_drops_model_of_another_provider_with_warning(serve):
    resolved = serve(args=["--llm-provider", "ollama"],
                     env={"STIGMER_LLM_MODEL": "claude-sonnet-4.5"}).resolve()
    assert resolved.config.model == "qwen2.5-coder:7b"
    assert resolved.origin("model").source is Source.DEFAULT
    assert any("ignored model 'claude-sonnet-4.5' from STIGMER_LLM_MODEL" in w and
               "belongs to anthropic" in w for w in resolved.warnings)


def test_dropped_value_falls_through_to_a_lower_layer_that_fits(serve):
    resolved = serve(args=["--llm-provider", "ollama"],
                     env={"STIGMER_LLM_MODEL": "gpt-4o"},
                     files={"~/.stigmer/llmconfig.yaml": "llm:\n  model: phi4:14b\n"}).resolve()
    assert resolved.config.model == "phi4:14b"


def test_base_url_of_another_provider_is_not_inherited(serve):
    resolved = serve(env={"STIGMER_LLM_BASE_URL": "http://localhost:11434",
                          "ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve(provider="anthropic")
    assert resolved.config.base_url == "https://api.anthropic.com"
    assert any("ignored base_url" in w for w in resolved.warnings)


def test_key_of_another_provider_is_not_inherited(serve):
    resolved = serve(args=[TRUST_LOOPBACK],
                     env={"STIGMER_LLM_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY}
                     ).resolve(provider="openai", include_secrets=True)
    assert resolved.config.api_key == OPENAI_KEY
    warning = next(w for w in resolved.warnings if "ignored api_key" in w)
    assert "sk-ant-…" in warning and ANTHROPIC_KEY not in warning


def test_mismatch_inside_the_request_is_invalid_argument(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve().resolve(provider="openai", model="claude-sonnet-4.5")
    violation = caught.value.violations[0]
    assert (violation.subject, violation.reason) == ("overrides.model", "PROVIDER_MISMATCH")
    assert "belongs to anthropic, but the provider is openai" in violation.description


def test_mismatch_inside_the_environment_is_refused(serve):
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        serve(env={"STIGMER_LLM_PROVIDER": "ollama", "STIGMER_LLM_MODEL": "gpt-4o"}).resolve()
    assert caught.value.violations[0].subject == "STIGMER_LLM_MODEL"
    assert caught.value.violations[0].reason == "PROVIDER_MISMATCH"


def test_request_key_of_another_provider_is_invalid_argument(serve):
    client = serve(env={"OPENAI_API_KEY": OPENAI_KEY}, args=["--llm-provider", "openai"])
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.resolve(api_key=ANTHROPIC_KEY)
    assert caught.value.violations[0].subject == "overrides.api_key"
    assert ANTHROPIC_KEY not in str(caught.value)


def test_provider_scoped_key_applies_only_to_its_provider(serve):
    resolved = serve(env={"OPENAI_API_KEY": OPENAI_KEY}).resolve()
    assert (resolved.config.provider, resolved.config.api_key_present) == ("ollama", False)


def test_generic_key_of_another_provider_than_the_default_is_an_error(serve):
    # An OpenAI key with nothing naming a provider: say so instead of silently using Ollama.
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        serve(env={"STIGMER_LLM_API_KEY": OPENAI_KEY}).resolve()
    assert "belongs to openai, but the provider is ollama" in caught.value.message


@pytest.mark.parametrize(("asked", "canonical"), [
    ("claude-sonnet-5.5", "claude-sonnet-5-5"),
    ("claude-opus-4.6", "claude-opus-4-6"),
    ("claude-haiku-4.5", "claude-haiku-4-5-20251001"),
    ("claude-opus-4.5", "claude-opus-4-5-20251101"),
])
def test_friendly_claude_names_map_to_canonical_ids(serve, asked, canonical):
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve(model=asked)
    assert (resolved.config.model, resolved.config.requested_model) == (canonical, asked)


@pytest.mark.parametrize(("asked", "tagged"), [
    ("qwen2.5-coder", "qwen2.5-coder:7b"),
    ("llama3.2", "llama3.2:3b"),
])
def test_ollama_short_names_gain_a_tag(serve, asked, tagged):
    assert serve().resolve(model=asked).config.model == tagged


@pytest.mark.parametrize(("provider", "tier", "model"), [
    ("ollama", "fast", "qwen2.5-coder:1.5b"),
    ("anthropic", "powerful", "claude-opus-5-5"),
    ("openai", "balanced", "gpt-6.1-sol"),
])
def test_tiers_are_aliases_per_provider(serve, provider, tier, model):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY})
    resolved = client.resolve(provider=provider, model=tier)
    assert (resolved.config.model, resolved.config.requested_model) == (model, tier)


def test_tier_keeps_the_resolved_provider(serve):
    assert serve().resolve(model="powerful").config.provider == "ollama"


def test_unknown_model_ids_pass_through(serve):
    resolved = serve().resolve(model="my-finetune")
    assert (resolved.config.provider, resolved.config.model) == ("ollama", "my-finetune")
