"""A catalog that knows its models: per-model limits and temperature rules, unknown ids served
with the closest known ones, claude-haiku-4, a mismatch said once with the right fix, and a
range error listed with a parse error at startup."""

from __future__ import annotations

import pytest

import llmconfig

from conftest import ANTHROPIC_KEY, OPENAI_KEY, startup_refusal

CLOUD = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"}
OPENAI = {"OPENAI_API_KEY": OPENAI_KEY, "STIGMER_LLM_PROVIDER": "openai"}


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "o3"])
def test_reasoning_models_take_only_the_default_temperature(serve, model):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve(env=OPENAI).resolve(model=model, temperature=0.2)
    (violation,) = caught.value.violations
    assert violation.subject == "overrides.temperature"
    assert "takes only the default (1); leave temperature unset" in violation.description


def test_a_reasoning_model_without_a_temperature_is_served(serve):
    assert serve(env=OPENAI).resolve(model="o3").config.temperature is None


def test_a_server_temperature_a_reasoning_model_refuses_is_a_precondition(serve):
    client = serve(env={**OPENAI, "STIGMER_LLM_MODEL": "o3", "STIGMER_LLM_TEMPERATURE": "0.7"})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve()
    assert caught.value.violations[0].subject == "STIGMER_LLM_TEMPERATURE"


def test_haiku_4_5_writes_at_most_64000_tokens(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve(env=CLOUD).resolve(model="claude-haiku-4.5", max_tokens=100000)
    assert "above what claude-haiku-4-5-20251001 writes (1–64000)" in \
        caught.value.violations[0].description
    # Anthropic's 5.x models write up to 128,000 tokens (the old provider-wide 64,000 refused it).
    assert serve(env=CLOUD).resolve(model="claude-sonnet-5.5", max_tokens=128000)


def test_a_default_above_the_models_limit_is_lowered_with_a_warning(serve, workspace):
    catalog = workspace.write("catalog.yaml", "models:\n  - id: claude-haiku-4-5-20251001\n"
                                              "    provider: anthropic\n"
                                              "    max_output_tokens: 8192\n")
    resolved = serve(env=CLOUD, args=["--catalog", str(catalog)]).resolve(model="claude-haiku-4.5")
    assert resolved.config.max_tokens == 8192
    assert "max_tokens lowered to 8192: claude-haiku-4-5-20251001 writes at most that many" in \
        resolved.warnings


def test_claude_haiku_4_is_the_newest_haiku_4(serve):
    assert serve(env=CLOUD).resolve(model="claude-haiku-4").config.model == \
        "claude-haiku-4-5-20251001"


def test_an_unknown_model_is_served_with_the_closest_known_ids(serve):
    resolved = serve(env=CLOUD).resolve(model="claude-sonet-4-5-20250929")
    assert resolved.config.model == "claude-sonet-4-5-20250929"  # passed on as given
    (warning,) = [w for w in resolved.warnings if "not one Anthropic's catalog" in w]
    assert "closest known: claude-sonnet-4-5-20250929" in warning


def test_a_known_model_has_no_catalog_warning(serve):
    assert not serve(env=CLOUD).resolve(model="claude-sonnet-5.5").warnings


def test_ollama_models_are_an_open_list(serve):
    assert not serve().resolve(model="my-own-finetune:q4").warnings


def test_a_provider_model_mismatch_is_reported_once_with_the_right_fix(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve().resolve(provider="ollama", model="claude-sonnet-4.5")
    (violation,) = caught.value.violations
    assert violation.description.endswith(
        "use a model of ollama, or set overrides.provider to anthropic")


def test_a_range_error_and_a_parse_error_are_listed_together_at_startup(workspace):
    handle = startup_refusal(workspace, env={"STIGMER_LLM_TEMPERATURE": "5",
                                             "STIGMER_LLM_MAX_TOKENS": "abc"})
    assert "STIGMER_LLM_MAX_TOKENS: 'abc' is not an integer" in handle.log
    assert "STIGMER_LLM_TEMPERATURE: temperature 5.0 is out of range for ollama" in handle.log
