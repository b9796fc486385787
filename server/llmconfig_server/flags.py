"""The server's command line. Cascade flags stay raw strings: the cascade parses them so that a bad
one is reported like any other bad input, naming the flag."""

from __future__ import annotations

import argparse
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from llmconfig_server import __version__
from llmconfig_server.access.guard import AccessOptions, TlsFiles
from llmconfig_server.access.listeners import UNIX_PREFIX, Listener, ListenSpecError, parse_listener
from llmconfig_server.health.checker import HealthOptions
from llmconfig_server.health.origin_limits import DEFAULT_RATE, MAX_RATE
from llmconfig_server.resolve.catalog import shipped
from llmconfig_server.rpc.streams import DEFAULT_MAX_WATCH_STREAMS
from llmconfig_server.sources.layers import FLAG_FOR_FIELD, ServerFlags

DEFAULT_LISTEN = "127.0.0.1:50061"
LISTEN_ENV = "STIGMER_LLMCONFIG_LISTEN"
PROBE_TIMEOUT_ENV = "STIGMER_LLMCONFIG_PROBE_TIMEOUT"
TOKENS_FILE_ENV = "STIGMER_LLMCONFIG_TOKENS_FILE"
TLS_CERT_ENV = "STIGMER_LLMCONFIG_TLS_CERT"
TLS_KEY_ENV = "STIGMER_LLMCONFIG_TLS_KEY"
TLS_CLIENT_CA_ENV = "STIGMER_LLMCONFIG_TLS_CLIENT_CA"
CATALOG_ENV = "STIGMER_LLMCONFIG_CATALOG"
DEFAULT_PROBE_TIMEOUT = 2.0
MAX_PROBE_TIMEOUT = 60.0
# Seconds as people write them: 5, 0.5, .25 — not 1_0, nan, inf or other scripts' digits.
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


class FlagError(Exception):
    """A server option (not an LLM setting) is unusable."""


@dataclass(frozen=True, slots=True)
class Options:
    listeners: tuple[Listener, ...]
    shutdown_grace: float
    log_level: str
    flags: ServerFlags
    health: HealthOptions
    access: AccessOptions = field(default_factory=AccessOptions)
    drain_seconds: float = 1.0
    metrics_listen: str | None = None
    log_format: str = "text"
    reload_interval: float = 10.0
    container_host: str = "host.docker.internal"
    max_watch_streams: int = DEFAULT_MAX_WATCH_STREAMS
    catalog: str | None = None  # the operator's catalog file (--catalog, STIGMER_LLMCONFIG_CATALOG)
    models_refresh_interval: float = 3600.0
    max_concurrent_streams: int = 100
    # --health-listen: a plaintext listener that serves grpc.health.v1 alone (kubelet probes)
    health_listen: Listener | None = None


class _Parser(argparse.ArgumentParser):
    """argparse, with no abbreviations (`--model x` was read as --models-refresh-interval) and
    an unknown flag answered with the close ones (`--model` → --llm-model)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(allow_abbrev=False, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            hints = [hint for word in message.split()[2:] if (hint := self.close_flags(word))]
            message += "".join(f"; {hint}" for hint in hints)
        super().error(message)

    def close_flags(self, word: str) -> str:
        """'did you mean …' for an unknown `--flag[=value]`, or ''."""
        flag = word.split("=", 1)[0]
        if not flag.startswith("--") or flag in self._option_string_actions:
            return ""
        known = [f for f in self._option_string_actions if f.startswith("--")]
        llm = [f"--llm-{flag[2:]}"] if f"--llm-{flag[2:]}" in known else []
        close = [f for f in difflib.get_close_matches(flag, known, n=2, cutoff=0.7)
                 if f not in llm]
        named = (llm + close)[:2] if llm else close[:1]
        return f"{flag}: did you mean {' or '.join(named)}?" if named else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llmconfig-server",
        description=(
            "Serve llmconfig.v1.LLMConfigService: the LLM configuration of Stigmer, resolved "
            "from request overrides > these flags > environment > config files > defaults."
        ),
        epilog="Secrets passed as flags are visible in the process list; prefer "
        "ANTHROPIC_API_KEY_FILE / STIGMER_LLM_API_KEY_FILE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    server = parser.add_argument_group("server")
    server.add_argument("--listen", metavar="ADDRESS", action="append",
                        help="HOST:PORT or unix:PATH to serve on; repeat for several (env "
                             f"{LISTEN_ENV}, comma-separated; default {DEFAULT_LISTEN}; port 0 "
                             "picks a free port)")
    server.add_argument("--drain-seconds", default="1", metavar="SECONDS",
                        help="after SIGTERM, keep serving this long while reporting NOT_SERVING "
                             "so load balancers and clients move away (default 1)")
    server.add_argument("--shutdown-grace", default="5", metavar="SECONDS",
                        help="then how long calls still running may finish (default 5)")
    server.add_argument("--reload-interval", default="10", metavar="SECONDS",
                        help="re-read the config, secret, tokens and TLS files this often, as a "
                             "backstop for missed file events (default 10; 0: only on SIGHUP "
                             "and file events)")
    server.add_argument("--max-watch-streams", default=str(DEFAULT_MAX_WATCH_STREAMS),
                        metavar="N",
                        help="watch streams held at once, WatchLLMConfig and grpc.health.v1 "
                             "Watch together; beyond it RESOURCE_EXHAUSTED (default "
                             f"{DEFAULT_MAX_WATCH_STREAMS}; those opened without a token over "
                             "TCP: a fifth of it)")
    server.add_argument("--metrics-listen", metavar="HOST:PORT",
                        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: "
                             "off; :PORT means 127.0.0.1:PORT); they hold no secrets, but "
                             "beyond loopback they need --metrics-public (or --insecure)")
    server.add_argument("--metrics-public", action="store_true",
                        help="let --metrics-listen serve beyond loopback, without a token or "
                             "TLS (token names, provider URLs and the config revision)")
    server.add_argument("--max-concurrent-streams", default="100", metavar="N",
                        help="calls one client connection may have in progress at once "
                             "(HTTP/2 MAX_CONCURRENT_STREAMS; a client queues the rest; "
                             "default 100)")
    server.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="json: one object a line, for cluster log pipelines (default text)")
    server.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"], help="default info")
    server.add_argument("--health-listen", metavar="HOST:PORT",
                        help="also serve grpc.health.v1 alone on HOST:PORT, in plaintext and "
                             "without a token, for probes that can do neither TLS nor tokens "
                             "(the kubelet's gRPC probe); nothing else is served there "
                             "(default: off; :PORT means 127.0.0.1:PORT; beyond loopback it "
                             "needs --health-public or --insecure)")
    server.add_argument("--health-public", action="store_true",
                        help="let --health-listen serve beyond loopback (it answers only "
                             "whether the server is serving)")
    access = parser.add_argument_group(
        "access (needed whenever a listener is reachable from other machines)")
    access.add_argument("--tokens-file", metavar="FILE",
                        help=f"YAML of token names, SHA-256 digests and scopes (env "
                             f"{TOKENS_FILE_ENV}); without it every caller is trusted, which "
                             "is allowed only on loopback and Unix sockets")
    access.add_argument("--tls-cert", metavar="FILE",
                        help=f"PEM certificate chain for TCP listeners (env {TLS_CERT_ENV})")
    access.add_argument("--tls-key", metavar="FILE",
                        help=f"PEM private key of --tls-cert (env {TLS_KEY_ENV})")
    access.add_argument("--tls-client-ca", metavar="FILE",
                        help="PEM CA bundle: require client certificates it signed (mTLS; env "
                             f"{TLS_CLIENT_CA_ENV})")
    access.add_argument("--insecure", action="store_true",
                        help="serve beyond loopback without tokens or TLS anyway (logged as a "
                             "warning)")
    access.add_argument("--trust-loopback", action="store_true",
                        help="without --tokens-file, also hand keys (include_secrets) to "
                             "callers on loopback TCP, i.e. to every user of this machine "
                             "(default: keys only over Unix sockets or with a token)")
    health = parser.add_argument_group("provider health checks")
    health.add_argument("--probe-timeout", metavar="SECONDS",
                        help=f"budget of one provider probe (env {PROBE_TIMEOUT_ENV}; default "
                             f"{DEFAULT_PROBE_TIMEOUT:g}); never past the caller's deadline")
    health.add_argument("--container-host", default="host.docker.internal", metavar="HOST",
                        help="how containers on this host reach it: loopback hosts in answers "
                             "for network=docker become this (default host.docker.internal)")
    health.add_argument("--allow-any-probe-target", action="store_true",
                        help="let CheckProviderHealth probe base URLs this server is not "
                             "configured for (off: the service cannot be used to reach "
                             "arbitrary hosts)")
    health.add_argument("--probe-rate", default=f"{DEFAULT_RATE:g}", metavar="N",
                        help="upstream requests a second to one provider (scheme, host, "
                             "port), probes and model lists together, in bursts of twice that "
                             f"(default {DEFAULT_RATE:g}); past it, and while a provider's "
                             "429 Retry-After lasts, checks answer RATE_LIMITED unasked")
    models = parser.add_argument_group("models")
    models.add_argument("--catalog", metavar="FILE",
                        help="YAML that adds providers (kind: openai-compatible) and models, or "
                             "overrides the shipped catalog's; reloaded like the other files "
                             "(env STIGMER_LLMCONFIG_CATALOG)")
    models.add_argument("--models-refresh-interval", default="3600", metavar="SECONDS",
                        help="ask the providers which models they list this often, spending no "
                             "tokens (default 3600; 0: only when a caller asks with refresh)")
    llm = parser.add_argument_group("LLM configuration (beats environment and config file)")
    llm.add_argument("--config", metavar="PATH",
                     help="llmconfig's own YAML config file (else STIGMER_LLMCONFIG_CONFIG, "
                          "else ~/.stigmer/llmconfig.yaml); Stigmer's own "
                          "~/.stigmer/config.yaml is read too, below it")
    llm.add_argument("--mode", help="local or cloud (env MODE; default local)")
    helps = {
        "provider": "anthropic, ollama or openai",
        "model": "model id, friendly name, tier (fast|balanced|powerful) or provider:model",
        "base_url": "the provider's API root",
        "api_key": "API key for whichever provider is resolved",
        "max_tokens": "output token limit",
        "temperature": "sampling temperature",
    }
    for name, flag in FLAG_FOR_FIELD.items():
        llm.add_argument(flag, dest=f"llm_{name}", metavar=name.upper(), help=helps[name])
    # Flags are fixed by the shipped catalog: an operator's catalog adds variables, not flags.
    for spec in shipped().providers.values():
        if spec.key_flag:
            llm.add_argument(spec.key_flag, dest=f"key_{spec.name}", metavar="KEY",
                             help=f"API key used only when the provider is {spec.name}")
    return parser


def parse(argv: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> Options:
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values = {name: getattr(args, f"llm_{name}") for name in FLAG_FOR_FIELD}
    scoped = {
        spec.name: getattr(args, f"key_{spec.name}")
        for spec in shipped().providers.values()
        if spec.key_flag and getattr(args, f"key_{spec.name}") is not None
    }
    flags = ServerFlags(
        mode=args.mode,
        config=args.config,
        values={k: v for k, v in values.items() if v is not None},
        scoped_keys=scoped,
    )
    listeners = _listeners(args.listen, environ)
    access = AccessOptions(
        tokens_file=_file_option(args.tokens_file, TOKENS_FILE_ENV, environ),
        tls=_tls(args, environ),
        insecure=args.insecure,
        trust_loopback=args.trust_loopback,
    )
    health = HealthOptions(
        probe_timeout=_probe_timeout(args.probe_timeout, environ),
        allow_any_target=args.allow_any_probe_target,
        in_container=running_in_container(environ),
        probe_rate=_probe_rate(args.probe_rate),
    )
    return Options(listeners, _seconds(args.shutdown_grace, "--shutdown-grace"),
                   args.log_level, flags, health, access,
                   _seconds(args.drain_seconds, "--drain-seconds"),
                   _metrics_listen(args.metrics_listen, args.metrics_public or args.insecure),
                   args.log_format,
                   _seconds(args.reload_interval, "--reload-interval", maximum=86400.0),
                   _container_host(args.container_host),
                   _count(args.max_watch_streams, "--max-watch-streams", 1, 1_000_000),
                   _file_option(args.catalog, CATALOG_ENV, environ),
                   _seconds(args.models_refresh_interval, "--models-refresh-interval",
                            maximum=7 * 86400.0),
                   _count(args.max_concurrent_streams, "--max-concurrent-streams", 1, 10_000),
                   health_listen=_health_listen(args.health_listen,
                                                args.health_public or args.insecure, listeners))


def _count(raw: str, flag: str, low: int, high: int) -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
        raise FlagError(f"{flag}: {raw[:32]!r} is not a whole number between {low} and "
                        f"{high}")
    return int(text)


def _container_host(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]+\]", raw):
        raise FlagError(f"--container-host: {raw[:64]!r} is not a host name or address")
    return raw


def _metrics_listen(raw: str | None, public: bool) -> str | None:
    """HOST:PORT of /metrics; `:PORT` is loopback. Beyond loopback only when `public`: the
    metrics have no token and no TLS (the exposure policy of the gRPC listeners, for HTTP)."""
    if raw is None:
        return None
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise FlagError(f"--metrics-listen: {raw!r} is not HOST:PORT, e.g. 127.0.0.1:9090")
    host = host or "127.0.0.1"
    try:
        listener = parse_listener(f"{host}:{port}")
    except ListenSpecError as exc:
        raise FlagError(f"--metrics-listen: {exc}") from None
    if not listener.is_loopback and not public:
        raise FlagError(f"--metrics-listen {raw.strip()} is reachable from other machines, and "
                        "/metrics has no token and no TLS; listen on 127.0.0.1:PORT (or :PORT), "
                        "or pass --metrics-public (or --insecure) to serve it anyway")
    return f"{host}:{port}"


def _health_listen(raw: str | None, public: bool,
                   listeners: tuple[Listener, ...]) -> Listener | None:
    """The health-only listener: TCP (the kubelet probes TCP), `:PORT` is loopback, beyond
    loopback only when `public`. It has no token and no TLS, but answers nothing beyond the
    serving status, so saying so explicitly is all the exposure policy asks."""
    if raw is None:
        return None
    text = raw.strip()
    if text.startswith(":"):
        text = f"127.0.0.1{text}"
    if text.startswith(UNIX_PREFIX):
        raise FlagError(f"--health-listen: {raw!r} is a Unix socket; it takes HOST:PORT (a "
                        "probe from outside the pod needs TCP), e.g. 0.0.0.0:50062")
    try:
        listener = parse_listener(text)
    except ListenSpecError as exc:
        raise FlagError(f"--health-listen: {exc}") from None
    if listener.port != 0 and any(item.grpc_address == listener.grpc_address
                                  for item in listeners):
        raise FlagError(f"--health-listen {text} is also a --listen address; give it a port "
                        "of its own")
    if not listener.is_loopback and not public:
        raise FlagError(f"--health-listen {text} is reachable from other machines without a "
                        "token or TLS; listen on 127.0.0.1:PORT (or :PORT), or pass "
                        "--health-public (or --insecure) to serve it anyway (it answers only "
                        "grpc.health.v1)")
    return listener


def _seconds(raw: str, flag: str, maximum: float = 3600.0) -> float:
    """A finite, non-negative number of seconds in plain ASCII decimal notation."""
    value = float(raw) if _PLAIN_DECIMAL.fullmatch(raw.strip()) else -1.0
    if not 0 <= value <= maximum:
        raise FlagError(f"{flag}: {raw!r} is not a number of seconds between 0 and "
                        f"{maximum:g}, e.g. 5 or 0.5")
    return value


def _listeners(given: list[str] | None, environ: Mapping[str, str]) -> tuple[Listener, ...]:
    if given:
        specs, name = given, "--listen"
    else:
        specs = [s for s in environ.get(LISTEN_ENV, "").split(",") if s.strip()]
        name = LISTEN_ENV
    if not specs:
        specs = [DEFAULT_LISTEN]
    try:
        listeners = tuple(parse_listener(spec) for spec in specs)
    except ListenSpecError as exc:
        raise FlagError(f"{name}: {exc}") from None
    seen = [item.grpc_address for item in listeners]
    if len(set(seen)) != len(seen):
        raise FlagError(f"{name}: the same address is given twice")
    return listeners


def _file_option(flag: str | None, variable: str, environ: Mapping[str, str]) -> str | None:
    return flag or environ.get(variable, "").strip() or None


def _tls(args: argparse.Namespace, environ: Mapping[str, str]) -> TlsFiles | None:
    cert = _file_option(args.tls_cert, TLS_CERT_ENV, environ)
    key = _file_option(args.tls_key, TLS_KEY_ENV, environ)
    client_ca = _file_option(args.tls_client_ca, TLS_CLIENT_CA_ENV, environ)
    if cert and key:
        return TlsFiles(cert, key, client_ca)
    if cert or key:
        missing = "--tls-key" if cert else "--tls-cert"
        raise FlagError(f"TLS needs both --tls-cert and --tls-key; {missing} is missing")
    if client_ca:
        raise FlagError("--tls-client-ca requires TLS: pass --tls-cert and --tls-key too")
    return None


def _probe_timeout(flag: str | None, environ: Mapping[str, str]) -> float:
    raw, name = (flag, "--probe-timeout") if flag else (
        environ.get(PROBE_TIMEOUT_ENV, "").strip(), PROBE_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_PROBE_TIMEOUT
    value = float(raw) if _PLAIN_DECIMAL.fullmatch(raw) else -1.0
    if not 0 < value <= MAX_PROBE_TIMEOUT:
        raise FlagError(f"{name}: {raw!r} is not a number of seconds between 0 and "
                        f"{MAX_PROBE_TIMEOUT:g}, e.g. 2 or 0.5")
    return value


def _probe_rate(raw: str) -> float:
    value = float(raw) if _PLAIN_DECIMAL.fullmatch(raw.strip()) else -1.0
    if not 0 < value <= MAX_RATE:
        raise FlagError(f"--probe-rate: {raw!r} is not a number of requests a second between 0 "
                        f"and {MAX_RATE:g}, e.g. 10 or 0.5")
    return value


def running_in_container(environ: Mapping[str, str]) -> bool:
    """Docker and Podman leave a marker file; Kubernetes sets KUBERNETES_SERVICE_HOST."""
    return (Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()
            or "KUBERNETES_SERVICE_HOST" in environ)
