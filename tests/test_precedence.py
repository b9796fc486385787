"""The cascade order, one rule per test: request > flag > env > file > smart default > mode
defaults > provider defaults; and the order inside the environment and the file."""

from __future__ import annotations

from llmconfig import Source

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK

LLAMA_FILE = "llm:\n  model: llama3.1:8b\n"


def test_request_beats_flag(serve):
    client = serve(args=["--llm-model", "llama3:70b"])
    resolved = client.resolve(model="qwen2.5-coder:14b")
    assert resolved.config.model == "qwen2.5-coder:14b"
    assert resolved.origin("model").source is Source.REQUEST


def test_flag_beats_env(serve):
    client = serve(args=["--llm-model", "llama3:70b"], env={"STIGMER_LLM_MODEL": "phi4:14b"})
    resolved = client.resolve()
    assert resolved.config.model == "llama3:70b"
    assert resolved.origin("model").detail == "--llm-model"


def test_env_beats_file(serve):
    client = serve(env={"STIGMER_LLM_MODEL": "phi4:14b"},
                   files={"~/.stigmer/llmconfig.yaml": LLAMA_FILE})
    resolved = client.resolve()
    assert resolved.config.model == "phi4:14b"
    assert resolved.origin("model").detail == "STIGMER_LLM_MODEL"


def test_file_beats_smart_default(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   files={"~/.stigmer/llmconfig.yaml": "llm:\n  provider: ollama\n"})
    resolved = client.resolve()
    assert resolved.config.provider == "ollama"
    assert resolved.origin("provider").source is Source.FILE
    assert resolved.config.api_key_present is False


def test_smart_default_beats_mode_default(serve):
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve()
    assert resolved.config.provider == "anthropic"
    assert resolved.origin("provider").detail == (
        "smart default: local mode with an Anthropic key (ANTHROPIC_API_KEY)"
    )


def test_smart_default_applies_only_in_local_mode(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"})
    assert client.resolve().origin("provider").detail == "cloud mode default"


def test_mode_default_beats_provider_default(serve):
    resolved = serve().resolve()
    assert (resolved.config.max_tokens, resolved.config.temperature) == (8192, 0.0)
    assert resolved.origin("max_tokens").detail == "local mode default"


def test_provider_default_fills_what_no_layer_sets(serve):
    resolved = serve(args=["--llm-provider", "openai"], env={"OPENAI_API_KEY": "sk-abc" * 5}
                     ).resolve()
    assert (resolved.config.model, resolved.config.base_url) == ("gpt-6-luna",
                                                                 "https://api.openai.com/v1")
    # The contract's OpenAI default (gpt-4o) is deprecated: its replacement is served, and said.
    assert resolved.origin("model").detail == ("openai provider default (gpt-4o is deprecated, "
                                               "retiring 2027-01-14 → gpt-6-luna)")


def test_provider_default_replaces_mode_default_of_another_provider(serve):
    # Local mode's defaults are Ollama's; with provider anthropic, Anthropic's apply.
    resolved = serve(args=["--llm-provider", "anthropic", "--anthropic-key", ANTHROPIC_KEY]
                     ).resolve()
    assert resolved.config.model == "claude-sonnet-5-5"
    assert resolved.config.max_tokens == 20000
    assert resolved.config.temperature is None


def test_file_mode_section_beats_file_common_section(serve):
    client = serve(files={"~/.stigmer/llmconfig.yaml":
                          "llm:\n  model: llama3.1:8b\nlocal:\n  llm:\n    model: phi4:14b\n"})
    resolved = client.resolve()
    assert resolved.config.model == "phi4:14b"
    assert resolved.origin("model").detail == "~/.stigmer/llmconfig.yaml: local.llm.model"


def test_file_section_of_the_other_mode_is_ignored(serve):
    client = serve(files={"~/.stigmer/llmconfig.yaml": "cloud:\n  llm:\n    model: phi4:14b\n"})
    assert client.resolve().config.model == "qwen2.5-coder:7b"


def test_stigmer_env_beats_deprecated_llm_env(serve):
    resolved = serve(env={"STIGMER_LLM_MODEL": "phi4:14b", "LLM_MODEL": "llama3:8b"}).resolve()
    assert resolved.config.model == "phi4:14b"
    assert "LLM_MODEL is deprecated and ignored because STIGMER_LLM_MODEL is set" in \
        resolved.warnings


def test_deprecated_llm_env_is_used_with_a_warning(serve):
    resolved = serve(env={"LLM_MODEL": "llama3:8b"}).resolve()
    assert resolved.config.model == "llama3:8b"
    assert resolved.origin("model").detail == "LLM_MODEL"
    assert "LLM_MODEL is deprecated; rename it to STIGMER_LLM_MODEL" in resolved.warnings


def test_generic_env_beats_provider_scoped_env(serve):
    resolved = serve(env={"STIGMER_LLM_BASE_URL": "http://gpu:11434",
                          "OLLAMA_BASE_URL": "http://other:11434"}).resolve()
    assert resolved.config.base_url == "http://gpu:11434"


def test_ollama_base_url_beats_ollama_host(serve):
    resolved = serve(env={"OLLAMA_BASE_URL": "http://a:11434", "OLLAMA_HOST": "b"}).resolve()
    assert resolved.config.base_url == "http://a:11434"
    assert resolved.origin("base_url").detail == "OLLAMA_BASE_URL"


def test_generic_flag_key_beats_provider_key_flag(serve):
    other = "sk-ant-api03-OTHERKEYotherkeyOTHERKEY-0000"
    resolved = serve(args=[TRUST_LOOPBACK, "--llm-provider", "anthropic", "--llm-api-key", other,
                           "--anthropic-key", ANTHROPIC_KEY]).resolve(include_secrets=True)
    assert resolved.config.api_key == other


def test_request_mode_beats_server_mode(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    resolved = client.resolve("cloud")
    assert resolved.config.mode == "cloud"
    assert resolved.origin("mode").source is Source.REQUEST


def test_flag_mode_beats_env_mode(serve):
    resolved = serve(args=["--mode", "local"], env={"MODE": "cloud"}).resolve()
    assert resolved.config.mode == "local"
    assert resolved.origin("mode").detail == "--mode"


def test_env_mode_beats_file_mode(serve):
    client = serve(env={"MODE": "local"}, files={"~/.stigmer/llmconfig.yaml": "mode: cloud\n"})
    assert client.resolve().config.mode == "local"


def test_config_flag_beats_the_config_variable(serve, workspace):
    flagged = workspace.write("a.yaml", "llm:\n  model: phi4:14b\n")
    named = workspace.write("b.yaml", LLAMA_FILE)
    client = serve(args=["--config", str(flagged)], env={"STIGMER_LLMCONFIG_CONFIG": str(named)})
    assert client.resolve().config.model == "phi4:14b"


def test_the_config_variable_beats_the_default_file(serve, workspace):
    named = workspace.write("b.yaml", "llm:\n  model: phi4:14b\n")
    client = serve(env={"STIGMER_LLMCONFIG_CONFIG": str(named)},
                   files={"~/.stigmer/llmconfig.yaml": LLAMA_FILE})
    assert client.resolve().config.model == "phi4:14b"


def test_the_default_file_beats_the_deprecated_places(serve):
    client = serve(files={"~/.stigmer/llmconfig.yaml": "llm:\n  model: phi4:14b\n",
                          ".stigmer/config.yaml": LLAMA_FILE})
    assert client.resolve().config.model == "phi4:14b"


def test_the_default_file_is_llmconfig_yaml_in_home(serve):
    resolved = serve(files={"~/.stigmer/llmconfig.yaml": LLAMA_FILE}).resolve()
    assert resolved.config.model == "llama3.1:8b"
    assert resolved.origin("model").detail == "~/.stigmer/llmconfig.yaml: llm.model"
