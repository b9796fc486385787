"""Keyword arguments for the provider's LangChain chat model, without importing LangChain, and
the model itself behind the `llmconfig[langchain]` extra."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import LLMConfig

# Ollama ignores the key on its OpenAI-compatible endpoint, but the OpenAI client insists on one.
OLLAMA_PLACEHOLDER_KEY = "ollama"
# The same for an OpenAI-compatible server declared without a key (LM Studio, a local vLLM).
NO_KEY_PLACEHOLDER = "not-needed"

_CLASSES = {
    "anthropic": ("langchain_anthropic", "ChatAnthropic"),
    "ollama": ("langchain_ollama", "ChatOllama"),
    "openai": ("langchain_openai", "ChatOpenAI"),
}

# llmconfig is not on PyPI: the extra comes from a checkout or from git (docs/client.md).
LANGCHAIN_MISSING = (
    "{module} is not installed: install llmconfig with its langchain extra, "
    "pip install '/path/to/llmconfig[langchain]' from a checkout, or "
    "pip install 'llmconfig[langchain] @ git+https://github.com/stigmer/llmconfig.git' "
    "(docs/client.md)")


class MissingSecret(ValueError):
    """The config was resolved without include_secrets=True, and the model needs the key."""


def chat_model_class(config: LLMConfig, openai_compatible: bool = False) -> tuple[str, str]:
    """(module, class) of the chat model for this config."""
    if openai_compatible:
        if not config.openai_base_url:
            raise ValueError(f"{config.provider} has no OpenAI-compatible endpoint")
        return _CLASSES["openai"]
    if (known := _CLASSES.get(config.provider)) is not None:
        return known
    if config.openai_base_url:
        # A provider the server's catalog declares as data (vLLM, LM Studio, OpenRouter, …):
        # it speaks OpenAI's API at its base URL, so ChatOpenAI talks to it.
        return _CLASSES["openai"]
    raise ValueError(f"no LangChain chat model is known for provider {config.provider!r}, and "
                     "the server gave no OpenAI-compatible base URL for it; upgrade llmconfig")


def chat_model_kwargs(config: LLMConfig, openai_compatible: bool = False) -> dict[str, Any]:
    module, _ = chat_model_class(config, openai_compatible)
    kwargs: dict[str, Any] = {"model": config.model}
    if module == "langchain_ollama":
        kwargs["base_url"] = config.base_url  # explicit: never its OLLAMA_HOST fallback
        if config.max_tokens is not None:
            kwargs["num_predict"] = config.max_tokens
    else:
        kwargs["base_url"] = config.openai_base_url if module == "langchain_openai" \
            else config.base_url
        kwargs["api_key"] = _key(config, openai_compatible)
        if config.max_tokens is not None:
            kwargs["max_tokens"] = config.max_tokens
    if config.temperature is not None:
        kwargs["temperature"] = config.temperature
    return kwargs


def chat_model(config: LLMConfig, openai_compatible: bool = False) -> Any:
    module_name, class_name = chat_model_class(config, openai_compatible)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ImportError(LANGCHAIN_MISSING.format(module=module_name)) from None
    return getattr(module, class_name)(**chat_model_kwargs(config, openai_compatible))


def _key(config: LLMConfig, openai_compatible: bool) -> str:
    if config.provider == "ollama" and openai_compatible:
        return config.api_key or OLLAMA_PLACEHOLDER_KEY
    if config.provider not in _CLASSES and not config.api_key_present:
        return NO_KEY_PLACEHOLDER  # the server resolved it without a key: it needs none
    if not config.api_key:
        raise MissingSecret(
            f"the {config.provider} chat model needs the API key; resolve with "
            "include_secrets=True" if config.api_key_present else
            f"no API key was resolved for {config.provider}"
        )
    return config.api_key
