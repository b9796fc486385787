"""How the environment is read: OLLAMA_HOST as Ollama parses it, *_FILE secrets, base URLs."""

from __future__ import annotations

import pytest

import llmconfig
from llmconfig_server.live.state import BuildError

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK


@pytest.mark.parametrize(("host", "url"), [
    ("", "http://localhost:11434"),  # unset: the default
    ("gpu-box", "http://gpu-box:11434"),
    ("gpu-box:8080", "http://gpu-box:8080"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
    ("http://10.0.0.5:11434/ollama/", "http://10.0.0.5:11434/ollama"),
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("[::]:11434", "http://[::1]:11434"),
    ("::1", "http://[::1]:11434"),
    ("127.0.0.1:11435", "http://127.0.0.1:11435"),
])
def test_ollama_host_is_parsed_like_ollama_does(serve, host, url):
    assert serve(env={"OLLAMA_HOST": host}).resolve().config.base_url == url


def test_ollama_host_with_scheme_and_no_port_means_port_80_with_a_warning(serve):
    resolved = serve(env={"OLLAMA_HOST": "http://gpu-box"}).resolve()
    assert resolved.config.base_url == "http://gpu-box:80"
    assert any("means port 80" in w and "http://gpu-box:11434" in w for w in resolved.warnings)


def test_ollama_host_is_ignored_for_other_providers(serve):
    resolved = serve(env={"OLLAMA_HOST": "gpu-box", "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
                     ).resolve(provider="anthropic")
    assert resolved.config.base_url == "https://api.anthropic.com"


def test_ollama_trailing_v1_is_stripped_with_a_warning(serve):
    resolved = serve(env={"OLLAMA_BASE_URL": "http://gpu:11434/v1/"}).resolve()
    assert resolved.config.base_url == "http://gpu:11434"
    assert resolved.config.openai_base_url == "http://gpu:11434/v1"
    assert any("ends in /v1" in w for w in resolved.warnings)


def test_openai_base_url_keeps_its_v1(serve):
    resolved = serve(env={"OPENAI_API_KEY": "sk-" + "a" * 40,
                          "OPENAI_BASE_URL": "https://gateway.example.com/v1"}
                     ).resolve(provider="openai")
    assert resolved.config.base_url == resolved.config.openai_base_url == \
        "https://gateway.example.com/v1"


def test_anthropic_base_url_env_is_used_for_anthropic(serve):
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                          "ANTHROPIC_BASE_URL": "https://proxy.example.com"}).resolve()
    assert resolved.config.base_url == "https://proxy.example.com"


def test_secret_file_variable_supplies_the_key(serve, workspace):
    path = workspace.write("secrets/anthropic", ANTHROPIC_KEY + "\n")
    resolved = serve(args=[TRUST_LOOPBACK],
                     env={"ANTHROPIC_API_KEY_FILE": str(path)}).resolve(include_secrets=True)
    assert resolved.config.api_key == ANTHROPIC_KEY
    assert resolved.origin("api_key").detail == f"ANTHROPIC_API_KEY_FILE ({path})"


def test_generic_secret_file_variable_supplies_the_key(serve, workspace):
    path = workspace.write("secrets/key", ANTHROPIC_KEY)
    resolved = serve(env={"STIGMER_LLM_API_KEY_FILE": str(path), "MODE": "cloud"}).resolve()
    assert resolved.config.api_key_hint == "sk-ant-…f2c9"


def test_empty_variables_count_as_unset(serve):
    resolved = serve(env={"STIGMER_LLM_MODEL": "", "STIGMER_LLM_PROVIDER": "  "}).resolve()
    assert resolved.config.model == "qwen2.5-coder:7b"


def test_provider_names_are_exact(serve):
    with pytest.raises(BuildError, match=r"provider 'Ollama' is not known.*lower case"):
        serve(env={"STIGMER_LLM_PROVIDER": "Ollama"})


def test_numbers_from_env_are_parsed(serve):
    resolved = serve(env={"STIGMER_LLM_MAX_TOKENS": "4096", "STIGMER_LLM_TEMPERATURE": "0.7"}
                     ).resolve()
    assert (resolved.config.max_tokens, resolved.config.temperature) == (4096, 0.7)


def test_out_of_range_env_value_is_a_precondition_naming_the_variable(serve):
    client = serve(env={"STIGMER_LLM_TEMPERATURE": "1.5"})
    assert client.resolve().config.temperature == 1.5  # within ollama's 0–2
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve(provider="anthropic", api_key=ANTHROPIC_KEY)
    violation = caught.value.violations[0]
    assert (violation.subject, violation.reason) == ("STIGMER_LLM_TEMPERATURE", "OUT_OF_RANGE")
    assert "out of range for anthropic (0.0–1.0)" in violation.description
