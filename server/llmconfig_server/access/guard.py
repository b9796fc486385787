"""Who may call what: bearer tokens and scopes, as a server interceptor around the handlers;
the exposure policy (tokens and TLS wherever the server is reachable beyond this machine); TLS
server credentials; and the audit line for every answer that carries a secret.

Scopes: `resolve` (ResolveLLMConfig, ResolveRunnerConfig, WatchLLMConfig), `health`
(CheckProviderHealth), `secrets` (`include_secrets`, checked by the handler that sees the
request). grpc.health.v1 and reflection stay open: orchestrators probe them without tokens.

With a tokens file the server is in token mode whatever the file holds: an empty, missing or
unloadable file refuses every token (fail closed) until it is fixed. Without one, callers are
`trusted`, but keys go only to callers on a Unix socket (its file mode chose them), or on
loopback TCP when the operator says every local user may have them (`--trust-loopback`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import ipaddress
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from llmconfig_server.access import tokens as tokens_file
from llmconfig_server.access.listeners import Listener
from llmconfig_server.access.tokens import SCOPES, TokenTable
from llmconfig_server.resolve.network import is_loopback
from llmconfig_server.rpc.errors import ERROR_DOMAIN
from llmconfig_server.rpc.wrapping import Method, Start
from llmconfig_server.support import files

log = logging.getLogger("llmconfig_server.audit")

SERVICE: Final = "llmconfig.v1.LLMConfigService"
SCOPE_FOR_RPC: Final = {
    "ResolveLLMConfig": "resolve",
    "ResolveRunnerConfig": "resolve",
    "WatchLLMConfig": "resolve",
    "CheckProviderHealth": "health",
    "ListModels": "resolve",
}
SECRETS_SCOPE: Final = "secrets"
TLS_FILE_LIMIT: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a token's name and scopes, or `trusted` when the server has no tokens."""

    name: str
    scopes: frozenset[str]
    # Authorizes the same credentials again against the token table of the moment (raises
    # Denied): a stream does it at every event, so a revoked token stops receiving at once.
    again: Callable[[], Caller] | None = field(default=None, compare=False, repr=False)


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


def require_secrets(what: str = "include_secrets", caller: Caller | None = None) -> Caller:
    """The caller (default: the current one), if it may ask for secrets; else raise Denied
    naming the scope."""
    caller = current_caller() if caller is None else caller
    if SECRETS_SCOPE not in caller.scopes:
        raise Denied(_missing_scope(caller, SECRETS_SCOPE, what))
    return caller


def check_transport(caller: Caller, peer: str, trust_loopback: bool,
                    what: str = "include_secrets") -> None:
    """Raise Denied unless an answer that carries a secret may go to `caller` over `peer`:
    a token's holder anywhere (the exposure policy put TLS beyond loopback); a caller without
    a token only on a Unix socket, or on loopback TCP with --trust-loopback. Checked when an
    answer does carry a secret, so a tokenless caller asking include_secrets of a provider
    without a key (Ollama) is answered."""
    if caller is TRUSTED and not peer.startswith("unix:"):
        loopback = peer_is_loopback(peer)
        if not (loopback and trust_loopback):
            raise Denied(_untrusted_transport(loopback, what))


def authorize_again(caller: Caller) -> Caller:
    """`caller` as the token table of this moment sees its credentials (raises Denied)."""
    return caller if caller.again is None else caller.again()


def peer_is_loopback(peer: str) -> bool:
    """Whether gRPC's peer string (`ipv4:127.0.0.1:5555`, `ipv6:[::1]:5555`, percent-encoded
    in some versions) is a loopback address, IPv4-mapped IPv6 included."""
    kind, _, rest = unquote(peer).partition(":")
    if kind not in ("ipv4", "ipv6"):
        return False
    host = rest.rpartition(":")[0]
    try:  # gRPC names a peer by its address, never by a name: anything else is not loopback
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return is_loopback(host, listen=True)  # a peer is never unspecified


def _untrusted_transport(loopback: bool, what: str) -> grpc.Status:
    if loopback:
        return denial(
            grpc.StatusCode.PERMISSION_DENIED,
            f"{what}: keys are not served over TCP to a caller without a token, even on "
            "loopback (every user of this machine can connect to it); use one of: the "
            "server's Unix socket (--listen unix:PATH; its file mode decides who may "
            "connect), a token with the 'secrets' scope (--tokens-file), or start the server "
            "with --trust-loopback if every local user may read the keys",
            "LOOPBACK_NOT_TRUSTED", flag="--trust-loopback")
    return denial(
        grpc.StatusCode.PERMISSION_DENIED,
        f"{what}: keys are not served over the network to a caller without a token; give the "
        "caller a token with the 'secrets' scope (--tokens-file, with --tls-cert/--tls-key)",
        "TOKEN_REQUIRED_FOR_SECRETS", flag="--tokens-file")


def audit_secret(caller: Caller, peer: str, rpc: str, provider: str, key_hint: str,
                 uid: str | None = None) -> None:
    """One line per answer that carries a secret; the hint at most, never the key. `uid`:
    who is connected to a Unix socket (see unix_peers)."""
    shown = f"{peer} {uid}" if uid else peer
    log.info("secret served: token=%s peer=%s rpc=%s provider=%s key=%s", caller.name, shown,
             rpc, provider, key_hint or "(none)",
             extra={"token": caller.name, "peer": peer, "rpc": rpc, "provider": provider,
                    "key_hint": key_hint, **({"uid": uid} if uid else {})})


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
        if tokens.problem is not None:  # fail closed: no token is good until it is fixed
            raise Denied(denial(
                grpc.StatusCode.UNAUTHENTICATED,
                "this server accepts no token at the moment: its tokens file "
                + ("lists none" if not tokens.broken else "cannot be used")
                + " (the server's log says why); ask the operator to fix the tokens file",
                "TOKENS_FILE_UNUSABLE"))
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
        caller = Caller(token.name, token.scopes,
                        functools.partial(self._authorize, rpc, metadata))
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
    """The TLS files' content, checked to load as gRPC will use it (raises TlsError): gRPC
    itself only finds out at the next handshake, and would then keep the old certificate (or,
    at startup, fail to bind) without saying why."""
    material = TlsMaterial(
        cert=_pem(tls.cert, "--tls-cert", b"CERTIFICATE"),
        key=_pem(tls.key, "--tls-key", b"PRIVATE KEY"),
        client_ca=_pem(tls.client_ca, "--tls-client-ca", b"CERTIFICATE") if tls.client_ca
        else None,
    )
    _check_loads(material, tls)
    return material


def _check_loads(material: TlsMaterial, tls: TlsFiles) -> None:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for data, flag, path in ((material.cert, "--tls-cert", tls.cert),
                             (material.client_ca, "--tls-client-ca", tls.client_ca)):
        if data is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
                    cadata=data.decode("ascii", "replace"))
            except (ssl.SSLError, ValueError):
                raise TlsError(f"{flag}: {path} holds no readable PEM certificate") from None
    if b"ENCRYPTED" in material.key:
        raise TlsError(f"--tls-key: {tls.key} is encrypted; gRPC needs an unencrypted PEM key")
    with _as_path(material.cert) as cert, _as_path(material.key) as key:
        try:
            context.load_cert_chain(cert, key, password=lambda: b"")
        except (ssl.SSLError, OSError, ValueError) as exc:
            if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
                raise TlsError(f"--tls-key: {tls.key} is not the key of the certificate in "
                               f"{tls.cert} (KEY_VALUES_MISMATCH)") from None
            raise TlsError(f"--tls-key: {tls.key} holds no readable PEM private key") from None


@contextlib.contextmanager
def _as_path(data: bytes) -> Iterator[str]:
    """`data` as a file path the ssl module can read, without writing a key to disk where
    an anonymous memory file exists (Linux; a read-only root filesystem is no obstacle)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("llmconfig-tls", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as handle:
                handle.write(data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="llmconfig-tls-") as handle:  # mode 0600
        handle.write(data)
        handle.flush()
        yield handle.name


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
    # Without tokens, also hand keys to loopback TCP callers (any user of this machine).
    trust_loopback: bool = False


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call (None: everyone is trusted) and the TLS material of TCP listeners."""

    tokens: TokenTable | None = None
    tls: TlsMaterial | None = None
    description: str = "no tokens: every caller is trusted; TCP transport security: none"
    # What --insecure let through, logged once at start (not on every reload).
    warnings: tuple[str, ...] = ()


class AccessProblem(Exception):
    """TLS or the exposure policy forbid serving (one line for the operator). `tokens` is the
    token table read all the same, which applies even when the rest of an update is broken."""

    def __init__(self, message: str, tokens: TokenTable | None) -> None:
        super().__init__(message)
        self.tokens = tokens


def load(options: AccessOptions, listeners: Sequence[Listener]) -> Access:
    """Read the tokens and TLS files and apply the exposure policy; raise AccessProblem.
    A tokens file that cannot be used is no problem here: it makes a table that refuses
    every token (the caller decides whether that may start a server)."""
    table = None
    if options.tokens_file:
        try:
            table = tokens_file.load(options.tokens_file)
        except tokens_file.TokensFileError as exc:
            table = tokens_file.closed(options.tokens_file,
                                       f"{exc}; every token is refused until it is fixed")
    material = None
    if options.tls:
        try:
            material = read_tls(options.tls)
        except TlsError as exc:
            raise AccessProblem(str(exc), table) from None
    problems = exposure_problems(listeners, options.tokens_file is not None, options.tls)
    if problems and not options.insecure:
        raise AccessProblem("; ".join(problems), table)
    if table is not None:
        who = f"tokens from {table.source} ({len(table.tokens)} entries)"
    elif options.trust_loopback:
        who = "no tokens: every caller is trusted, keys also over loopback TCP (--trust-loopback)"
    else:
        who = "no tokens: every caller is trusted, keys only over Unix sockets"
    tls = "none"
    if options.tls:
        tls = "mTLS (client certificates required)" if options.tls.client_ca else "TLS"
    return Access(table, material, f"{who}; TCP transport security: {tls}",
                  tuple(f"--insecure: serving anyway although {p.split('; pass')[0]}"
                        for p in problems))
