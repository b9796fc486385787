"""llmconfig: the client of Stigmer's LLM configuration service.

A runner gets a ready chat model in two lines:

    import llmconfig
    llm = llmconfig.chat_model()                # or chat_model(model="claude-sonnet-5.5")

The client, for everything else:

    with llmconfig.Client() as client:          # STIGMER_LLMCONFIG_TARGET or 127.0.0.1:50061
        resolved = client.resolve(model="claude-sonnet-5.5")
        resolved.config.model                   # 'claude-sonnet-5-5'
        resolved.origin("model").detail         # 'request overrides.model'
        client.check_health().status            # HealthStatus.HEALTHY, …

`Client(watch=True)` (or STIGMER_LLMCONFIG_WATCH=1) answers a repeated resolve() from memory,
kept current by one WatchLLMConfig stream per request.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Unpack

from ._channel import DEFAULT_TARGET, DEFAULT_TIMEOUT, TARGET_ENV

if TYPE_CHECKING:
    from ._client import AsyncClient, Client, Overrides
    from ._errors import (
        ConfigInvalid,
        LLMConfigError,
        PermissionDenied,
        PreconditionFailed,
        ServiceUnavailable,
        Unauthenticated,
        Unimplemented,
        Violation,
    )
    from ._langchain import MissingSecret
    from ._models import (
        Change,
        Health,
        HealthStatus,
        LLMConfig,
        ModelInfo,
        ModelStatus,
        Origin,
        Resolved,
        RunnerConfig,
        RunnerResolved,
        Source,
    )

# Loaded on first use, so importing the generated stubs (`llmconfig.v1`, as the server does)
# does not load the whole client.
_LAZY = {
    "AsyncClient": "._client", "Client": "._client",
    "ConfigInvalid": "._errors", "LLMConfigError": "._errors", "PermissionDenied": "._errors",
    "PreconditionFailed": "._errors", "ServiceUnavailable": "._errors",
    "Unauthenticated": "._errors", "Unimplemented": "._errors", "Violation": "._errors",
    "MissingSecret": "._langchain",
    "Change": "._models", "Health": "._models", "HealthStatus": "._models", "LLMConfig": "._models",
    "ModelInfo": "._models", "ModelStatus": "._models",
    "Origin": "._models", "Resolved": "._models", "Source": "._models",
    "RunnerConfig": "._models", "RunnerResolved": "._models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def chat_model(mode: str | None = None, *, target: str | None = None,
               token: str | None = None, ca_file: str | None = None,
               insecure: bool | None = None, openai_compatible: bool = False,
               watch: bool | None = None, **overrides: Unpack[Overrides]) -> Any:
    """Resolve (with the key) and build the LangChain chat model in one call.

    `overrides` are the run's execution config: provider, model, base_url, api_key,
    max_tokens, temperature. `target`, `token`, `ca_file` and `insecure` default to the
    environment (STIGMER_LLMCONFIG_TARGET, _TOKEN or _TOKEN_FILE, _CA_FILE, _INSECURE), so a
    runner usually passes none of them. `watch=True` (else STIGMER_LLMCONFIG_WATCH=1) answers
    from one watched client per process, kept current by its stream, instead of a call each
    time. Needs `pip install 'llmconfig[langchain]'`.
    """
    from ._client import Client, shared_client
    from ._watched import watch_from_env

    if watch_from_env(watch):
        client = shared_client(target, token, ca_file, insecure)
        config = client.resolve(mode, include_secrets=True, **overrides).config
    else:
        with Client(target, token=token, ca_file=ca_file, insecure=insecure,
                    watch=False) as client:
            config = client.resolve(mode, include_secrets=True, **overrides).config
    return config.chat_model(openai_compatible=openai_compatible)


__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "TARGET_ENV",
    "AsyncClient",
    "Change",
    "Client",
    "ConfigInvalid",
    "Health",
    "HealthStatus",
    "LLMConfig",
    "LLMConfigError",
    "MissingSecret",
    "ModelInfo",
    "ModelStatus",
    "Origin",
    "PermissionDenied",
    "PreconditionFailed",
    "Resolved",
    "RunnerConfig",
    "RunnerResolved",
    "ServiceUnavailable",
    "Source",
    "Unauthenticated",
    "Unimplemented",
    "Violation",
    "chat_model",
]

__version__ = "0.1.0"
