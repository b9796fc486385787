"""Values are taken exactly and bounded, wherever they come from.

Numbers are plain ASCII decimals (Python's int() and float() also take `1_000`, `١٠٠٠` and
`inf`); names are exact (` local` and `LOCAL` are not modes); strings are bounded (model 256,
base URL 2048, API key 4096 characters) and free of control characters; an API key is printable
ASCII without spaces. A request breaking a rule gets INVALID_ARGUMENT with a BadRequest field
violation; a server input breaking one stops the server (exit 2) naming the variable. No message
echoes a secret or a huge value back.
"""

from __future__ import annotations

import grpc
import pytest

import llmconfig

from conftest import ANTHROPIC_KEY, refusal_lines


def invalid(call, *args, **kwargs) -> llmconfig.ConfigInvalid:
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        call(*args, **kwargs)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def only_violation(error: llmconfig.ConfigInvalid) -> tuple[str, str]:
    (violation,) = error.violations
    return violation.subject, violation.reason


# --- the request ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [" local", "local ", "LOCAL", "Cloud", "local\n"])
def test_request_mode_must_be_exact(serve, mode):
    error = invalid(serve().resolve, mode)
    assert only_violation(error)[0] == "mode"
    assert only_violation(error)[1] in ("UNKNOWN_MODE", "UNEXPECTED_WHITESPACE",
                                        "CONTROL_CHARACTER")


def test_upper_case_mode_is_unknown_with_a_hint(serve):
    error = invalid(serve().resolve, "LOCAL")
    assert only_violation(error) == ("mode", "UNKNOWN_MODE")
    assert "names are lower case" in error.message


def test_request_provider_must_be_exact(serve):
    error = invalid(serve().resolve, provider="Ollama")
    assert only_violation(error) == ("overrides.provider", "UNKNOWN_PROVIDER")


def test_request_value_with_surrounding_whitespace_is_refused(serve):
    error = invalid(serve().resolve, model=" qwen2.5-coder:7b")
    assert only_violation(error) == ("overrides.model", "UNEXPECTED_WHITESPACE")


@pytest.mark.parametrize(("field", "limit"), [("model", 256), ("base_url", 2048),
                                              ("api_key", 4096)])
def test_request_string_longer_than_its_limit_is_refused(serve, field, limit):
    value = {"model": "m" * (limit + 1), "base_url": "http://h/" + "p" * limit,
             "api_key": "sk-ant-" + "k" * limit}[field]
    error = invalid(serve().resolve, provider="anthropic", **{field: value})
    assert only_violation(error) == (f"overrides.{field}", "VALUE_TOO_LONG")
    assert f"at most {limit} are allowed" in error.message
    assert value not in error.message


@pytest.mark.parametrize("field", ["model", "base_url"])
def test_request_string_at_its_limit_is_accepted(serve, field):
    value = {"model": "m" * 256, "base_url": "http://h/" + "p" * (2048 - 9)}[field]
    resolved = serve().resolve(provider="ollama", **{field: value})
    assert getattr(resolved.config, field) == value


def test_huge_string_is_not_echoed_back(serve):
    error = invalid(serve().resolve, provider="x" * 60_000)
    assert only_violation(error) == ("overrides.provider", "UNKNOWN_PROVIDER")
    assert len(error.message) < 300


@pytest.mark.parametrize("field", ["provider", "model", "base_url", "api_key"])
@pytest.mark.parametrize("char", ["\n", "\r", "\x1b", "\x00", "\u2028", "\x85"],
                         ids=["LF", "CR", "ESC", "NUL", "LINE SEPARATOR", "NEL"])
def test_request_string_with_a_control_character_is_refused(serve, field, char):
    value = {"provider": "anthropic", "model": "claude-x", "base_url": "http://h:1",
             "api_key": ANTHROPIC_KEY}[field]
    kwargs = {"provider": "anthropic", "api_key": ANTHROPIC_KEY,
              field: value[:4] + char + value[4:]}
    error = invalid(serve().resolve, **kwargs)
    assert only_violation(error) == (f"overrides.{field}", "CONTROL_CHARACTER")
    assert char not in error.message


@pytest.mark.parametrize(("key", "kind"), [
    (ANTHROPIC_KEY[:10] + " " + ANTHROPIC_KEY[10:], "a space"),
    (ANTHROPIC_KEY + "é", "a non-ASCII character"),
    ("ß" + ANTHROPIC_KEY, "a non-ASCII character"),  # (a BOM is a control character)
])
def test_request_api_key_must_be_printable_ascii(serve, key, kind):
    error = invalid(serve().resolve, provider="anthropic", api_key=key)
    assert only_violation(error) == ("overrides.api_key", "INVALID_API_KEY")
    assert f"contains {kind}" in error.message
    assert ANTHROPIC_KEY[-12:] not in error.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_request_temperature_must_be_finite(serve, value):
    error = invalid(serve().resolve, temperature=value)
    assert only_violation(error) == ("overrides.temperature", "INVALID_NUMBER")


# --- CheckProviderHealth goes through the same rules ---------------------------------------

@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"model": "qwen\nWARNING forged"}, "CONTROL_CHARACTER"),
    ({"model": "m" * 257}, "VALUE_TOO_LONG"),
    ({"base_url": "http://localhost:11434/" + "p" * 2048}, "VALUE_TOO_LONG"),
    ({"provider": "Ollama"}, "UNKNOWN_PROVIDER"),
    ({"mode": "LOCAL"}, "UNKNOWN_MODE"),
    ({"mode": " local"}, "UNEXPECTED_WHITESPACE"),
])
def test_health_request_strings_obey_the_same_rules(serve, kwargs, reason):
    error = invalid(serve().check_health, **kwargs)
    assert error.violations[0].reason == reason


# --- server inputs: the real process, refusing to start ------------------------------------

@pytest.mark.parametrize(("env", "subject", "why"), [
    ({"STIGMER_LLM_MAX_TOKENS": "1_000"}, "STIGMER_LLM_MAX_TOKENS", "is not an integer"),
    ({"STIGMER_LLM_MAX_TOKENS": "١٠٠٠"}, "STIGMER_LLM_MAX_TOKENS", "is not an integer"),
    ({"STIGMER_LLM_MAX_TOKENS": "0x400"}, "STIGMER_LLM_MAX_TOKENS", "is not an integer"),
    ({"STIGMER_LLM_MAX_TOKENS": "9" * 5000}, "STIGMER_LLM_MAX_TOKENS", "is not an integer"),
    ({"STIGMER_LLM_TEMPERATURE": "٠.٥"}, "STIGMER_LLM_TEMPERATURE", "is not a number"),
    ({"STIGMER_LLM_TEMPERATURE": "0_5"}, "STIGMER_LLM_TEMPERATURE", "is not a number"),
    ({"STIGMER_LLM_TEMPERATURE": "nan"}, "STIGMER_LLM_TEMPERATURE", "is not a number"),
    ({"STIGMER_LLM_TEMPERATURE": "1e999"}, "STIGMER_LLM_TEMPERATURE", "is not a number"),
    ({"MODE": " local"}, "MODE", "leading or trailing whitespace"),
    ({"MODE": "LOCAL"}, "MODE", "is not known"),
    ({"STIGMER_LLM_PROVIDER": "ollama "}, "STIGMER_LLM_PROVIDER",
     "leading or trailing whitespace"),
    ({"STIGMER_LLM_MODEL": "qwen\x1b[31m"}, "STIGMER_LLM_MODEL", "control character (U+001B"),
    ({"OLLAMA_HOST": "gpu-box\n"}, "OLLAMA_HOST", "control character (U+000A"),
    ({"STIGMER_LLM_MODEL": "m" * 300}, "STIGMER_LLM_MODEL", "300 characters long"),
    ({"ANTHROPIC_API_KEY": ANTHROPIC_KEY + "\n", "STIGMER_LLM_PROVIDER": "anthropic"},
     "ANTHROPIC_API_KEY", "control character (U+000A"),
    ({"STIGMER_LLMCONFIG_CONFIG": "/tmp/x\nINFO forged"}, "STIGMER_LLMCONFIG_CONFIG",
     "control character"),
])
def test_bad_server_input_stops_the_server_naming_it(workspace, env, subject, why):
    lines = refusal_lines(workspace, env=env)  # what the command prints before exit 2
    header, line = lines  # the refusal and exactly one explanation
    assert header.endswith("the configuration is invalid:")
    assert line.startswith(f"  - {subject}")
    assert why in line
    assert ANTHROPIC_KEY[-12:] not in "\n".join(lines)
    assert len(line) < 400


@pytest.mark.parametrize(("args", "subject", "why"), [
    (["--llm-max-tokens", "1_000"], "--llm-max-tokens", "is not an integer"),
    (["--mode", "LOCAL"], "--mode", "is not known"),
    (["--llm-provider", " ollama"], "--llm-provider", "leading or trailing whitespace"),
    (["--anthropic-key", ANTHROPIC_KEY + " "], "--anthropic-key",
     "leading or trailing whitespace"),
])
def test_bad_flag_stops_the_server_naming_it(workspace, args, subject, why):
    lines = refusal_lines(workspace, args)
    _header, line = lines
    assert line.startswith(f"  - {subject}") and why in line
    assert ANTHROPIC_KEY[-12:] not in "\n".join(lines)


@pytest.mark.parametrize(("text", "why"), [
    ("mode: LOCAL\n", "config.yaml: mode: mode 'LOCAL' is not known"),
    ("llm:\n  provider: Ollama\n", "config.yaml: llm.provider: provider 'Ollama' is not known"),
    ('llm:\n  model: " qwen2.5-coder:7b"\n', "llm.model: model has leading or trailing"),
    ('llm:\n  model: "qwen\\e[31m"\n', "llm.model: model contains a control character"),
    ("llm:\n  max_tokens: 0x400\n", "llm.max_tokens: input should be a valid integer"),
])
def test_bad_config_file_value_stops_the_server_naming_the_key(workspace, text, why):
    workspace.write("~/.stigmer/llmconfig.yaml", text)
    _header, line = refusal_lines(workspace)
    assert why in line


@pytest.mark.parametrize(("raw", "value"), [("4096", 4096), ("+4096", 4096)])
def test_plain_decimal_max_tokens_from_env_works(serve, raw, value):
    assert serve(env={"STIGMER_LLM_MAX_TOKENS": raw}).resolve().config.max_tokens == value


@pytest.mark.parametrize(("raw", "value"), [("0.5", 0.5), ("1", 1.0), (".5", 0.5),
                                            ("5e-1", 0.5), ("-0", 0.0)])
def test_plain_decimal_temperature_from_env_works(serve, raw, value):
    assert serve(env={"STIGMER_LLM_TEMPERATURE": raw}).resolve().config.temperature == value


def test_exact_mode_from_env_works(serve):
    assert serve(env={"MODE": "local"}).resolve().config.mode == "local"
