"""Channel settings shared by Client and AsyncClient.

UNAVAILABLE (server down, restarting, not started yet) is retried by gRPC itself, with
exponential backoff, through the service config's retry policy; nothing else is retried — every
other status is a real answer. Reconnection backoff is shortened so a server that starts a
moment after its clients is picked up quickly.
"""

from __future__ import annotations

import json
import os
from typing import Final

DEFAULT_TARGET: Final = "127.0.0.1:50061"
TARGET_ENV: Final = "STIGMER_LLMCONFIG_TARGET"
DEFAULT_TIMEOUT: Final = 5.0  # seconds; a health probe's own budget is 2 s by default
SERVICE: Final = "llmconfig.v1.LLMConfigService"

RETRY_POLICY: Final = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

CHANNEL_OPTIONS: Final = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(
        {"methodConfig": [{"name": [{"service": SERVICE}], "retryPolicy": RETRY_POLICY}]}
    )),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def target_or_default(target: str | None) -> str:
    """The argument, else STIGMER_LLMCONFIG_TARGET, else 127.0.0.1:50061."""
    return target or os.environ.get(TARGET_ENV, "").strip() or DEFAULT_TARGET
