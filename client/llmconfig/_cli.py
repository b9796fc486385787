"""`llmconfig`: ask the LLM configuration service from a shell.

Exit codes: 0 ok / healthy / ready; 1 the provider is not usable (health, doctor); 2 the request
or the server's configuration is invalid; 3 the service cannot be reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import io
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, TextIO

from . import __version__
from ._channel import (
    CA_FILE_ENV,
    DEFAULT_TIMEOUT,
    INSECURE_ENV,
    NETWORK_ENV,
    TARGET_ENV,
    TLS_REQUIRED,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    network_or_default,
    target_or_default,
)
from ._client import Client
from ._errors import LLMConfigError, ServiceUnavailable
from ._models import Health, ModelInfo, ModelStatus, Resolved, RunnerConfig

EXIT_OK, EXIT_UNHEALTHY, EXIT_INVALID, EXIT_UNREACHABLE = 0, 1, 2, 3

DESCRIPTION = """\
Ask Stigmer's LLM configuration service which model to use and whether it works.

  llmconfig resolve                 the configuration for a run, and where each value came from
  llmconfig resolve --model claude-sonnet-4.5
  llmconfig health                  is the provider usable? (Ollama up, model pulled, key valid)
  llmconfig doctor                  both, with a verdict and the next command to run
  llmconfig watch                   the configuration, then one line per change
  llmconfig runner                  everything a runner reads (Temporal, backend, sandbox, …)
  llmconfig models                  the models known, their status, limits and retirement

The service is at --target, else $STIGMER_LLMCONFIG_TARGET, else 127.0.0.1:50061
(start it with `llmconfig-server`)."""

EPILOG = """\
exit codes: 0 ok/healthy/ready, 1 provider not usable, 2 invalid request or server
configuration, 3 service unreachable"""


# -- output -----------------------------------------------------------------------------------

class Style:
    """ANSI colour on a terminal, plain text elsewhere (and when NO_COLOR is set).

    Colour is marked with a per-process random tag that `show` turns into escape codes after
    escaping everything else: a server's text can never carry an escape code to the terminal,
    even one that looks like ours."""

    CODES: ClassVar[dict[str, str]] = {
        "green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1", "cyan": "36",
        "magenta": "35", "blue": "34",
    }

    def __init__(self, stream: TextIO, mode: str) -> None:
        self.on = mode == "always" or (
            mode == "auto" and stream.isatty() and "NO_COLOR" not in os.environ
        )
        self._tag = f"<{secrets.token_hex(8)}:"
        self._tags = re.compile(re.escape(self._tag) + "([0-9]+)>")

    def __call__(self, text: str, colour: str) -> str:
        if not self.on:
            return text
        return f"{self._tag}{self.CODES[colour]}>{text}{self._tag}0>"

    def show(self, lines: str | Sequence[str], *, err: bool = False, flush: bool = False,
             ) -> None:
        """The one way the CLI writes text: a line, or lines the CLI breaks itself; in each,
        every control, format or otherwise unprintable character escaped (`\\x1b`,
        `\\u202e`, a server's `\\n`), then this Style's colours."""
        shown = "\n".join(escaped(line) for line in ([lines] if isinstance(lines, str)
                                                      else lines))
        if self.on:
            shown = self._tags.sub(lambda m: f"\033[{m.group(1)}m", shown)
        print(shown, file=sys.stderr if err else sys.stdout, flush=flush)

    def show_json(self, data: Any, *, indent: int | None = 2, flush: bool = False) -> None:
        """JSON, its strings escaped as JSON does (`\\u202e`): still valid JSON."""
        text = json.dumps(data, indent=indent, ensure_ascii=False)
        if not text.isprintable():  # line breaks are outside strings, where JSON puts them
            text = "".join(c if c.isprintable() or c == "\n" else _json_escape(c)
                           for c in text)
        print(text, flush=flush)


def escaped(text: str) -> str:
    """`text` fit for a terminal: control characters (Unicode Cc: ESC, CR, C1…), format
    characters (Cf: bidi overrides such as U+202E, zero-width characters, the BOM), line
    separators and anything else Python does not call printable, escaped as Python writes them
    (`\\x1b`, `\\u202e`). Escaping twice changes nothing."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _json_escape(character: str) -> str:
    code = ord(character)
    if code > 0xFFFF:  # a UTF-16 surrogate pair, as JSON writes it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


SOURCE_COLOUR = {"request": "cyan", "flag": "magenta", "env": "yellow", "file": "blue",
                 "default": "dim", "unknown": "dim"}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):  # doctor's report holds dataclasses
        return {key: _jsonable(v) for key, v in value.items()}
    return value




def _resolved_table(resolved: Resolved, style: Style, show_secrets: bool) -> list[str]:
    c = resolved.config
    shown = {
        "mode": c.mode,
        "provider": c.provider,
        "model": c.model if c.model == c.requested_model
        else f"{c.model} (asked: {c.requested_model})",
        "base_url": c.base_url,
        "api_key": (c.api_key if show_secrets and c.api_key else c.api_key_hint) or "(none)",
        "max_tokens": "(provider default)" if c.max_tokens is None else str(c.max_tokens),
        "temperature": "(provider default)" if c.temperature is None else str(c.temperature),
    }
    width = max(len(v) for v in shown.values())
    lines = []
    for origin in resolved.origins:
        source = origin.source.value
        lines.append(f"{origin.field:<12} {shown.get(origin.field, ''):<{width}}  "
                     f"{style(f'{source:<8}', SOURCE_COLOUR[source])} {origin.detail}")
    if c.openai_base_url and c.openai_base_url != c.base_url:
        lines.append(f"{'openai_url':<12} {c.openai_base_url}")
    lines.append(f"{'revision':<12} {resolved.revision}")
    lines += [style(f"warning: {w}", "yellow") for w in resolved.warnings]
    return lines


def _health_lines(health: Health, style: Style) -> list[str]:
    mark, colour = ("✓", "green") if health.healthy else ("✗", "red")
    head = (f"{style(mark + ' ' + health.status.name, colour)}  {health.provider} {health.model}"
            f" at {health.base_url}  ({health.latency * 1000:.0f} ms"
            f"{', cached' if health.cached else ''})")
    return [head, f"  {health.message}"]


def _error_lines(error: LLMConfigError, style: Style) -> list[str]:
    lines = [style(f"error ({error.code.name}): {error.message}", "red")]
    lines += [f"  - {v.subject}: {v.reason}" for v in error.violations
              if v.description not in error.message]
    return lines


START_SERVICE = f"start the service with `llmconfig-server`, or point --target / {TARGET_ENV} at it"


def _unreachable(target: str, error: LLMConfigError, style: Style) -> list[str]:
    if error.reason == TLS_REQUIRED:  # it is there, and needs TLS: starting it would not help
        return [style(f"error: {error.message}", "red")]
    first = error.message.splitlines()[0] if error.message else ""
    return [style(f"error: the llmconfig service at {target} cannot be reached", "red")
            + f" ({error.code.name}: {first})", f"  {START_SERVICE}"]


def next_step(health: Health) -> str:
    """The command in the health message ("ollama serve"), else its advice after the dash."""
    if quoted := re.search(r'"([^"]+)"', health.message):
        return quoted.group(1)
    return health.message.split(" — ", 1)[-1]


# -- commands ---------------------------------------------------------------------------------

def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in
            ("provider", "model", "base_url", "max_tokens", "temperature")
            if getattr(args, name, None) is not None}


def _ask(call: Callable[[], Any], target: str, style: Style) -> tuple[Any, int]:
    """(the answer, EXIT_OK), or (None, the exit code) after printing why there is none."""
    try:
        return call(), EXIT_OK
    except ServiceUnavailable as exc:
        style.show(_unreachable(target, exc, style), err=True)
        return None, EXIT_UNREACHABLE
    except LLMConfigError as exc:
        style.show(_error_lines(exc, style), err=True)
        return None, EXIT_INVALID


def cmd_resolve(client: Client, args: argparse.Namespace, style: Style) -> int:
    resolved, code = _ask(lambda: client.resolve(
        args.mode, include_secrets=args.show_secrets, network=args.network, **_overrides(args)),
        client.target, style)
    if resolved is None:
        return code
    if args.json:
        data = _jsonable(resolved)
        if not args.show_secrets:
            data["config"].pop("api_key")
        style.show_json(data)
    else:
        style.show(_resolved_table(resolved, style, args.show_secrets))
    return EXIT_OK


def cmd_health(client: Client, args: argparse.Namespace, style: Style) -> int:
    health, code = _ask(lambda: client.check_health(
        args.provider, model=args.model, base_url=args.base_url, mode=args.mode,
        refresh=args.refresh), client.target, style)
    if health is None:
        return code
    if args.json:
        style.show_json(_jsonable(health))
    else:
        style.show(_health_lines(health, style))
    return EXIT_OK if health.healthy else EXIT_UNHEALTHY


STATUS_COLOUR = {ModelStatus.ACTIVE: "green", ModelStatus.LEGACY: "dim",
                 ModelStatus.DEPRECATED: "yellow", ModelStatus.RETIRED: "red",
                 ModelStatus.UNKNOWN: "dim"}


def _thousands(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value // 1000}K" if value >= 1000 and value % 1000 == 0 else str(value)


def _models_table(models: Sequence[ModelInfo], style: Style) -> list[str]:
    header = ("provider", "model", "status", "out", "context", "retires", "instead",
              "available")
    rows = [(m.provider, escaped(m.id) + (f" ({m.tier})" if m.tier else ""),
             m.status.value, _thousands(m.max_output_tokens), _thousands(m.context_window),
             m.retires_on or "–", escaped(m.replacement) or "–",
             "yes" if m.available else "–") for m in models]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(style(h.ljust(w), "bold") for h, w in zip(header, widths, strict=True))]
    for model, row in zip(models, rows, strict=True):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        cells[2] = style(cells[2], STATUS_COLOUR[model.status])
        lines.append("  ".join(cells).rstrip())
    return lines


def cmd_models(client: Client, args: argparse.Namespace, style: Style) -> int:
    models, code = _ask(lambda: client.list_models(
        args.provider, mode=args.mode, refresh=args.refresh), client.target, style)
    if models is None:
        return code
    warnings = client.last_model_warnings
    if args.json:
        style.show_json({"models": _jsonable(list(models)), "warnings": list(warnings)})
        return EXIT_OK
    style.show(_models_table(models, style))
    for warning in warnings:
        style.show(style(f"warning: {warning}", "yellow"), err=True)
    return EXIT_OK


def cmd_doctor(client: Client, args: argparse.Namespace, style: Style) -> int:
    ok, bad = style("✓", "green"), style("✗", "red")
    report: dict[str, Any] = {"target": client.target, "ready": False}
    lines = [f"llmconfig doctor — service at {client.target}"]
    code, advice = EXIT_UNHEALTHY, ""
    try:
        resolved = client.resolve(args.mode, network=args.network)
        c = resolved.config
        report["config"] = resolved
        lines.append(f"{ok} service   reachable")
        lines.append(f"{ok} config    {c.provider} {c.model} at {c.base_url} (mode {c.mode}, "
                     f"revision {resolved.revision})")
        lines += [f"  {style('warning:', 'yellow')} {w}" for w in resolved.warnings]
        health = client.check_health(mode=args.mode, refresh=True)
        report["health"] = health
        if health.healthy:
            lines.append(f"{ok} provider  {health.message}")
            code = EXIT_OK
        else:
            lines.append(f"{bad} provider  {health.status.name}: {health.message}")
            advice = next_step(health)
            if network_or_default(args.network) == "docker" and c.provider == "ollama" and \
                    health.status.name in ("UNREACHABLE", "TIMEOUT"):
                # The server reaches Ollama on loopback; this container needs it beyond.
                advice = (f"on the host, make Ollama listen beyond loopback: OLLAMA_HOST=0.0.0.0 "
                          f"ollama serve (this container reaches it at {c.base_url})")
    except ServiceUnavailable as exc:
        lines.append(f"{bad} service   not reachable ({exc.code.name})")
        code, advice = EXIT_UNREACHABLE, \
            exc.message if exc.reason == TLS_REQUIRED else START_SERVICE
    except LLMConfigError as exc:
        lines.append(f"{bad} config    {exc.message}")
        code, advice = EXIT_INVALID, exc.message.split("; ", 1)[-1]
    report.update(ready=code == EXIT_OK, next=advice)
    if args.json:
        style.show_json(_jsonable(report))
        return code
    verdict = style("Ready.", "green") if code == EXIT_OK else \
        style("Not ready.", "red") + f" Next: {advice}"
    style.show([*lines, "", verdict])
    return code


RUNNER_ROWS: tuple[tuple[str, Callable[[RunnerConfig], str]], ...] = (
    ("mode", lambda c: c.mode),
    ("temporal.address", lambda c: c.temporal.address),
    ("temporal.namespace", lambda c: c.temporal.namespace),
    ("temporal.task_queue", lambda c: c.temporal.task_queue),
    ("temporal.max_concurrency", lambda c: str(c.temporal.max_concurrency)),
    ("temporal.managed", lambda c: "yes" if c.temporal.managed else "no"),
    ("backend.endpoint", lambda c: c.backend.endpoint),
    ("backend.api_key", lambda c: c.backend.api_key or c.backend.api_key_hint or "(none)"),
    ("sandbox.type", lambda c: c.sandbox.type),
    ("sandbox.root_dir", lambda c: c.sandbox.root_dir or "—"),
    ("sandbox.snapshot_id", lambda c: c.sandbox.snapshot_id or "—"),
    ("sandbox.daytona_api_key", lambda c: c.sandbox.daytona_api_key
     or c.sandbox.daytona_api_key_hint or "(none)"),
    ("redis.enabled", lambda c: "yes" if c.redis.enabled else "no"),
    ("redis.host", lambda c: c.redis.host or "—"),
    ("redis.port", lambda c: str(c.redis.port)),
    ("redis.password", lambda c: c.redis.password
     or ("(set)" if c.redis.password_present else "(none)")),
    ("execution.mode", lambda c: c.execution.mode),
    ("execution.sandbox_image", lambda c: c.execution.sandbox_image),
    ("execution.sandbox_auto_pull", lambda c: "yes" if c.execution.sandbox_auto_pull else "no"),
    ("execution.sandbox_cleanup", lambda c: "yes" if c.execution.sandbox_cleanup else "no"),
    ("execution.sandbox_ttl_seconds", lambda c: str(c.execution.sandbox_ttl_seconds)),
)
_RUNNER_PATH_WIDTH = max(len(path) for path, _ in RUNNER_ROWS)


def cmd_runner(client: Client, args: argparse.Namespace, style: Style) -> int:
    runner, code = _ask(lambda: client.resolve_runner(
        args.mode, session_id=args.session_id, include_secrets=args.show_secrets,
        network=args.network), client.target, style)
    if runner is None:
        return code
    if args.json:
        data = _jsonable(runner)
        if not args.show_secrets:
            data["llm"]["config"].pop("api_key")
            for section, key in (("backend", "api_key"), ("sandbox", "daytona_api_key"),
                                 ("redis", "password")):
                data["config"][section].pop(key)
        style.show_json(data)
        return EXIT_OK
    origins = {o.field: o for o in runner.origins}
    shown = {path: value(runner.config) for path, value in RUNNER_ROWS}
    width = max(len(v) for v in shown.values())
    lines = []
    for path, _ in RUNNER_ROWS:
        origin = origins.get(path)
        source = origin.source.value if origin else "default"
        lines.append(f"{path:<{_RUNNER_PATH_WIDTH}} {shown[path]:<{width}}  "
                     f"{style(f'{source:<8}', SOURCE_COLOUR[source])} "
                     f"{origin.detail if origin else ''}")
    c = runner.llm.config
    lines.append(f"{'llm':<{_RUNNER_PATH_WIDTH}} {c.provider} {c.model} at {c.base_url} "
                 f"(revision {runner.llm.revision}; `llmconfig resolve` shows its origins)")
    lines.append(f"{'revision':<{_RUNNER_PATH_WIDTH}} {runner.revision}")
    lines += [style(f"warning: {w}", "yellow") for w in (*runner.warnings, *runner.llm.warnings)]
    style.show(lines)
    return EXIT_OK


def cmd_watch(client: Client, args: argparse.Namespace, style: Style) -> int:
    """One line per change until interrupted; resumes across server restarts, exits 3 once
    the service stays unreachable for --timeout seconds."""
    try:
        for change in client.watch(args.mode, include_secrets=False, network=args.network,
                                   unreachable_after=args.timeout, **_overrides(args)):
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            if args.json:
                data: dict[str, Any] = {"time": stamp}
                if change.resolved:
                    data["resolved"] = _jsonable(change.resolved)
                    data["resolved"]["config"].pop("api_key")
                else:
                    assert change.error is not None
                    error = change.error
                    data["error"] = {"code": error.code.name, "message": error.message,
                                     "reason": error.reason}
                style.show_json(data, indent=None, flush=True)
            elif change.resolved:
                c = change.resolved.config
                warnings = "".join(f"  {style('warning:', 'yellow')} {w}"
                                   for w in change.resolved.warnings)
                style.show(f"{stamp} revision {change.resolved.revision}: {c.provider} "
                           f"{c.model} at {c.base_url} (mode {c.mode}){warnings}", flush=True)
            else:
                assert change.error is not None
                style.show(f"{stamp} " + style(f"error ({change.error.code.name}): "
                                               f"{change.error.message}", "red"), flush=True)
    except KeyboardInterrupt:
        return EXIT_OK
    except ServiceUnavailable as exc:
        style.show(_unreachable(client.target, exc, style), err=True)
        return EXIT_UNREACHABLE
    except LLMConfigError as exc:
        style.show(_error_lines(exc, style), err=True)
        return EXIT_INVALID
    return EXIT_OK


# -- parsing ----------------------------------------------------------------------------------

def _add_overrides(command: argparse.ArgumentParser) -> None:
    """The run's overrides, as `resolve` and `watch` take them."""
    command.add_argument("--provider", help="anthropic, ollama or openai")
    command.add_argument("--model", help="model id, friendly name, tier or provider:model")
    command.add_argument("--base-url", help="the provider's API root")
    command.add_argument("--max-tokens", type=int, help="output token limit")
    command.add_argument("--temperature", type=float, help="sampling temperature")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", help=f"host:port or unix:PATH of the service (env "
                                         f"{TARGET_ENV}; default 127.0.0.1:50061)")
    common.add_argument("--token-file", metavar="FILE",
                        help=f"file holding the bearer token (env {TOKEN_FILE_ENV}, or the token "
                             f"itself in {TOKEN_ENV})")
    common.add_argument("--ca-file", metavar="FILE",
                        help=f"PEM CA that signed the server's certificate: use TLS (env "
                             f"{CA_FILE_ENV})")
    common.add_argument("--insecure", action="store_true", default=None,
                        help="send the token in cleartext to a target beyond this machine "
                             f"(env {INSECURE_ENV}=1); without it, a token needs --ca-file "
                             "there")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"deadline of each call (default {DEFAULT_TIMEOUT:g})")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour the output (default: on a terminal, unless NO_COLOR)")
    common.add_argument("--mode", help="local or cloud (default: the server's mode)")
    common.add_argument("--network", choices=["host", "docker"],
                        help=f"where this command runs: docker = a container on the server's "
                             f"host (env {NETWORK_ENV}; default: the server's own view)")

    parser = argparse.ArgumentParser(
        prog="llmconfig", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    resolve = commands.add_parser(
        "resolve", parents=[common], help="show the configuration and where each value came from",
        description="Resolve the LLM configuration for a run. Options are the run's overrides.")
    _add_overrides(resolve)
    resolve.add_argument("--show-secrets", action="store_true",
                         help="print the API key in clear (default: its hint only)")
    resolve.set_defaults(handler=cmd_resolve)

    health = commands.add_parser(
        "health", parents=[common], help="check that the provider is usable (spends no tokens)",
        description="Check the provider: exit 0 healthy, 1 unhealthy, 3 service unreachable.")
    health.add_argument("--provider", help="default: as resolved for the mode")
    health.add_argument("--model", help="default: as resolved for the mode")
    health.add_argument("--base-url", help="must be one the server is configured for")
    health.add_argument("--refresh", action="store_true", help="skip the server's cache")
    health.set_defaults(handler=cmd_health)

    runner = commands.add_parser(
        "runner", parents=[common], help="everything a runner reads: Temporal, backend, "
                                         "sandbox, Redis and the LLM",
        description="Resolve the agent runner's configuration and where each value came from.")
    runner.add_argument("--session-id", help="the session: its own sandbox folder")
    runner.add_argument("--show-secrets", action="store_true",
                        help="print the secrets in clear (default: hints only)")
    runner.set_defaults(handler=cmd_runner)

    watch = commands.add_parser(
        "watch", parents=[common], help="print the configuration, then one line per change",
        description="Follow the configuration: one line (or JSON object) per change, until "
                    "interrupted. Resumes after a restart or a lost connection; exits 3 once "
                    "the service cannot be reached for --timeout seconds, 2 for an invalid "
                    "request or a refused token.")
    _add_overrides(watch)
    watch.set_defaults(handler=cmd_watch)

    models = commands.add_parser(
        "models", parents=[common], help="the models known: status, limits, retirement",
        description="List the models the service's catalog and the providers know, with their "
                    "lifecycle status, output and context limits, retirement date, replacement "
                    "and whether the provider has them (Ollama: pulled). Spends no tokens.")
    models.add_argument("--provider", help="only this provider's models (default: all)")
    models.add_argument("--refresh", action="store_true",
                        help="ask the providers for their lists now")
    models.set_defaults(handler=cmd_models)

    doctor = commands.add_parser(
        "doctor", parents=[common], help="resolve + health, a verdict and the next command",
        description="Check the service, the configuration and the provider; say what to do next.")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # "…" and "—" must never crash a C locale
    args = build_parser().parse_args(argv)
    style = Style(sys.stdout, args.color)
    try:
        client = Client(target_or_default(args.target), timeout=args.timeout,
                        token_file=args.token_file, ca_file=args.ca_file,
                        insecure=args.insecure)
    except ValueError as exc:
        style.show(style(f"error: {exc}", "red"), err=True)
        return EXIT_INVALID
    with client:
        code: int = args.handler(client, args, style)
    return code


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())
