"""Channel settings shared by Client and AsyncClient.

UNAVAILABLE (server down, restarting, not started yet) is retried by gRPC itself, with
exponential backoff, through the service config's retry policy; nothing else is retried — every
other status is a real answer. Reconnection backoff is shortened so a server that starts a
moment after its clients is picked up quickly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc

DEFAULT_TARGET: Final = "127.0.0.1:50061"
TARGET_ENV: Final = "STIGMER_LLMCONFIG_TARGET"
TOKEN_ENV: Final = "STIGMER_LLMCONFIG_TOKEN"
TOKEN_FILE_ENV: Final = "STIGMER_LLMCONFIG_TOKEN_FILE"
CA_FILE_ENV: Final = "STIGMER_LLMCONFIG_CA_FILE"
NETWORK_ENV: Final = "STIGMER_LLMCONFIG_NETWORK"
CERT_FILE_ENV: Final = "STIGMER_LLMCONFIG_CERT_FILE"
KEY_FILE_ENV: Final = "STIGMER_LLMCONFIG_KEY_FILE"
_FILE_LIMIT: Final = 1024 * 1024
DEFAULT_TIMEOUT: Final = 5.0  # seconds; a health probe's own budget is 2 s by default
SERVICE: Final = "llmconfig.v1.LLMConfigService"

# UNAVAILABLE: the server is down or restarting; RESOURCE_EXHAUSTED: it is at a limit, and says
# when to come back (`grpc-retry-pushback-ms`, which gRPC's retries honour).
RETRY_POLICY: Final = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
}
# The statuses that answer the request itself: a watch raises them. Any other end of a watch
# stream (UNAVAILABLE, CANCELLED by a server or a proxy that went away, RESOURCE_EXHAUSTED,
# INTERNAL from a broken connection, …) is not the caller's doing: the watch resumes.
ANSWERS: Final = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ALREADY_EXISTS,
})
PUSHBACK_KEY: Final = "grpc-retry-pushback-ms"
MAX_PUSHBACK: Final = 30.0


def pushback(error: grpc.RpcError) -> float:
    """Seconds the server asked the caller to wait before trying again (0: none said)."""
    try:
        metadata = error.trailing_metadata() or ()
    except Exception:  # a call that never reached a server has no trailers
        return 0.0
    for key, value in metadata:
        if key == PUSHBACK_KEY and isinstance(value, str) and value.isdigit():
            return min(int(value) / 1000, MAX_PUSHBACK)
    return 0.0

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
    """The argument, else STIGMER_LLMCONFIG_TARGET, else 127.0.0.1:50061. `unix:PATH` targets
    a Unix socket."""
    return target or os.environ.get(TARGET_ENV, "").strip() or DEFAULT_TARGET


@dataclass(frozen=True, slots=True)
class Security:
    """How the client proves who it is: a bearer token (sent as `authorization` metadata on
    every call) and, for TLS, the CA that signed the server's certificate (plus a client
    certificate when the server requires mTLS)."""

    token: str | None = None
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if self.ca is None:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)


def security_from(token: str | None, token_file: str | None, ca_file: str | None,
                  cert_file: str | None, key_file: str | None) -> Security:
    """Arguments first, then STIGMER_LLMCONFIG_TOKEN / _TOKEN_FILE / _CA_FILE / _CERT_FILE /
    _KEY_FILE. A file that cannot be read is a ValueError naming it."""
    env = os.environ
    if token is None and token_file is None:
        token = env.get(TOKEN_ENV, "").strip() or None
        token_file = None if token else env.get(TOKEN_FILE_ENV, "").strip() or None
    if token is None and token_file:
        token = _read(token_file, "token file").decode("utf-8", "replace").strip()
    if token is not None:
        token = token.strip()
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise ValueError("the llmconfig token must be one line of printable ASCII (check "
                             f"{TOKEN_ENV} / {TOKEN_FILE_ENV})")
    ca_file = ca_file or env.get(CA_FILE_ENV, "").strip() or None
    cert_file = cert_file or env.get(CERT_FILE_ENV, "").strip() or None
    key_file = key_file or env.get(KEY_FILE_ENV, "").strip() or None
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs both cert_file and key_file "
                         f"({CERT_FILE_ENV} / {KEY_FILE_ENV})")
    if cert_file and not ca_file:
        raise ValueError(f"a client certificate is only used over TLS: set ca_file ({CA_FILE_ENV})")
    return Security(
        token=token,
        ca=_read(ca_file, "CA file") if ca_file else None,
        cert=_read(cert_file, "certificate file") if cert_file else None,
        key=_read(key_file, "key file") if key_file else None,
    )


def _read(path: str, what: str) -> bytes:
    try:
        with Path(path).expanduser().open("rb") as handle:
            data = handle.read(_FILE_LIMIT + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the llmconfig {what} {path}: "
                         f"{exc.strerror or type(exc).__name__}") from None
    if len(data) > _FILE_LIMIT:
        raise ValueError(f"the llmconfig {what} {path} is larger than 1 MiB")
    return data


def network_or_default(network: str | None) -> str:
    """The argument, else STIGMER_LLMCONFIG_NETWORK (a runner image sets `docker` once), else
    the server's own view."""
    return network if network is not None else os.environ.get(NETWORK_ENV, "").strip()
