"""Learned from the providers, zero tokens: ListModels and the lists the server keeps, against
loopback servers that speak the documented model-list APIs (paging included) and their failure
answers; bounded and cleaned whatever a provider sends."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time

import pytest

import llmconfig
from llmconfig import ModelStatus
from llmconfig_server.health import model_lists
from llmconfig_server.health.probes.listing import ID_LIMIT, MAX_MODELS

import providers
from conftest import ANTHROPIC_KEY, OPENAI_KEY
from providers import Emulator, Reply


def started(emulators, emulator):
    emulators.append(emulator)
    return emulator


@pytest.fixture
def every_time(monkeypatch):
    """Let a test list one target twice in a row (the server lists one at most every 10 s)."""
    monkeypatch.setattr(model_lists, "MIN_INTERVAL", 0.0)


def anthropic_env(url: str) -> dict[str, str]:
    return {"MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": url}


def by_id(models):
    return {m.id: m for m in models}


def test_anthropic_models_are_listed_across_pages(serve, emulators):
    ids = [f"claude-listed-{n:03d}" for n in range(250)]
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY, ids))
    models = by_id(serve(env=anthropic_env(claude.url)).list_models("anthropic", refresh=True))
    assert all(models[i].available and models[i].known_from == "provider" for i in ids)
    assert [r.path for r in claude.requests] == [
        "/v1/models?limit=100", "/v1/models?limit=100&after_id=claude-listed-099",
        "/v1/models?limit=100&after_id=claude-listed-199"]
    assert all(r.headers["x-api-key"] == ANTHROPIC_KEY for r in claude.requests)


def test_a_listed_model_is_known_to_resolution(serve, emulators):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY, ["claude-brand-new-7"]))
    client = serve(env=anthropic_env(claude.url))
    assert any("not one Anthropic's catalog" in w
               for w in client.resolve(model="claude-brand-new-7").warnings)
    client.list_models("anthropic", refresh=True)
    assert client.resolve(model="claude-brand-new-7").warnings == ()


def test_limits_the_api_gives_win_over_the_shipped_data(serve, emulators):
    claude = started(emulators, providers.anthropic(
        ANTHROPIC_KEY, ["claude-sonnet-5-5"], limits={"claude-sonnet-5-5": (64000, 500000)}))
    client = serve(env=anthropic_env(claude.url))
    listed = by_id(client.list_models("anthropic", refresh=True))["claude-sonnet-5-5"]
    assert (listed.max_output_tokens, listed.context_window, listed.known_from) == (
        64000, 500000, "both")
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.resolve(model="claude-sonnet-5.5", max_tokens=100000)
    assert "above what claude-sonnet-5-5 writes (1–64000)" in caught.value.message


def test_a_shutdown_date_the_api_gives_wins_over_the_shipped_data(serve, emulators):
    gpt = started(emulators, providers.openai(OPENAI_KEY, ["gpt-6-luna"],
                                              shutdown={"gpt-6-luna": "2027-03-01"}))
    client = serve(env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{gpt.url}/v1",
                        "STIGMER_LLM_PROVIDER": "openai"})
    listed = by_id(client.list_models("openai", refresh=True))["gpt-6-luna"]
    assert (listed.status, listed.retires_on) == (ModelStatus.DEPRECATED, "2027-03-01")
    assert any("OpenAI retires it on 2027-03-01" in w
               for w in client.resolve(model="gpt-6-luna").warnings)


def test_ollama_lists_what_is_pulled(serve, emulators):
    ollama = started(emulators, providers.ollama(["qwen2.5-coder:7b", "my-finetune:q4"]))
    models = by_id(serve(env={"OLLAMA_BASE_URL": ollama.url}).list_models("ollama",
                                                                          refresh=True))
    assert (models["qwen2.5-coder:7b"].available, models["qwen2.5-coder:7b"].known_from) == (
        True, "both")
    assert (models["my-finetune:q4"].available, models["my-finetune:q4"].known_from) == (
        True, "provider")
    assert models["qwen2.5-coder:32b"].available is False


def test_without_refresh_the_catalog_is_shown_and_nothing_is_asked(serve, emulators):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY))
    models = serve(env=anthropic_env(claude.url)).list_models("anthropic")
    assert models and not any(m.available for m in models)
    retired = by_id(models)["claude-sonnet-4-5-20250929"]
    assert (retired.status, retired.retires_on, retired.replacement) == (
        ModelStatus.RETIRED, "2026-11-30", "claude-sonnet-5-5")
    assert claude.requests == []


def test_a_failed_listing_keeps_the_last_list_and_says_so(serve, emulators, every_time):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY, ["claude-brand-new-7"]))
    client = serve(env=anthropic_env(claude.url))
    client.list_models("anthropic", refresh=True)
    claude.override("/v1/models?limit=100", providers.anthropic_overloaded())
    models = by_id(client.list_models("anthropic", refresh=True))
    assert models["claude-brand-new-7"].available
    (warning,) = client.last_model_warnings
    assert f"Anthropic at {claude.url} could not be listed: it answered 529 (overloaded_error: " \
           "Overloaded) (last good list from" in warning


def test_garbage_json_is_a_warning_not_a_failure(serve, emulators):
    vllm = started(emulators, Emulator(lambda request: Reply(200, "{not json")))
    client = serve(env={"STIGMER_LLM_PROVIDER": "vllm", "STIGMER_LLM_BASE_URL": f"{vllm.url}/v1",
                        "STIGMER_LLM_MODEL": "m"})
    assert client.list_models("vllm", refresh=True) == ()
    (warning,) = client.last_model_warnings
    assert "could not be listed: it answered 200 but not with JSON" in warning


def test_a_huge_or_hostile_list_is_bounded_and_cleaned(serve, emulators):
    hostile = ["\x1b[31mred", "bidi\u202eevil", "tab\there", "a" * 1_000_000, 42, None,
               {"nested": True}, "zero\u200bwidth", ""]
    entries = [{"id": i} for i in hostile] + [{"id": f"m-{n}"} for n in range(100_000)]
    body = json.dumps({"object": "list", "data": entries})
    vllm = started(emulators, Emulator(lambda request: Reply(200, body, {
        "Content-Type": "application/json"})))
    client = serve(env={"STIGMER_LLM_PROVIDER": "vllm", "STIGMER_LLM_BASE_URL": f"{vllm.url}/v1",
                        "STIGMER_LLM_MODEL": "m-1"})
    models = client.list_models("vllm", refresh=True)
    assert len(models) <= MAX_MODELS
    assert all(len(m.id) <= ID_LIMIT and m.id.isprintable() and " " not in m.id for m in models)
    assert all(m.id.startswith("m-") for m in models)
    # Either the list was cut (and said so) or the answer was too large to read at all (and
    # said so): both leave the server well and bounded.
    assert client.last_model_warnings
    assert client.resolve().config.model == "m-1"


def test_a_key_goes_to_no_list_but_its_own_providers(serve, emulators, workspace):
    capture = started(emulators, providers.capturing())
    path = workspace.write("catalog.yaml", f"providers:\n  - name: local-llm\n"
                                           f"    kind: openai-compatible\n"
                                           f"    base_url: {capture.url}/v1\n")
    client = serve(env={"STIGMER_LLM_API_KEY": ANTHROPIC_KEY, "OPENAI_BASE_URL": capture.url,
                        "STIGMER_LLMCONFIG_CATALOG": str(path)})
    client.list_models("openai", refresh=True)  # no OpenAI key: not asked at all
    client.list_models("local-llm", refresh=True)  # no key declared: asked without one
    assert [r.path for r in capture.requests] == ["/v1/models"]
    assert all(ANTHROPIC_KEY not in json.dumps(r.headers) for r in capture.requests)


def test_lists_never_reach_the_log_in_full(serve, emulators, caplog):
    ids = [f"claude-secretive-{n:03d}" for n in range(50)]
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY, ids))
    with caplog.at_level(logging.DEBUG):
        serve(env=anthropic_env(claude.url)).list_models("anthropic", refresh=True)
    assert f"anthropic at {claude.url} lists 50 models" in caplog.text
    assert "claude-secretive" not in caplog.text


def test_the_background_refresh_lists_without_a_caller(serve, emulators):
    claude = started(emulators, providers.anthropic(ANTHROPIC_KEY, ["claude-brand-new-7"]))
    client = serve(env=anthropic_env(claude.url), args=["--models-refresh-interval", "3600"])
    deadline = time.monotonic() + 10  # a hang guard, not a speed claim
    while not claude.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    while time.monotonic() < deadline:
        if by_id(client.list_models("anthropic"))["claude-brand-new-7"].available:
            break
        time.sleep(0.05)
    assert by_id(client.list_models("anthropic"))["claude-brand-new-7"].available


def test_an_unknown_provider_is_invalid_argument(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve().list_models("gemini")
    assert "provider 'gemini' is not known; use one of: anthropic, lmstudio, ollama, openai, " \
           "vllm" in caught.value.message


def test_the_async_client_lists_models(serve):
    client = serve()

    async def ask():
        async with llmconfig.AsyncClient(client.target) as aclient:
            return await aclient.list_models("ollama")

    assert "qwen2.5-coder:7b" in by_id(asyncio.run(ask()))


def test_the_cli_lists_models_with_status_and_retirement(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    done = subprocess.run([sys.executable, "-m", "llmconfig", "models", "--target", client.target,
                           "--provider", "anthropic"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if "claude-sonnet-4-5-20250929" in line]
    assert row.split()[2:] == ["retired", "64K", "200K", "2026-11-30", "claude-sonnet-5-5", "–"]
    as_json = subprocess.run([sys.executable, "-m", "llmconfig", "models", "--json", "--target",
                              client.target], capture_output=True, text=True, timeout=60)
    ids = {m["id"] for m in json.loads(as_json.stdout)["models"]}
    assert {"claude-sonnet-5-5", "gpt-6-luna", "qwen2.5-coder:7b"} <= ids


def test_a_provider_that_never_answers_is_a_warning_not_a_hang(serve, emulators):
    hole = started(emulators, providers.BlackHole())
    client = serve(env=anthropic_env(hole.url), args=["--probe-timeout", "0.2"])
    models = client.list_models("anthropic", refresh=True, timeout=10)  # a hang guard
    assert models and not any(m.available for m in models)
    (warning,) = client.last_model_warnings
    assert "could not be listed" in warning and "did not answer within 0.2 s" in warning
