"""An operator's catalog file (--catalog, STIGMER_LLMCONFIG_CATALOG): OpenAI-compatible providers
as data, overrides of shipped facts, one line per problem, never fatal on reload."""

from __future__ import annotations

import os

import pytest

import llmconfig
from llmconfig import HealthStatus

import providers
from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK, startup_refusal

GROQ_KEY = "gsk_TESTKEYtestkeyTESTKEYtestkey-77aa"


def started(emulators, emulator):
    emulators.append(emulator)
    return emulator


def groq_catalog(url: str) -> str:
    return f"""providers:
  - name: groq
    kind: openai-compatible
    display_name: Groq
    base_url: {url}/v1
    api_key_env: GROQ_API_KEY
    default_model: llama-3.3-70b-versatile
"""


def test_an_openai_compatible_provider_declared_as_data_resolves_with_origins(serve, workspace):
    path = workspace.write("catalog.yaml", groq_catalog("https://api.groq.com/openai"))
    client = serve(env={"GROQ_API_KEY": GROQ_KEY}, args=["--catalog", str(path)])
    resolved = client.resolve(provider="groq")
    c = resolved.config
    assert (c.provider, c.model, c.base_url, c.openai_base_url) == (
        "groq", "llama-3.3-70b-versatile", "https://api.groq.com/openai/v1",
        "https://api.groq.com/openai/v1")
    assert (c.api_key_present, resolved.origin("api_key").detail) == (True, "GROQ_API_KEY")
    assert resolved.origin("model").detail == "groq provider default"


def test_a_declared_key_variable_is_required(serve, workspace):
    path = workspace.write("catalog.yaml", groq_catalog("https://api.groq.com/openai"))
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        serve(env={"STIGMER_LLMCONFIG_CATALOG": str(path)}).resolve(provider="groq")
    assert "set GROQ_API_KEY_FILE to its path (or set GROQ_API_KEY or STIGMER_LLM_API_KEY)" \
        in caught.value.message


def test_a_declared_key_variable_is_read_from_its_file_too(serve, workspace):
    path = workspace.write("catalog.yaml", groq_catalog("https://api.groq.com/openai"))
    key = workspace.write("groq-key", GROQ_KEY + "\n")
    client = serve(env={"STIGMER_LLMCONFIG_CATALOG": str(path), "GROQ_API_KEY_FILE": str(key)})
    assert client.resolve(provider="groq").config.api_key_hint.endswith(GROQ_KEY[-4:])


def test_a_declared_provider_is_probed_with_its_own_key_and_built_as_chat_openai(
        serve, workspace, emulators):
    groq = started(emulators, providers.openai_compatible(["llama-3.3-70b-versatile"],
                                                          key=GROQ_KEY))
    path = workspace.write("catalog.yaml", groq_catalog(groq.url))
    client = serve(env={"GROQ_API_KEY": GROQ_KEY, "STIGMER_LLM_PROVIDER": "groq"},
                   args=["--catalog", str(path), TRUST_LOOPBACK])
    health = client.check_health()
    assert (health.status, health.model_available) == (HealthStatus.HEALTHY, True)
    assert health.message == f"Groq at {groq.url}/v1 is up and serves llama-3.3-70b-versatile"
    (request,) = groq.requests
    assert (request.path, request.headers["authorization"]) == ("/v1/models",
                                                                f"Bearer {GROQ_KEY}")
    config = client.resolve(include_secrets=True).config
    assert config.chat_model_class() == "langchain_openai.ChatOpenAI"
    assert config.chat_model_kwargs() == {"model": "llama-3.3-70b-versatile",
                                          "base_url": f"{groq.url}/v1", "api_key": GROQ_KEY}


def test_vllm_ships_declared_without_a_key_and_is_probed_without_one(serve, emulators):
    vllm = started(emulators, providers.openai_compatible())
    client = serve(env={"STIGMER_LLM_PROVIDER": "vllm", "STIGMER_LLM_BASE_URL": f"{vllm.url}/v1",
                        "STIGMER_LLM_MODEL": "Qwen/Qwen3-Coder-30B-A3B-Instruct",
                        "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert client.check_health().status is HealthStatus.HEALTHY
    other = client.check_health(model="Qwen/Qwen3-8B")
    assert other.status is HealthStatus.MODEL_NOT_FOUND
    assert "it serves Qwen/Qwen3-Coder-30B-A3B-Instruct" in other.message
    assert all("authorization" not in r.headers for r in vllm.requests)
    config = client.resolve().config
    assert (config.provider, config.api_key_present) == ("vllm", False)
    assert config.chat_model_kwargs()["api_key"] == "not-needed"


def test_lm_studio_ships_at_its_default_port(serve):
    config = serve().resolve(provider="lmstudio", model="qwen/qwen3-8b").config
    assert (config.base_url, config.openai_base_url) == ("http://localhost:1234/v1",
                                                         "http://localhost:1234/v1")
    assert config.chat_model_class() == "langchain_openai.ChatOpenAI"


def test_an_operator_file_overrides_a_shipped_model(serve, workspace):
    path = workspace.write("catalog.yaml", """models:
  - id: claude-opus-4-7
    provider: anthropic
    status: retired
    retires_on: 2026-12-01
    replacement: claude-opus-5-5
""")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--catalog", str(path)])
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.resolve(model="claude-opus-4.7")
    assert "retired by Anthropic on 2026-12-01" in caught.value.message
    assert "use claude-opus-5-5 instead" in caught.value.message


BROKEN = """providers:
  - name: together
    kind: openai-compatible
  - name: mistral
    kind: mistral-native
    base_url: https://api.mistral.ai/v1
  - name: fireworks
    kind: anthropic
    base_url: https://api.fireworks.ai/inference/v1
models:
  - id: claude-opus-5-5
    provider: anthropic
    max_output_tokens: lots
  - id: claude-opus-5-5
    provider: anthropic
    colour: blue
  - id: claude-mystery-9
    provider: anthropic
    replacement: claude-does-not-exist
"""


def test_each_problem_of_a_catalog_file_is_one_line_naming_file_and_line(workspace):
    path = workspace.write("operator-catalog.yaml", BROKEN)
    handle = startup_refusal(workspace, args=["--catalog", str(path)])
    log = handle.log
    assert "operator-catalog.yaml:5: providers.1.kind: input should be 'anthropic', 'ollama', " \
           "'openai' or 'openai-compatible'" in log
    assert "operator-catalog.yaml:13: models.0.max_output_tokens: input should be a valid " \
           "integer" in log
    assert "operator-catalog.yaml:16: models.1.colour: unknown key (allowed here: aliases," in log
    # The file parses, so its whole-file problems are found: each on its own line.
    workspace.write("operator-catalog.yaml", BROKEN.replace("    kind: mistral-native\n",
                                                            "    kind: openai-compatible\n")
                    .replace("max_output_tokens: lots", "max_output_tokens: 1000")
                    .replace("    colour: blue\n", ""))
    handle = startup_refusal(workspace, args=["--catalog", str(path)])
    problems = [line for line in handle.lines if "operator-catalog.yaml:" in line]
    assert any(":2: provider together has no base_url" in p for p in problems)
    assert any(":7: a new provider (fireworks) must be kind openai-compatible" in p
               for p in problems)
    assert any(":14: model claude-opus-5-5 of anthropic is declared twice" in p for p in problems)
    assert any(":18: the replacement of claude-mystery-9 (claude-does-not-exist) is not a model "
               "of anthropic" in p for p in problems)
    assert len(problems) == 4, problems


def test_a_broken_catalog_on_reload_keeps_the_last_good_one(serve, servers, workspace):
    path = workspace.write("catalog.yaml", "models:\n  - id: claude-opus-4-7\n"
                                           "    provider: anthropic\n    status: retired\n")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--catalog", str(path)])
    with pytest.raises(llmconfig.ConfigInvalid):
        client.resolve(model="claude-opus-4-7")
    path.write_text("models:\n  - id: claude-opus-4-7\n    provider: anthropic\n    status: ok\n")
    assert servers[0].reload() == "failed"
    with pytest.raises(llmconfig.ConfigInvalid):  # the last good catalog still holds
        client.resolve(model="claude-opus-4-7")
    (warning,) = client.resolve(model="claude-opus-4-6").warnings
    assert "could not be reloaded" in warning
    assert "catalog.yaml:4: models.0.status: input should be 'active'" in warning


def test_the_catalog_file_reloads_live(serve, servers, workspace):
    path = workspace.write("catalog.yaml", "")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--catalog", str(path)])
    assert client.resolve(model="claude-opus-4-7").config.model == "claude-opus-4-7"
    path.write_text("models:\n  - id: claude-opus-4-7\n    provider: anthropic\n"
                    "    status: retired\n    replacement: claude-opus-5-5\n")
    assert servers[0].reload() == "applied"
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.resolve(model="claude-opus-4-7")
    assert "use claude-opus-5-5 instead" in caught.value.message


def test_a_fifo_is_refused_not_read(workspace):
    fifo = workspace.cwd / "catalog.fifo"
    os.mkfifo(fifo)
    handle = startup_refusal(workspace, args=["--catalog", str(fifo)])
    assert "is not a regular file (a FIFO)" in handle.log


def test_a_huge_catalog_is_refused_not_read(workspace):
    path = workspace.write("catalog.yaml", "# " + "x" * (2 * 1024 * 1024) + "\n")
    handle = startup_refusal(workspace, args=["--catalog", str(path)])
    assert "more than the 1024 KiB allowed" in handle.log
