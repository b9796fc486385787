"""Stigmer's own `~/.stigmer/config.yaml`, read in Stigmer's schema.

The Stigmer CLI writes this file itself (its Go `config.Config`, saved by yaml.v3 under a
header comment), so the service reads it as Stigmer's code does (client-apps/cli/internal/cli/
config/config.go in stigmer/stigmer):

- `backend.type` is the mode; `backend.local.llm.*` local mode's LLM values;
  `backend.local.temporal.*` and `backend.local.execution.*` the runner's Temporal and
  execution settings. All of it is local mode's: `backend.local` is the local backend.
- Go's zero values mean "not set", as they do in Stigmer's resolvers: `provider: ""` (which
  the CLI writes when only the model was set), `ttl: 0`, `port: 0`, a null.
- A string field takes a scalar's text as written (yaml.v3 does: `model: 7` is "7").
- Keys that are Stigmer's but not ours (`backend.local.endpoint`, `data_dir`,
  `temporal.version`, `backend.cloud`, `context`) are ignored without a word; any other key
  is ignored with one warning naming it. A file the CLI wrote never stops the server.

Pure: no environment access, no gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from llmconfig_server.resolve import parsing, runner_fields
from llmconfig_server.resolve.catalog import (
    provider_of_base_url,
    provider_of_key,
    provider_of_model,
    shipped,
)
from llmconfig_server.resolve.domain import Reason, Source, Value, Violation
from llmconfig_server.resolve.parsing import ParseError, parse_mode, parse_value
from llmconfig_server.sources.config_file import Document, key_shown

_NOT_OURS: Final = object()  # Stigmer's, deprecated or CLI-only: ignored without a warning
_STRING, _BOOL, _INT = "string", "bool", "int"
# Stigmer's schema: key → sub-schema, or (Go type, the field it feeds).
SCHEMA: Final[dict[str, Any]] = {
    "backend": {
        "type": (_STRING, "mode"),
        "local": {
            "endpoint": _NOT_OURS,  # deprecated in Stigmer: the daemon is always :7234
            "data_dir": _NOT_OURS,  # deprecated in Stigmer: always ~/.stigmer/data
            "llm": {
                "provider": (_STRING, "provider"),
                "model": (_STRING, "model"),
                "api_key": (_STRING, "api_key"),
                "base_url": (_STRING, "base_url"),
            },
            "temporal": {
                "managed": (_BOOL, "temporal.managed"),
                "version": _NOT_OURS,  # the CLI's managed Temporal version
                "port": (_INT, "temporal.port"),
                "address": (_STRING, "temporal.address"),
            },
            "execution": {
                "mode": (_STRING, "execution.mode"),
                "sandbox_image": (_STRING, "execution.sandbox_image"),
                "auto_pull": (_BOOL, "execution.sandbox_auto_pull"),
                "cleanup": (_BOOL, "execution.sandbox_cleanup"),
                "ttl": (_INT, "execution.sandbox_ttl_seconds"),
            },
        },
        "cloud": _NOT_OURS,  # the CLI's cloud login
    },
    "context": _NOT_OURS,  # the CLI's organization and environment
}
_GO_TYPE: Final = {_STRING: "a string", _BOOL: "true or false", _INT: "a whole number"}
_MAX_WARNED: Final = 5
_MANAGED_PORT: Final = 7233


@dataclass(slots=True)
class StigmerSettings:
    """What the file says, parsed: the mode, local mode's LLM and runner values, problems
    (each naming file:line:column and key), and warnings."""

    display: str
    mode: Value | None = None
    llm: dict[str, Value] = field(default_factory=dict)
    runner: dict[str, Value] = field(default_factory=dict)
    mode_problems: list[Violation] = field(default_factory=list)
    problems: list[Violation] = field(default_factory=list)  # each about one field
    broken: list[Violation] = field(default_factory=list)  # a section that is not a mapping
    warnings: list[str] = field(default_factory=list)  # about the file and its LLM values
    runner_warnings: list[str] = field(default_factory=list)


def read(document: Document) -> StigmerSettings:
    settings = StigmerSettings(document.display)
    raw: dict[str, tuple[Any, tuple[str, ...]]] = {}  # field → (Go value, key path)
    unknown: list[str] = []
    _walk(document, SCHEMA, document.data, (), raw, unknown, settings)
    if unknown:
        shown = ", ".join(unknown[:_MAX_WARNED]) + (
            f" and {len(unknown) - _MAX_WARNED} more" if len(unknown) > _MAX_WARNED else "")
        own = [key for key in unknown if key in ("mode", "llm", "runner", "local", "cloud")]
        hint = (" (llm:, local:, … are llmconfig's own format: they belong in "
                "~/.stigmer/llmconfig.yaml, since Stigmer's CLI drops keys it does not know "
                "when it saves this file)") if own else ""
        settings.warnings.append(f"{document.display}: ignoring {shown}: not Stigmer settings "
                                 f"llmconfig knows{hint}")
    _mode(document, raw, settings)
    _llm(document, raw, settings)
    _temporal(document, raw, settings)
    _execution(document, raw, settings)
    return settings


def _walk(document: Document, schema: dict[str, Any], data: dict[Any, Any],
          path: tuple[str, ...], raw: dict[str, tuple[Any, tuple[str, ...]]],
          unknown: list[str], settings: StigmerSettings) -> None:
    for key, value in data.items():
        here = (*path, key) if isinstance(key, str) else path
        rule = schema.get(key) if isinstance(key, str) else None
        if rule is None:
            unknown.append(".".join(key_shown(part) for part in (*path, key)))
        elif rule is _NOT_OURS or value is None:
            continue
        elif isinstance(rule, dict):
            if isinstance(value, dict):
                _walk(document, rule, value, here, raw, unknown, settings)
            else:  # yaml.v3 refuses the whole file then: nothing below it can be trusted
                _type_problem(document, here, "a mapping of keys", value, "config", settings)
        else:
            go_type, target = rule
            if (taken := _go_value(document, here, go_type, value)) is _NOT_OURS:
                _type_problem(document, here, _GO_TYPE[go_type], value, target, settings)
            elif not _is_unset(taken):
                raw[target] = (taken, here)


def _is_unset(value: Any) -> bool:
    """Go's zero string and number mean "not set" in Stigmer's resolvers (`TTL > 0`,
    `Provider != ""`); a false boolean is a value (`auto_pull: false` turns pulling off)."""
    return value == "" or (type(value) is int and value == 0)


def _go_value(document: Document, path: tuple[str, ...], go_type: str, value: Any) -> Any:
    """The value as yaml.v3 gives it to a Go field of `go_type`, or _NOT_OURS when yaml.v3
    would refuse it."""
    if go_type == _STRING:
        if isinstance(value, (dict, list)):
            return _NOT_OURS
        text = document.marks.get(path, (0, 0, None))[2]
        return text if isinstance(text, str) else str(value)
    if go_type == _BOOL:
        return value if isinstance(value, bool) else _NOT_OURS
    return value if isinstance(value, int) and not isinstance(value, bool) else _NOT_OURS


def _type_problem(document: Document, path: tuple[str, ...], expected: str, value: Any,
                  target: str, settings: StigmerSettings) -> None:
    secret = path[-1] == "api_key"
    found = "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) \
        else "<secret>" if secret else parsing.shown(value)
    subject = _subject(document, path)
    problem = Violation(target, Reason.CONFIG_FILE_INVALID,
                        f"{subject}: must be {expected} (Stigmer's schema), got {found}; fix "
                        "it with `stigmer config set` or in the file", Source.FILE, subject)
    if target == "mode" or path == ("backend",):
        settings.mode_problems.append(problem)
    if target == "config":
        settings.broken.append(problem)
    elif target != "mode":
        settings.problems.append(problem)


def _subject(document: Document, path: tuple[str, ...]) -> str:
    """`~/.stigmer/config.yaml:7:14: backend.local.llm.model`, for errors."""
    return f"{document.display}{document.where(path)}: {'.'.join(path)}"


def _detail(document: Document, path: tuple[str, ...]) -> str:
    """`~/.stigmer/config.yaml: backend.local.llm.model`, for origins."""
    return f"{document.display}: {'.'.join(path)}"


def _mode(document: Document, raw: dict[str, tuple[Any, tuple[str, ...]]],
          settings: StigmerSettings) -> None:
    if "mode" not in raw:
        return
    text, path = raw["mode"]
    subject = _subject(document, path)
    try:
        mode = parse_mode(text, Source.FILE, subject)
    except ParseError as exc:
        settings.mode_problems.append(exc.violation)
        return
    settings.mode = Value(mode, Source.FILE, _detail(document, path), subject)


def _llm(document: Document, raw: dict[str, tuple[Any, tuple[str, ...]]],
         settings: StigmerSettings) -> None:
    found: dict[str, Value] = {}
    for name in ("provider", "model", "base_url", "api_key"):
        if name not in raw:
            continue
        text, path = raw[name]
        try:
            found[name] = parse_value(name, text, Source.FILE, _detail(document, path),
                                      _subject(document, path))
            if name == "model":  # the CLI writes its own default there, which may retire
                found[name] = replace(found[name], gives_way=True)
        except ParseError as exc:
            settings.problems.append(exc.violation)
    provider = found.get("provider")
    if provider is not None:
        # `stigmer config set llm.provider anthropic` leaves the old model and base URL behind:
        # Stigmer would send `qwen2.5-coder:7b` to Anthropic. Such leftovers are not this
        # provider's, so they are dropped (said once) and the provider's defaults used.
        for name, owner_of in (("model", provider_of_model), ("base_url", provider_of_base_url),
                               ("api_key", provider_of_key)):
            value = found.get(name)
            owner = owner_of(str(value.value)) if value else None
            if value is None or owner is None or owner == provider.value:
                continue
            del found[name]
            shown = "its key" if name == "api_key" else repr(value.value)
            spec = shipped().providers[provider.value]
            default = {"model": spec.default_model, "base_url": spec.default_base_url}.get(name)
            instead = f"; using {spec.name}'s default {default}" if default else ""
            settings.warnings.append(
                f"ignored {value.detail} {shown}: it belongs to {owner}, and "
                f"backend.local.llm.provider is {provider.value} (the CLI keeps the old value "
                f"when only the provider is set){instead}")
    settings.llm.update(found)


def _temporal(document: Document, raw: dict[str, tuple[Any, tuple[str, ...]]],
              settings: StigmerSettings) -> None:
    """Stigmer's ResolveTemporalAddress: managed → localhost:<port or 7233>; not managed with
    an address → that address, external; not managed without one → the managed default."""
    managed = raw.get("temporal.managed")
    port = raw.get("temporal.port")
    address = raw.get("temporal.address")
    spec = runner_fields.BY_PATH["temporal.address"]
    if managed is not None and managed[0] is True:
        where = managed[1]
        port_number = _MANAGED_PORT
        if port is not None:
            where = port[1]
            try:
                port_number = parsing.parse_integer(
                    port[0], Source.FILE, _subject(document, port[1]), name="temporal.address",
                    minimum=1, maximum=65535, rule="a port between 1 and 65535")
            except ParseError as exc:
                settings.problems.append(exc.violation)
                return
        detail = _detail(document, managed[1]) + (
            f" (port from {'.'.join(port[1])})" if port else "")
        settings.runner["temporal.address"] = Value(f"localhost:{port_number}", Source.FILE,
                                                    detail, _subject(document, where))
        settings.runner["temporal.managed"] = Value(True, Source.FILE,
                                                    _detail(document, managed[1]))
        return
    if address is not None:
        subject = _subject(document, address[1])
        try:
            settings.runner["temporal.address"] = runner_fields.parse(
                spec, address[0], Source.FILE, _detail(document, address[1]), subject)
        except ParseError as exc:
            settings.problems.append(exc.violation)
            return
        settings.runner["temporal.managed"] = Value(
            False, Source.FILE, f"{_detail(document, address[1])} is set and "
                                "backend.local.temporal.managed is not: an external Temporal")
    elif managed is not None:  # managed: false, and nowhere to go
        settings.runner_warnings.append(
            f"{_detail(document, managed[1])} is false but backend.local.temporal.address is "
            "not set; using the managed Temporal at localhost:7233, as Stigmer does (set the "
            "address of your Temporal: stigmer config set temporal.managed false needs it)")


def _execution(document: Document, raw: dict[str, tuple[Any, tuple[str, ...]]],
               settings: StigmerSettings) -> None:
    for path in ("execution.mode", "execution.sandbox_image", "execution.sandbox_auto_pull",
                 "execution.sandbox_cleanup", "execution.sandbox_ttl_seconds"):
        if path not in raw:
            continue
        value, where = raw[path]
        try:
            settings.runner[path] = runner_fields.parse(
                runner_fields.BY_PATH[path], value, Source.FILE, _detail(document, where),
                _subject(document, where))
        except ParseError as exc:
            settings.problems.append(exc.violation)
