"""Who may call what: bearer tokens and scopes, as a server interceptor around the handlers;
the exposure policy (tokens and TLS wherever the server is reachable beyond this machine); TLS
server credentials; and the audit line for every answer that carries a secret.

Scopes: `resolve` (ResolveLLMConfig, ResolveRunnerConfig, WatchLLMConfig), `health`
(CheckProviderHealth), `secrets` (`include_secrets`, checked by the handler that sees the
request). grpc.health.v1 and reflection stay open: orchestrators probe them without tokens.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from . import files
from . import tokens as tokens_file
from .errors import ERROR_DOMAIN
from .listeners import Listener
from .tokens import SCOPES, TokenTable
from .wrapping import Method, Start

log = logging.getLogger("llmconfig_server.audit")

SERVICE: Final = "llmconfig.v1.LLMConfigService"
SCOPE_FOR_RPC: Final = {
    "ResolveLLMConfig": "resolve",
    "ResolveRunnerConfig": "resolve",
    "WatchLLMConfig": "resolve",
    "CheckProviderHealth": "health",
}
SECRETS_SCOPE: Final = "secrets"
TLS_FILE_LIMIT: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a token's name and scopes, or `trusted` when the server has no tokens."""

    name: str
    scopes: frozenset[str]


TRUSTED: Final = Caller("trusted", frozenset(SCOPES))
_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("llmconfig_caller",
                                                                 default=TRUSTED)


def current_caller() -> Caller:
    """The caller of the RPC being handled (set by AccessInterceptor)."""
    return _caller.get()


class Denied(Exception):
    """The caller may not have this (UNAUTHENTICATED or PERMISSION_DENIED), said as a status."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


def denial(code: grpc.StatusCode, message: str, reason: str, **metadata: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    number = code_pb2.UNAUTHENTICATED if code is grpc.StatusCode.UNAUTHENTICATED \
        else code_pb2.PERMISSION_DENIED
    return rpc_status.to_status(status_pb2.Status(code=number, message=message,
                                                  details=[packed]))


def require_secrets(what: str = "include_secrets") -> Caller:
    """The caller, if it may receive secrets; else raise Denied naming the scope."""
    caller = current_caller()
    if SECRETS_SCOPE not in caller.scopes:
        raise Denied(_missing_scope(caller, SECRETS_SCOPE, what))
    return caller


def audit_secret(caller: Caller, peer: str, rpc: str, provider: str, key_hint: str) -> None:
    """One line per answer that carries a secret; the hint at most, never the key."""
    log.info("secret served: token=%s peer=%s rpc=%s provider=%s key=%s", caller.name, peer,
             rpc, provider, key_hint or "(none)",
             extra={"token": caller.name, "peer": peer, "rpc": rpc, "provider": provider,
                    "key_hint": key_hint})


def _missing_scope(caller: Caller, scope: str, what: str) -> grpc.Status:
    held = ", ".join(sorted(caller.scopes)) or "none"
    return denial(grpc.StatusCode.PERMISSION_DENIED,
                  f"token {caller.name!r} lacks the {scope!r} scope needed for {what} (it has: "
                  f"{held}); ask the operator to add {scope!r} to its scopes in the tokens file",
                  "SCOPE_MISSING", scope=scope, token=caller.name)


class AccessGuard:
    """Authenticates every call to the LLMConfigService and checks the RPC's scope; other
    services (health, reflection) pass untouched. Without a token table every caller is
    `trusted` (the exposure policy allows that only on loopback and Unix sockets). A layer of
    wrapping.py: asked once per method when the service is registered, it checks per call."""

    def __init__(self, tokens: Callable[[], TokenTable | None]) -> None:
        self.tokens = tokens  # read per call: a reload may bring new tokens

    def __call__(self, method: Method) -> Start | None:
        """A wrapping.Layer: the check at the start of each call of the service's methods."""
        if method.service != SERVICE:
            return None
        rpc = method.name

        def admit(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.Status | None:
            """None when the caller may go on (now the current caller), else why not. The
            service's handlers read bytes, so a refused caller's request is never parsed."""
            try:
                caller = self._authorize(rpc, context.invocation_metadata())
            except Denied as exc:
                return exc.status
            if caller is not TRUSTED:
                _caller.set(caller)  # each RPC runs in a task of its own: no reset needed
            return None

        return admit

    def _authorize(self, rpc: str, metadata: Sequence[tuple[str, Any]] | None) -> Caller:
        tokens = self.tokens()
        if tokens is None:
            return TRUSTED
        presented = _bearer(metadata)
        if presented is None:
            raise Denied(denial(
                grpc.StatusCode.UNAUTHENTICATED,
                "this server requires a token: send `authorization: Bearer <token>` (the "
                "llmconfig client reads STIGMER_LLMCONFIG_TOKEN or STIGMER_LLMCONFIG_TOKEN_FILE)",
                "TOKEN_MISSING"))
        token = tokens.authenticate(presented)
        if token is None:
            raise Denied(denial(
                grpc.StatusCode.UNAUTHENTICATED,
                "the token is not known to this server; ask the operator for a token from "
                "`llmconfig-server token new` and its entry in the tokens file",
                "TOKEN_UNKNOWN"))
        caller = Caller(token.name, token.scopes)
        # An RPC without a scope (one added without updating the table) is closed, not open.
        scope = SCOPE_FOR_RPC.get(rpc)
        if scope is None or scope not in caller.scopes:
            raise Denied(_missing_scope(caller, scope or "(none defined)", rpc))
        return caller


def _bearer(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


# -- exposure policy and TLS ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: str
    key: str
    client_ca: str | None = None


def exposure_problems(listeners: Sequence[Listener], has_tokens: bool,
                      tls: TlsFiles | None) -> list[str]:
    """Why serving as configured would hand keys to anyone who can reach a port (empty: fine).
    Loopback TCP and Unix sockets are this machine's own; anything else needs tokens and TLS."""
    exposed = [item.spec for item in listeners if not item.is_loopback]
    if not exposed:
        return []
    where = ", ".join(exposed)
    if not has_tokens:
        return [f"--listen {where} is reachable from other machines and there is no "
                "--tokens-file, so anyone who can reach it could read the API keys; pass "
                "--tokens-file FILE (make entries with `llmconfig-server token new`) together "
                "with --tls-cert/--tls-key, listen on 127.0.0.1 or unix:PATH, or pass "
                "--insecure to serve anyway"]
    if tls is None:
        return [f"--listen {where} is reachable from other machines without TLS, so tokens and "
                "keys would cross the network in clear; pass --tls-cert FILE --tls-key FILE, "
                "or --insecure to serve anyway"]
    return []


class TlsError(Exception):
    """A TLS file cannot be used."""


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The PEM bytes of the TLS files, read at build time (and again on every reload)."""

    cert: bytes
    key: bytes
    client_ca: bytes | None = None


def read_tls(tls: TlsFiles) -> TlsMaterial:
    return TlsMaterial(
        cert=_pem(tls.cert, "--tls-cert", b"CERTIFICATE"),
        key=_pem(tls.key, "--tls-key", b"PRIVATE KEY"),
        client_ca=_pem(tls.client_ca, "--tls-client-ca", b"CERTIFICATE") if tls.client_ca
        else None,
    )


def certificate_configuration(material: TlsMaterial) -> Any:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.client_ca)


def reloading_credentials(current: Callable[[], TlsMaterial | None],
                          require_client_auth: bool) -> grpc.ServerCredentials:
    """TLS credentials that pick up new certificate files: gRPC asks `current()` before each
    new handshake, and gets a new configuration only when the material changed."""
    first = current()
    assert first is not None
    served = [first]

    def fetch() -> Any:
        material = current()
        if material is None or material is served[0]:
            return None  # unchanged: keep the configuration gRPC has
        served[0] = material
        return certificate_configuration(material)

    return grpc.dynamic_ssl_server_credentials(certificate_configuration(first), fetch,
                                               require_client_authentication=require_client_auth)


def _pem(path: str, flag: str, kind: bytes) -> bytes:
    try:
        data = files.read_bytes(Path(path), limit=TLS_FILE_LIMIT)
    except files.FileProblem as exc:
        raise TlsError(f"{flag}: {exc}") from None
    if b"-----BEGIN " not in data or kind not in data:
        raise TlsError(f"{flag}: {path} holds no PEM {kind.decode().lower()}")
    return data


@dataclass(frozen=True, slots=True)
class AccessOptions:
    """Who may call: the tokens file (none: every caller trusted), TLS, and the operator's
    explicit permission to serve beyond loopback without them."""

    tokens_file: str | None = None
    tls: TlsFiles | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call (None: everyone is trusted) and the TLS material of TCP listeners."""

    tokens: TokenTable | None = None
    tls: TlsMaterial | None = None
    description: str = "no tokens: every caller is trusted; TCP transport security: none"
    # What --insecure let through, logged once at start (not on every reload).
    warnings: tuple[str, ...] = ()


class AccessProblem(Exception):
    """Tokens, TLS or the exposure policy forbid starting (one line for the operator)."""


def load(options: AccessOptions, listeners: Sequence[Listener]) -> Access:
    """Read the tokens and TLS files and apply the exposure policy; raise AccessProblem."""
    table = None
    if options.tokens_file:
        try:
            table = tokens_file.load(options.tokens_file)
        except tokens_file.TokensFileError as exc:
            raise AccessProblem(str(exc)) from None
    material = None
    if options.tls:
        try:
            material = read_tls(options.tls)
        except TlsError as exc:
            raise AccessProblem(str(exc)) from None
    problems = exposure_problems(listeners, table is not None, options.tls)
    if problems and not options.insecure:
        raise AccessProblem("; ".join(problems))
    who = (f"tokens from {table.source} ({len(table.tokens)} entries)" if table
           else "no tokens: every caller is trusted")
    tls = "none"
    if options.tls:
        tls = "mTLS (client certificates required)" if options.tls.client_ca else "TLS"
    return Access(table, material, f"{who}; TCP transport security: {tls}",
                  tuple(f"--insecure: serving anyway although {p.split('; pass')[0]}"
                        for p in problems))
