"""llmconfig: the client of Stigmer's LLM configuration service.

    import llmconfig

    with llmconfig.Client() as client:          # STIGMER_LLMCONFIG_TARGET or 127.0.0.1:50061
        resolved = client.resolve(model="claude-sonnet-4.5")
        resolved.config.model                   # 'claude-sonnet-4-5-20250929'
        resolved.origin("model").detail         # 'request overrides.model'
"""

from ._client import DEFAULT_TARGET, TARGET_ENV, Client
from ._errors import (
    ConfigInvalid,
    LLMConfigError,
    PermissionDenied,
    PreconditionFailed,
    ServiceUnavailable,
    Unimplemented,
    Violation,
)
from ._models import Health, HealthStatus, LLMConfig, Origin, Resolved, Source

__all__ = [
    "DEFAULT_TARGET",
    "TARGET_ENV",
    "Client",
    "ConfigInvalid",
    "Health",
    "HealthStatus",
    "LLMConfig",
    "LLMConfigError",
    "Origin",
    "PermissionDenied",
    "PreconditionFailed",
    "Resolved",
    "ServiceUnavailable",
    "Source",
    "Unimplemented",
    "Violation",
]

__version__ = "0.1.0"
