"""The server's command line. Cascade flags stay raw strings: the cascade parses them so that a bad
one is reported like any other bad input, naming the flag."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .catalog import PROVIDERS
from .health import HealthOptions
from .sources import FLAG_FOR_FIELD, ServerFlags

DEFAULT_LISTEN = "127.0.0.1:50061"
LISTEN_ENV = "STIGMER_LLMCONFIG_LISTEN"
PROBE_TIMEOUT_ENV = "STIGMER_LLMCONFIG_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 2.0
MAX_PROBE_TIMEOUT = 60.0


class FlagError(Exception):
    """A server option (not an LLM setting) is unusable."""


@dataclass(frozen=True, slots=True)
class Options:
    listen: str
    shutdown_grace: float
    log_level: str
    flags: ServerFlags
    health: HealthOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmconfig-server",
        description=(
            "Serve llmconfig.v1.LLMConfigService: the LLM configuration of Stigmer, resolved "
            "from request overrides > these flags > environment > config file > defaults."
        ),
        epilog="Secrets passed as flags are visible in the process list; prefer "
        "ANTHROPIC_API_KEY_FILE / STIGMER_LLM_API_KEY_FILE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    server = parser.add_argument_group("server")
    server.add_argument("--listen", metavar="HOST:PORT",
                        help=f"address to serve on (env {LISTEN_ENV}; default {DEFAULT_LISTEN}; "
                             "port 0 picks a free port)")
    server.add_argument("--shutdown-grace", type=float, default=5.0, metavar="SECONDS",
                        help="how long in-flight calls may finish after SIGTERM (default 5)")
    server.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"], help="default info")
    health = parser.add_argument_group("provider health checks")
    health.add_argument("--probe-timeout", metavar="SECONDS",
                        help=f"budget of one provider probe (env {PROBE_TIMEOUT_ENV}; default "
                             f"{DEFAULT_PROBE_TIMEOUT:g}); never past the caller's deadline")
    health.add_argument("--allow-any-probe-target", action="store_true",
                        help="let CheckProviderHealth probe base URLs this server is not "
                             "configured for (off: the service cannot be used to reach "
                             "arbitrary hosts)")
    llm = parser.add_argument_group("LLM configuration (beats environment and config file)")
    llm.add_argument("--config", metavar="PATH",
                     help="YAML config file (else STIGMER_CONFIG, ./.stigmer/config.yaml, "
                          "~/.stigmer/config.yaml)")
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
    for spec in PROVIDERS.values():
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
        for spec in PROVIDERS.values()
        if spec.key_flag and getattr(args, f"key_{spec.name}") is not None
    }
    flags = ServerFlags(
        mode=args.mode,
        config=args.config,
        values={k: v for k, v in values.items() if v is not None},
        scoped_keys=scoped,
    )
    listen = args.listen or environ.get(LISTEN_ENV, "").strip() or DEFAULT_LISTEN
    health = HealthOptions(
        probe_timeout=_probe_timeout(args.probe_timeout, environ),
        allow_any_target=args.allow_any_probe_target,
        in_container=running_in_container(environ),
    )
    return Options(listen, args.shutdown_grace, args.log_level, flags, health)


def _probe_timeout(flag: str | None, environ: Mapping[str, str]) -> float:
    raw, name = (flag, "--probe-timeout") if flag else (
        environ.get(PROBE_TIMEOUT_ENV, "").strip(), PROBE_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_PROBE_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_PROBE_TIMEOUT:
        raise FlagError(f"{name}: {raw!r} is not a number of seconds between 0 and "
                        f"{MAX_PROBE_TIMEOUT:g}, e.g. 2 or 0.5")
    return value


def running_in_container(environ: Mapping[str, str]) -> bool:
    """Docker and Podman leave a marker file; Kubernetes sets KUBERNETES_SERVICE_HOST."""
    return (Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()
            or "KUBERNETES_SERVICE_HOST" in environ)
