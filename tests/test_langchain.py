"""Runners get LangChain chat model arguments (no LangChain import) or the model itself."""

from __future__ import annotations

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

import llmconfig

from conftest import ANTHROPIC_KEY, OPENAI_KEY, TRUST_LOOPBACK


def test_anthropic_kwargs(serve):
    config = serve(args=[TRUST_LOOPBACK],
                   env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MODE": "cloud"}).resolve(
        include_secrets=True, model="claude-haiku-4.5", temperature=0.3).config
    assert config.chat_model_class() == "langchain_anthropic.ChatAnthropic"
    assert config.chat_model_kwargs() == {
        "model": "claude-haiku-4-5-20251001", "base_url": "https://api.anthropic.com",
        "api_key": ANTHROPIC_KEY, "max_tokens": 20000, "temperature": 0.3}


def test_ollama_kwargs_carry_an_explicit_base_url(serve):
    config = serve(env={"OLLAMA_HOST": "gpu-box"}).resolve().config
    assert config.chat_model_kwargs() == {
        "model": "qwen2.5-coder:7b", "base_url": "http://gpu-box:11434", "num_predict": 8192,
        "temperature": 0.0}


def test_ollama_through_its_openai_compatible_endpoint(serve):
    config = serve().resolve().config
    assert config.chat_model_class(openai_compatible=True) == "langchain_openai.ChatOpenAI"
    assert config.chat_model_kwargs(openai_compatible=True) == {
        "model": "qwen2.5-coder:7b", "base_url": "http://localhost:11434/v1",
        "api_key": "ollama", "max_tokens": 8192, "temperature": 0.0}


def test_openai_kwargs(serve):
    config = serve(args=[TRUST_LOOPBACK], env={"OPENAI_API_KEY": OPENAI_KEY}).resolve(
        provider="openai", include_secrets=True).config
    assert config.chat_model_kwargs() == {
        "model": "gpt-6-luna", "base_url": "https://api.openai.com/v1", "api_key": OPENAI_KEY}


def test_kwargs_without_the_key_say_how_to_get_it(serve):
    config = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve().config
    with pytest.raises(llmconfig.MissingSecret, match="include_secrets=True"):
        config.chat_model_kwargs()


def test_chat_model_builds_chat_anthropic(serve):
    config = serve(args=[TRUST_LOOPBACK],
                   env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve(include_secrets=True).config
    model = config.chat_model()
    assert isinstance(model, ChatAnthropic)
    assert (model.model, model.max_tokens) == ("claude-sonnet-5-5", 20000)
    assert model.anthropic_api_key.get_secret_value() == ANTHROPIC_KEY


def test_chat_model_builds_chat_ollama(serve):
    model = serve().resolve().config.chat_model()
    assert isinstance(model, ChatOllama)
    assert (model.model, model.base_url, model.num_predict) == (
        "qwen2.5-coder:7b", "http://localhost:11434", 8192)


def test_chat_model_builds_chat_openai(serve):
    config = serve(args=[TRUST_LOOPBACK], env={"OPENAI_API_KEY": OPENAI_KEY}).resolve(
        provider="openai", model="fast", include_secrets=True).config
    model = config.chat_model()
    assert isinstance(model, ChatOpenAI)
    assert (model.model_name, model.openai_api_base) == ("gpt-6-luna",
                                                         "https://api.openai.com/v1")


def test_a_runner_gets_a_ready_chat_model_in_two_lines(serve, monkeypatch):
    target = serve(args=[TRUST_LOOPBACK], env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).target
    monkeypatch.setenv("STIGMER_LLMCONFIG_TARGET", target)
    llm = llmconfig.chat_model(model="claude-haiku-4.5")
    assert isinstance(llm, ChatAnthropic)
    assert llm.model == "claude-haiku-4-5-20251001"


def test_chat_model_works_in_a_fresh_interpreter(serve):
    # llmconfig loads its client lazily; chat_model() must not depend on anything loaded before.
    import subprocess
    import sys

    target = serve(args=[TRUST_LOOPBACK], env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).target
    code = (f"import llmconfig; llm = llmconfig.chat_model(target={target!r}); "
            "print(type(llm).__name__, llm.model)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["ChatAnthropic", "claude-sonnet-5-5"], done.stderr
