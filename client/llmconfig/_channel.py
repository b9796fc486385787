"""Channel settings shared by Client and AsyncClient.

UNAVAILABLE (server down, restarting, not started yet) is retried by gRPC itself, with
exponential backoff, through the service config's retry policy; nothing else is retried — every
other status is a real answer. Reconnection backoff is shortened so a server that starts a
moment after its clients is picked up quickly.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
from dataclasses import dataclass, field
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
INSECURE_ENV: Final = "STIGMER_LLMCONFIG_INSECURE"
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
        if key == PUSHBACK_KEY and isinstance(value, str) and value.isascii() \
                and value.isdigit():
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

    token: str | None = field(default=None, repr=False)
    ca: bytes | None = field(default=None, repr=False)
    cert: bytes | None = field(default=None, repr=False)
    key: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # what is set, never a token or a key
        given = [name for name in ("token", "ca", "cert", "key") if getattr(self, name)]
        return f"Security({', '.join(f'{name}=<set>' for name in given)})"

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


def check_cleartext(target: str, security: Security, insecure: bool | None) -> None:
    """Refuse (ValueError) to send a token in clear to another machine: without a CA file the
    channel is plaintext, and anyone on the path could read the token and use it. Loopback
    and Unix-socket targets stay on this machine. `insecure` (else STIGMER_LLMCONFIG_INSECURE)
    says the network in between is trusted."""
    if security.token is None or security.ca is not None or is_local_target(target):
        return
    if insecure is None:
        insecure = os.environ.get(INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")
    if not insecure:
        raise ValueError(
            f"refusing to send the llmconfig token in cleartext to {target}, which is not on "
            f"this machine: set ca_file (env {CA_FILE_ENV}; CLI --ca-file) to use TLS, or, if "
            f"the network in between is trusted, insecure=True (env {INSECURE_ENV}=1; CLI "
            "--insecure)")


def is_local_target(target: str) -> bool:
    """Whether a gRPC target stays on this machine: a Unix socket, or loopback addresses only
    (127.0.0.0/8, ::1, IPv4-mapped loopback, localhost, the unspecified 0.0.0.0 and ::)."""
    text = target.strip()
    if text.startswith(("unix:", "unix-abstract:")):
        return True
    if "://" in text:  # dns:///host:port, dns://resolver/host:port
        scheme, _, rest = text.partition("://")
        if scheme != "dns":
            return False
        text = rest.partition("/")[2]
    elif text.startswith(("ipv4:", "ipv6:")):
        return all(_is_local_host(_host_of(part)) for part in text[5:].split(",") if part)
    elif text.startswith("dns:"):
        text = text[4:]
    return _is_local_host(_host_of(text))


TLS_REQUIRED: Final = "TLS_REQUIRED"  # the reason of a ServiceUnavailable for a TLS server


def tls_required_message(target: str) -> str:
    return (f"the service at {target} uses TLS and this client connected without it: pass "
            f"--ca-file (env {CA_FILE_ENV}; ca_file= in Python) naming the CA that signed "
            f"its certificate")


def speaks_tls(target: str, timeout: float = 1.0) -> bool:
    """Whether a TCP target answers a TLS handshake: a plaintext gRPC call to a TLS server only
    sees the socket closed, which reads like no server at all. Certificates are not checked
    (this only chooses the advice); an alert from the server counts (mTLS, ALPN)."""
    text = target.strip()
    if text.startswith(("unix:", "unix-abstract:", "ipv4:", "ipv6:")) or "://" in text:
        return False
    hostport = text.removeprefix("dns:")
    host, port = _host_of(hostport), hostport.rpartition(":")[2]
    if not port.isdigit() or host == hostport:
        return False
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host or None):
            return True
    except ssl.SSLError as exc:
        return "ALERT" in str(exc.reason or "").upper()
    except (OSError, ValueError):
        return False


def _host_of(hostport: str) -> str:
    if hostport.startswith("["):
        return hostport[1:].partition("]")[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or ":" in host or not port.isdigit():
        return hostport  # no port, or a bare IPv6 address
    return host


def _is_local_host(host: str) -> bool:
    name = host.rstrip(".").lower()
    if name in ("localhost", "ip6-localhost", "ip6-loopback") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        if not name or name.strip("0123456789.") or name.count(".") > 3:
            return False
        try:  # 127.1 and 2130706433 are 127.0.0.1 to the resolver gRPC uses
            address = ipaddress.ip_address(socket.inet_aton(name))
        except OSError:
            return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or address.is_unspecified
                or (mapped is not None and mapped.is_loopback))


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
