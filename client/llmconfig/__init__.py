"""llmconfig: the client of Stigmer's LLM configuration service.

A runner gets a ready chat model in two lines:

    import llmconfig
    llm = llmconfig.chat_model()                # or chat_model(model="claude-sonnet-4.5")

The client, for everything else:

    with llmconfig.Client() as client:          # STIGMER_LLMCONFIG_TARGET or 127.0.0.1:50061
        resolved = client.resolve(model="claude-sonnet-4.5")
        resolved.config.model                   # 'claude-sonnet-4-5-20250929'
        resolved.origin("model").detail         # 'request overrides.model'
        client.check_health().status            # HealthStatus.HEALTHY, …
"""

from typing import Any

from ._channel import DEFAULT_TARGET, DEFAULT_TIMEOUT, TARGET_ENV
from ._client import AsyncClient, Client
from ._errors import (
    ConfigInvalid,
    LLMConfigError,
    PermissionDenied,
    PreconditionFailed,
    ServiceUnavailable,
    Unimplemented,
    Violation,
)
from ._langchain import MissingSecret
from ._models import Health, HealthStatus, LLMConfig, Origin, Resolved, Source


def chat_model(mode: str | None = None, *, target: str | None = None,
               openai_compatible: bool = False, **overrides: Any) -> Any:
    """Resolve (with the key) and build the LangChain chat model in one call.

    `overrides` are the run's execution config: provider, model, base_url, api_key,
    max_tokens, temperature. Needs `pip install 'llmconfig[langchain]'`.
    """
    with Client(target) as client:
        config = client.resolve(mode, include_secrets=True, **overrides).config
    return config.chat_model(openai_compatible=openai_compatible)


__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "TARGET_ENV",
    "AsyncClient",
    "Client",
    "ConfigInvalid",
    "Health",
    "HealthStatus",
    "LLMConfig",
    "LLMConfigError",
    "MissingSecret",
    "Origin",
    "PermissionDenied",
    "PreconditionFailed",
    "Resolved",
    "ServiceUnavailable",
    "Source",
    "Unimplemented",
    "Violation",
    "chat_model",
]

__version__ = "0.1.0"
