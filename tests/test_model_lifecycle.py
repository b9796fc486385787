"""The catalog stays true: retired models are refused naming their replacement, deprecated ones
are served with the date and the replacement, retired defaults give way, current models are
known with their documented limits and temperature rules."""

from __future__ import annotations

import pytest

import llmconfig

from conftest import ANTHROPIC_KEY, OPENAI_KEY, startup_refusal

CLOUD = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"}
OPENAI = {"OPENAI_API_KEY": OPENAI_KEY, "STIGMER_LLM_PROVIDER": "openai"}


def test_a_retired_model_in_a_request_is_invalid_argument_naming_its_replacement(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve(env=CLOUD).resolve(model="claude-sonnet-4.5")
    (violation,) = caught.value.violations
    assert (violation.subject, violation.reason) == ("overrides.model", "MODEL_RETIRED")
    assert violation.description == (
        "overrides.model: model claude-sonnet-4-5-20250929 was retired by Anthropic on "
        "2026-11-30 and no longer answers; use claude-sonnet-5-5 instead")


def test_a_retired_model_from_the_environment_is_a_failed_precondition(serve):
    client = serve(env={**OPENAI, "STIGMER_LLM_MODEL": "o4-mini"})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve()
    (violation,) = caught.value.violations
    assert (violation.subject, violation.reason) == ("STIGMER_LLM_MODEL", "MODEL_RETIRED")
    assert "retired by OpenAI on 2026-10-23" in violation.description
    assert "use gpt-5.6-terra instead" in violation.description


def test_a_server_started_with_a_retired_model_refuses_to_start_naming_the_replacement(workspace):
    handle = startup_refusal(workspace, args=["--llm-provider", "anthropic", "--llm-model",
                                              "claude-sonnet-4.5"],
                             env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert "--llm-model: model claude-sonnet-4-5-20250929 was retired by Anthropic on " \
           "2026-11-30" in handle.log
    assert "use claude-sonnet-5-5 instead" in handle.log


def test_a_retired_replacement_is_followed_to_a_live_model(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve(env=CLOUD).resolve(model="claude-3.7-sonnet")
    assert caught.value.violations[0].description.endswith(
        "its replacement claude-sonnet-4-5-20250929 is retired too — use claude-sonnet-5-5")


def test_a_deprecated_model_is_served_with_a_warning_naming_date_and_replacement(serve):
    resolved = serve(env=OPENAI).resolve(model="gpt-4o")
    assert resolved.config.model == "gpt-4o"
    assert "model gpt-4o (from request overrides.model) is deprecated; OpenAI retires it on " \
           "2027-01-14; use gpt-6-luna instead" in resolved.warnings


def test_a_retired_default_gives_way_to_its_replacement_and_the_origin_says_so(serve):
    resolved = serve(env=CLOUD).resolve()
    assert (resolved.config.model, resolved.config.requested_model) == (
        "claude-sonnet-5-5", "claude-sonnet-5-5")
    assert resolved.origin("model").detail == (
        "cloud mode default (claude-sonnet-4.5 retired 2026-11-30 → claude-sonnet-5-5)")
    assert resolved.warnings == ()


def test_a_deprecated_default_gives_way_too(serve):
    resolved = serve(env=OPENAI).resolve()
    assert resolved.config.model == "gpt-6-luna"
    assert resolved.origin("model").detail == (
        "openai provider default (gpt-4o is deprecated, retiring 2027-01-14 → gpt-6-luna)")


@pytest.mark.parametrize("model", ["claude-opus-4-7", "claude-opus-4.8", "claude-sonnet-5",
                                   "claude-haiku-5-5", "claude-opus-5.5"])
def test_current_claude_models_are_known(serve, model):
    assert serve(env=CLOUD).resolve(model=model).warnings == ()


@pytest.mark.parametrize("model", ["gpt-6.1-sol", "gpt-6-astra", "gpt-6-luna"])
def test_current_openai_models_are_known(serve, model):
    assert not [w for w in serve(env=OPENAI).resolve(model=model).warnings
                if "catalog" in w]


def test_claude_5_models_write_128000_tokens(serve):
    assert serve(env=CLOUD).resolve(model="claude-opus-5.5", max_tokens=128000
                                    ).config.max_tokens == 128000


def test_opus_4_7_refuses_a_non_default_temperature(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve(env=CLOUD).resolve(model="claude-opus-4-7", temperature=0.2)
    assert caught.value.violations[0].description.endswith(
        "temperature 0.2 is not accepted by claude-opus-4-7: it takes only the default (1); "
        "leave temperature unset")
    assert serve(env=CLOUD).resolve(model="claude-opus-4-7", temperature=1.0)


def test_gpt_6_takes_a_temperature_only_with_reasoning_off(serve):
    resolved = serve(env=OPENAI).resolve(model="gpt-6.1-sol", temperature=0.3)
    assert resolved.config.temperature == 0.3
    assert any("accepted by gpt-6.1-sol only with reasoning off" in w for w in resolved.warnings)


def test_bare_gpt_oss_is_an_ollama_model(serve):
    assert serve().resolve(model="gpt-oss").config.provider == "ollama"
