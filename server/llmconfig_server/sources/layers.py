"""Sources → layers. Each source (request overrides, server flags, environment, llmconfig's own
config file, Stigmer's config file) is read once into a `Layer` holding both the LLM values and
the runner's; values are parsed here, by the one grammar of parsing.py, so that a bad one is
reported with the exact variable, flag or file key it came from. Server-side sources are read
once per server state (at startup and on every reload)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from llmconfig_server.resolve import runner_fields
from llmconfig_server.resolve.catalog import MODES, Catalog, shipped
from llmconfig_server.resolve.domain import (
    FIELDS,
    ConfigError,
    Layer,
    Reason,
    Source,
    Value,
    Violation,
)
from llmconfig_server.resolve.parsing import (
    ParseError,
    control_character,
    parse_mode,
    parse_ollama_host,
    parse_value,
    shorten_path,
)
from llmconfig_server.resolve.runner_fields import RunnerField
from llmconfig_server.sources import config_file, stigmer_file
from llmconfig_server.sources.config_file import ConfigFileError, Document, LoadedFile
from llmconfig_server.support import files
from llmconfig_server.support.files import FileProblem

if TYPE_CHECKING:
    from llmconfig_server.sources.config_schema import LLMSection

# The server flags that feed the cascade, by field. (--anthropic-key is provider-scoped and
# lives in the catalog.)
FLAG_FOR_FIELD: Final = MappingProxyType(
    {
        "provider": "--llm-provider",
        "model": "--llm-model",
        "base_url": "--llm-base-url",
        "api_key": "--llm-api-key",
        "max_tokens": "--llm-max-tokens",
        "temperature": "--llm-temperature",
    }
)
ENV_FOR_FIELD: Final = MappingProxyType({f: f"STIGMER_LLM_{f.upper()}" for f in FIELDS})
DEPRECATED_ENV_FOR_FIELD: Final = MappingProxyType(
    {"provider": "LLM_PROVIDER", "model": "LLM_MODEL", "base_url": "LLM_BASE_URL"}
)
MODE_ENV: Final = "MODE"
SECRET_FIELDS: Final = frozenset({"api_key"})
# A key, or a certificate chain at most; a runaway or special file is refused, not read.
SECRET_FILE_LIMIT: Final = 64 * 1024
LLM_FIELDS: Final = frozenset(FIELDS)

# Parses one raw value: (raw, subject, detail) → Value, or ParseError.
_Parse = Callable[[Any, str, str], Value]


def environment_variables(catalog: Catalog | None = None) -> tuple[str, ...]:
    """Every variable the cascade reads (docs/configuration.md's table is checked against the
    shipped catalog's; an operator's catalog may add providers with variables of their own)."""
    providers = (catalog or shipped()).providers.values()
    names = [MODE_ENV, config_file.CONFIG_ENV, config_file.DEPRECATED_CONFIG_ENV,
             *ENV_FOR_FIELD.values(), *DEPRECATED_ENV_FOR_FIELD.values()]
    for spec in providers:
        names += [*filter(None, (spec.key_env, spec.host_env)), *spec.base_url_envs]
    names += [f"{name}_FILE" for name in (ENV_FOR_FIELD["api_key"],
                                          *(s.key_env for s in providers if s.key_env))]
    return tuple(sorted({*names, *runner_fields.environment_variables()}))


@dataclass(frozen=True, slots=True)
class ServerFlags:
    """The cascade-relevant flags the server was started with (raw strings, parsed later so a
    bad one is reported like any other bad input)."""

    mode: str | None = None
    config: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)  # field → raw, for FLAG_FOR_FIELD
    scoped_keys: Mapping[str, str] = field(default_factory=dict)  # provider → raw key


@dataclass(frozen=True, slots=True)
class ServerSources:
    """Everything the server itself knows, read once. The request layer is added per call."""

    mode: Value
    flags: Layer
    env: Layer
    file_common: Layer  # llmconfig's own file: its common llm: and runner: sections
    file_modes: Mapping[str, Layer]  # … and its local:/cloud: sections
    stigmer_modes: Mapping[str, Layer]  # Stigmer's file (backend.local: local mode only)
    file: LoadedFile | None  # llmconfig's own file
    stigmer_file: str | None = None  # Stigmer's file, as shown, when it was read
    mode_problems: tuple[Violation, ...] = ()  # the server's mode cannot be known
    watched: tuple[Path, ...] = ()  # the config files to watch, present or not
    # The providers and models these sources are read and resolved with.
    catalog: Catalog = field(default_factory=shipped)

    def layers_for(self, mode: str) -> tuple[Layer, ...]:
        """Highest first: flags, environment, then the config-file layer — llmconfig's own
        file (its mode section, then its common section) above Stigmer's."""
        return (self.flags, self.env, self.file_modes[mode], self.file_common,
                self.stigmer_modes[mode])

    @property
    def file_display(self) -> str | None:
        return self.file.display if self.file else None

    def all_layers(self) -> tuple[Layer, ...]:
        """Each layer once (the common ones are in every mode's list)."""
        seen = {id(layer): layer for mode in MODES for layer in self.layers_for(mode)}
        return tuple(seen.values())

    def problems(self) -> tuple[Violation, ...]:
        """Every input that could not be used, each once (for the startup report)."""
        found = [*self.mode_problems]
        for layer in self.all_layers():
            found += [*layer.broken, *layer.problems]
        return tuple(dict.fromkeys(found))

    def llm_problems(self, mode: str) -> tuple[Violation, ...]:
        """The inputs that stop `mode`'s LLM configuration."""
        found = [*self.mode_problems]
        for layer in self.layers_for(mode):
            found += layer.problems_for(LLM_FIELDS)
        return tuple(dict.fromkeys(found))


class _Collector:
    """Parses values while collecting every violation, so one error lists them all."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.violations: list[Violation] = []
        self.catalog = catalog or shipped()

    def parse(self, name: str, raw: Any, source: Source, subject: str, detail: str = "",
              ) -> Value | None:
        try:  # (not through attempt(): a request's overrides are parsed on every call)
            return parse_value(name, raw, source, detail or subject, subject,
                               self.catalog.names)
        except ParseError as exc:
            self.violations.append(exc.violation)
            return None

    def attempt(self, parse: Callable[[], Value]) -> Value | None:
        try:
            return parse()
        except ParseError as exc:
            self.violations.append(exc.violation)
            return None

    def raise_if_any(self) -> None:
        if self.violations:
            raise ConfigError(self.violations)


def load_server_sources(
    flags: ServerFlags, environ: Mapping[str, str], cwd: Path, home: Path,
    catalog: Catalog | None = None,
) -> ServerSources:
    """Read flags, environment and config files; raise ConfigError listing every bad input."""
    sources = read_server_sources(flags, environ, cwd, home, catalog)
    if problems := sources.problems():
        raise ConfigError(problems)
    return sources


def read_server_sources(
    flags: ServerFlags, environ: Mapping[str, str], cwd: Path, home: Path,
    catalog: Catalog | None = None,
) -> ServerSources:
    """The sources made of every input, each layer carrying the problems of the inputs that
    did not parse (so a resolution lists them with the cascade's own, e.g. a range error beside
    a parse error, and a problem in one mode's inputs leaves the other mode usable)."""
    found = _find_files(flags, environ, cwd, home)
    mode_problems: list[Violation] = []
    mode = _server_mode(flags, environ, found, mode_problems)
    catalog = catalog or shipped()
    file_common, file_modes = _own_file_layers(found, catalog)
    return ServerSources(
        mode=mode,
        flags=_flag_layer(flags, catalog),
        env=_env_layer(environ, catalog),
        file_common=file_common,
        file_modes=file_modes,
        stigmer_modes=_stigmer_layers(found),
        file=found.own,
        stigmer_file=found.stigmer.display if found.stigmer else (
            found.stigmer_shown if found.stigmer_broken else None),
        mode_problems=tuple(dict.fromkeys(mode_problems)),
        watched=tuple(dict.fromkeys(found.watched)),
        catalog=catalog,
    )


def request_layer(overrides: Mapping[str, Any], catalog: Catalog | None = None) -> Layer:
    """The request's overrides (only the fields the caller set) as the top layer."""
    collect = _Collector(catalog)
    generic: dict[str, Value] = {}
    for name in FIELDS:
        if name in overrides:
            subject = f"overrides.{name}"
            detail = "request " + subject
            if (value := collect.parse(name, overrides[name], Source.REQUEST, subject, detail)):
                generic[name] = value
    collect.raise_if_any()
    return Layer(Source.REQUEST, "request", MappingProxyType(generic))


def request_mode(raw: str) -> str:
    try:
        return parse_mode(raw, Source.REQUEST, "mode")
    except ParseError as exc:
        raise ConfigError([exc.violation]) from None


def _flag_layer(flags: ServerFlags, catalog: Catalog) -> Layer:
    collect = _Collector(catalog)
    generic: dict[str, Value] = {}
    for name, raw in flags.values.items():
        if value := collect.parse(name, raw, Source.FLAG, FLAG_FOR_FIELD[name]):
            generic[name] = value
    scoped: dict[str, dict[str, Value]] = {}
    for provider, raw in flags.scoped_keys.items():
        spec = catalog.providers.get(provider)
        flag = (spec.key_flag if spec else None) or provider
        if value := collect.parse("api_key", raw, Source.FLAG, flag):
            scoped.setdefault(provider, {})["api_key"] = value
    return Layer(Source.FLAG, "flags", MappingProxyType(generic), _freeze(scoped),
                 problems=tuple(collect.violations))


# -- the environment ------------------------------------------------------------------------

def _env_layer(environ: Mapping[str, str], catalog: Catalog) -> Layer:
    collect = _Collector(catalog)
    warnings: list[str] = []
    generic: dict[str, Value] = {}
    for name in FIELDS:
        current = ENV_FOR_FIELD[name]
        value = _llm_variable(name, current, environ, collect)
        old = DEPRECATED_ENV_FOR_FIELD.get(name)
        if old and environ.get(old, "").strip():
            if not environ.get(current, "").strip():
                value = _llm_variable(name, old, environ, collect)
                warnings.append(f"{old} is deprecated; rename it to {current}")
            else:
                warnings.append(f"{old} is deprecated and ignored because {current} is set")
        if value is not None:
            generic[name] = value
    scoped: dict[str, dict[str, Value]] = {}
    for spec in catalog.providers.values():
        own: dict[str, Value] = {}
        if spec.key_env and (key := _llm_variable("api_key", spec.key_env, environ, collect)):
            own["api_key"] = key
        urls = [_llm_variable("base_url", variable, environ, collect)
                for variable in spec.base_url_envs]
        if spec.host_env:
            urls.append(_host_value(spec.host_env, environ, collect))
        if url := next((u for u in urls if u is not None), None):
            own["base_url"] = url
        if own:
            scoped[spec.name] = own
    for runner_spec in runner_fields.FIELDS:
        if runner_spec.variable and (value := _runner_variable(runner_spec, environ, collect)):
            generic[runner_spec.path] = value
    if "temporal.address" in generic:  # Stigmer's rule: an address set means an external one
        generic["temporal.managed"] = Value(
            False, Source.ENV, "TEMPORAL_SERVICE_ADDRESS is set: an external Temporal")
    return Layer(Source.ENV, "environment", MappingProxyType(generic), _freeze(scoped),
                 tuple(warnings), problems=tuple(collect.violations))


def _llm_variable(name: str, variable: str, environ: Mapping[str, str], collect: _Collector,
                  ) -> Value | None:
    def parse(raw: Any, subject: str, detail: str) -> Value:
        return parse_value(name, raw, Source.ENV, detail, subject, collect.catalog.names)

    return read_variable(name, variable, environ, collect, parse, secret=name in SECRET_FIELDS)


def _runner_variable(spec: RunnerField, environ: Mapping[str, str], collect: _Collector,
                     ) -> Value | None:
    def parse(raw: Any, subject: str, detail: str) -> Value:
        return runner_fields.parse(spec, raw, Source.ENV, detail, subject)

    assert spec.variable is not None
    return read_variable(spec.path, spec.variable, environ, collect, parse, secret=spec.secret)


def read_variable(name: str, variable: str, environ: Mapping[str, str], collect: _Collector,
                  parse: _Parse, *, secret: bool) -> Value | None:
    """A variable's value (blank counts as unset); a secret also comes from VARIABLE_FILE
    (Docker and Kubernetes secrets), never from both."""
    raw = environ.get(variable, "")
    if not secret:
        return collect.attempt(lambda: parse(raw, variable, variable)) if raw.strip() else None
    file_variable = f"{variable}_FILE"
    path = environ.get(file_variable, "")
    if raw.strip() and path.strip():
        collect.violations.append(Violation(
            name, Reason.CONFLICTING_SETTINGS,
            f"{variable} and {file_variable} are both set; keep only one of them",
            Source.ENV, variable,
        ))
        return None
    if raw.strip():
        return collect.attempt(lambda: parse(raw, variable, variable))
    if not path.strip():
        return None
    return _secret_file_value(name, file_variable, path, collect, parse)


def _secret_file_value(name: str, file_variable: str, path: str, collect: _Collector,
                       parse: _Parse) -> Value | None:
    """A secret from a file: a regular file of at most 64 KiB holding it on one line (a final
    newline or CRLF and a byte-order mark are what editors and `echo` add, and are dropped)."""
    def refuse(reason: Reason, message: str) -> None:
        collect.violations.append(Violation(name, reason, f"{file_variable}: {message}",
                                            Source.ENV, file_variable))

    if found := control_character(path):
        # Refused before it is shown anywhere: a newline in a path would forge a log line.
        refuse(Reason.SECRET_FILE_UNREADABLE,
               f"the file name contains a control character ({found[1]} at position "
               f"{found[0]})")
        return None
    shown_path = shorten_path(path)
    try:
        text = files.read_text(path, limit=SECRET_FILE_LIMIT)
    except FileProblem as exc:
        refuse(Reason.SECRET_FILE_UNREADABLE, str(exc).replace(path, shown_path))
        return None
    secret = text.removesuffix("\n").removesuffix("\r")
    if "\n" in secret or "\r" in secret:
        refuse(Reason.INVALID_API_KEY,
               f"{shown_path} has more than one line; a key file holds only the key (one "
               "final newline is fine)")
        return None
    return collect.attempt(lambda: parse(secret, file_variable,
                                         f"{file_variable} ({shown_path})"))


def _host_value(variable: str, environ: Mapping[str, str], collect: _Collector) -> Value | None:
    raw = environ.get(variable, "")
    if not raw.strip():
        return None
    try:
        url, notes = parse_ollama_host(raw, Source.ENV, variable)
    except ParseError as exc:
        collect.violations.append(exc.violation)
        return None
    return Value(url, Source.ENV, variable, variable, notes)


# -- the config files -----------------------------------------------------------------------

@dataclass(slots=True)
class _Found:
    """The config files: llmconfig's own (or why it cannot be used), Stigmer's (or why not),
    notes about deprecated names and places, and every path worth watching."""

    own: LoadedFile | None = None
    own_named: bool = False  # a file was named or found for llmconfig's own, usable or not
    own_broken: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stigmer: stigmer_file.StigmerSettings | None = None
    stigmer_shown: str = ""
    stigmer_broken: list[Violation] = field(default_factory=list)
    watched: list[Path] = field(default_factory=list)


def _find_files(flags: ServerFlags, environ: Mapping[str, str], cwd: Path, home: Path,
                ) -> _Found:
    """llmconfig's own file: --config, STIGMER_LLMCONFIG_CONFIG, STIGMER_CONFIG (deprecated),
    ~/.stigmer/llmconfig.yaml, then — deprecated, still read with a warning — an
    ./.stigmer/config.yaml or a ~/.stigmer/config.yaml in llmconfig's format. Stigmer's file:
    ~/.stigmer/config.yaml in Stigmer's format (where Stigmer's CLI writes it)."""
    found = _Found()
    stigmer_path = home / config_file.STIGMER_DEFAULT
    found.watched += [home / config_file.OWN_DEFAULT, stigmer_path]
    try:
        located = config_file.locate(flags.config, environ, cwd, home)
    except ConfigFileError as exc:
        found.own_named = True
        found.own_broken += exc.violations
    else:
        found.notes += located.notes
        if (path := located.path) is not None:
            found.watched.append(path)
            _take_own(found, partial(config_file.load, path, home, located.named_by))
    legacy = cwd / config_file.STIGMER_DEFAULT
    if not found.own_named and os.path.lexists(legacy) and not _same(legacy, stigmer_path):
        found.watched.append(legacy)
        _legacy_own_file(found, legacy, home)
    stigmer_doc = _read_stigmer_file(found, stigmer_path, home)
    if stigmer_doc is not None and stigmer_doc.is_llmconfigs():
        shown = stigmer_doc.display
        if found.own_named:
            own = found.own.display if found.own else "named elsewhere"
            found.notes.append(
                f"{shown} is in llmconfig's own format and is ignored: llmconfig's own file is "
                f"{own}; move what it holds there ({shown} belongs to Stigmer's CLI, which "
                "drops keys it does not know when it saves)")
        else:
            found.notes.append(
                f"{shown} is in llmconfig's own format, which now belongs in "
                f"~/{config_file.OWN_DEFAULT}: Stigmer's CLI owns {shown} and drops keys it "
                f"does not know when it saves. Still read for now; move it: mv {shown} "
                f"~/{config_file.OWN_DEFAULT}")
            _take_own(found, partial(config_file.validate, stigmer_doc))
    elif stigmer_doc is not None:
        found.stigmer = stigmer_file.read(stigmer_doc)
    return found


def _take_own(found: _Found, load: Callable[[], LoadedFile]) -> None:
    found.own_named = True
    try:
        found.own = load()
    except ConfigFileError as exc:
        found.own_broken += exc.violations


def _legacy_own_file(found: _Found, path: Path, home: Path) -> None:
    """./.stigmer/config.yaml: wave 1 looked for llmconfig's own file there."""
    try:
        document = config_file.read(path, home, "found")
    except ConfigFileError as exc:  # a FIFO there is reported, not skipped
        found.own_named = True
        found.own_broken += exc.violations
        return
    if document.is_stigmers():
        found.notes.append(f"{document.display} is in Stigmer's format and is ignored: "
                           f"Stigmer's file is read from ~/{config_file.STIGMER_DEFAULT} only")
        return
    found.notes.append(
        f"{document.display}: llmconfig's own file is no longer looked for in the working "
        f"directory (deprecated; still read for now): move it to ~/{config_file.OWN_DEFAULT}, "
        f"or name it with --config or {config_file.CONFIG_ENV}")
    _take_own(found, partial(config_file.validate, document))


def _read_stigmer_file(found: _Found, path: Path, home: Path) -> Document | None:
    if not os.path.lexists(path):
        return None
    found.stigmer_shown = config_file.display_path(path, home)
    try:
        return config_file.read(path, home, "found")
    except ConfigFileError as exc:
        found.stigmer_broken += exc.violations
        return None


def _same(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def _own_file_layers(found: _Found, catalog: Catalog) -> tuple[Layer, Mapping[str, Layer]]:
    if found.own is None:
        common = Layer(Source.FILE, "config file", warnings=tuple(found.notes),
                       broken=tuple(found.own_broken))
        empty = Layer(Source.FILE, "config file")
        return common, MappingProxyType(dict.fromkeys(MODES, empty))
    loaded = found.own
    content = loaded.content
    common = _section_layer(loaded.display, "", content.llm, content.runner, catalog,
                            found.notes)
    modes = {}
    for mode in MODES:
        section = getattr(content, mode)
        modes[mode] = _section_layer(loaded.display, f"{mode}.", section and section.llm,
                                     section and section.runner, catalog)
    return common, MappingProxyType(modes)


def _section_layer(shown: str, prefix: str, llm: LLMSection | None, runner: Any,
                   catalog: Catalog, notes: list[str] | None = None) -> Layer:
    """One section of llmconfig's own file: `<prefix>llm.*` and `<prefix>runner.*`."""
    collect = _Collector(catalog)
    generic: dict[str, Value] = {}
    for name in FIELDS:
        raw = getattr(llm, name, None) if llm else None
        if raw is not None and (value := collect.parse(name, raw, Source.FILE,
                                                       f"{shown}: {prefix}llm.{name}")):
            generic[name] = value
    for spec in runner_fields.FIELDS:
        part = getattr(runner, spec.section, None) if runner is not None else None
        raw = getattr(part, spec.key, None) if part is not None else None
        if raw is None:
            continue
        subject = f"{shown}: {prefix}runner.{spec.path}"
        if value := collect.attempt(partial(runner_fields.parse, spec, raw, Source.FILE,
                                            subject, subject)):
            generic[spec.path] = value
    if "temporal.address" in generic:
        generic["temporal.managed"] = Value(
            False, Source.FILE, f"{shown}: {prefix}runner.temporal.address is set: an external "
                                "Temporal")
    name = f"{shown}: {prefix.rstrip('.') or 'common sections'}"
    return Layer(Source.FILE, name, MappingProxyType(generic), warnings=tuple(notes or ()),
                 problems=tuple(collect.violations))


def _stigmer_layers(found: _Found) -> Mapping[str, Layer]:
    """Stigmer's `backend.local` is the local backend: its values are local mode's."""
    empty = Layer(Source.FILE, "Stigmer's config file")
    local = empty
    if found.stigmer_broken:
        local = Layer(Source.FILE, found.stigmer_shown, broken=tuple(found.stigmer_broken))
    elif found.stigmer is not None:
        settings = found.stigmer
        local = Layer(Source.FILE, settings.display,
                      MappingProxyType({**settings.llm, **settings.runner}),
                      warnings=tuple(settings.warnings),
                      runner_warnings=tuple(settings.runner_warnings),
                      problems=tuple(settings.problems), broken=tuple(settings.broken))
    return MappingProxyType({"local": local, "cloud": empty})


# -- the server's mode ------------------------------------------------------------------------

def _server_mode(flags: ServerFlags, environ: Mapping[str, str], found: _Found,
                 problems: list[Violation]) -> Value:
    """--mode, else MODE, else llmconfig's own file's `mode:`, else Stigmer's `backend.type`,
    else local. A file that cannot be read while the mode would come from it leaves the mode
    unknown: that is a problem of its own (the server cannot start on a guess)."""
    default = Value("local", Source.DEFAULT, "default mode", "mode")
    for raw, source, subject in ((flags.mode, Source.FLAG, "--mode"),
                                 (environ.get(MODE_ENV), Source.ENV, MODE_ENV)):
        if raw is not None and raw.strip():
            return _mode_value(raw, source, subject, problems) or default
    if found.own_broken:
        problems += found.own_broken
        return default
    if found.own is not None and (raw := found.own.content.mode) is not None and raw.strip():
        subject = f"{found.own.display}: mode"
        return _mode_value(raw, Source.FILE, subject, problems) or default
    if found.stigmer_broken:
        problems += found.stigmer_broken
        return default
    if found.stigmer is not None:
        if found.stigmer.mode_problems:
            problems += found.stigmer.mode_problems
            return default
        if found.stigmer.mode is not None:
            return found.stigmer.mode
    return default


def _mode_value(raw: str, source: Source, subject: str, problems: list[Violation],
                ) -> Value | None:
    try:
        return Value(parse_mode(raw, source, subject), source, subject, subject)
    except ParseError as exc:
        problems.append(exc.violation)
        return None


def _freeze(scoped: dict[str, dict[str, Value]]) -> Mapping[str, Mapping[str, Value]]:
    return MappingProxyType({k: MappingProxyType(v) for k, v in scoped.items()})
