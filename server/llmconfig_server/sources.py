"""Sources → layers. Each source (request overrides, server flags, environment, config file) is
read once into a `Layer`; values are parsed here so that a bad one is reported with the exact
variable, flag or file key it came from. Server-side sources are read once at startup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from . import config_file, files
from .catalog import MODES, Catalog, shipped
from .config_file import ConfigFileError, LoadedFile
from .domain import FIELDS, ConfigError, Layer, Reason, Source, Value, Violation
from .files import FileProblem
from .parsing import (
    ParseError,
    control_character,
    parse_mode,
    parse_ollama_host,
    parse_value,
    shorten_path,
)

if TYPE_CHECKING:
    from .config_schema import LLMSection

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


def environment_variables(catalog: Catalog | None = None) -> tuple[str, ...]:
    """Every variable the cascade reads (the README's table is checked against the shipped
    catalog's; an operator's catalog may add providers with variables of their own)."""
    providers = (catalog or shipped()).providers.values()
    names = [MODE_ENV, config_file.CONFIG_ENV, *ENV_FOR_FIELD.values(),
             *DEPRECATED_ENV_FOR_FIELD.values()]
    for spec in providers:
        names += [*filter(None, (spec.key_env, spec.host_env)), *spec.base_url_envs]
    names += [f"{name}_FILE" for name in (ENV_FOR_FIELD["api_key"],
                                          *(s.key_env for s in providers if s.key_env))]
    return tuple(sorted(set(names)))


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
    file_common: Layer
    file_modes: Mapping[str, Layer]
    file: LoadedFile | None
    # The providers and models these sources are read and resolved with.
    catalog: Catalog = field(default_factory=shipped)

    def layers_for(self, mode: str) -> tuple[Layer, ...]:
        """Highest first; a mode's file section beats the file's common section."""
        return (self.flags, self.env, self.file_modes[mode], self.file_common)

    @property
    def file_display(self) -> str | None:
        return self.file.display if self.file else None


class _Collector:
    """Parses values while collecting every violation, so one startup error lists them all."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.violations: list[Violation] = []
        self.catalog = catalog or shipped()

    def parse(self, name: str, raw: Any, source: Source, subject: str, detail: str = "",
              ) -> Value | None:
        try:
            return parse_value(name, raw, source, detail or subject, subject,
                               self.catalog.names)
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
    """Read flags, environment and config file; raise ConfigError listing every bad input."""
    sources, violations = read_server_sources(flags, environ, cwd, home, catalog)
    if violations:
        raise ConfigError(violations)
    return sources


def read_server_sources(
    flags: ServerFlags, environ: Mapping[str, str], cwd: Path, home: Path,
    catalog: Catalog | None = None,
) -> tuple[ServerSources, list[Violation]]:
    """The sources made of every input that parses, and the violations of those that do not
    (so a startup error can list them with the cascade's own, e.g. a range error beside a
    parse error)."""
    collect = _Collector(catalog)
    flag_layer = _flag_layer(flags, collect)
    env_layer = _env_layer(environ, collect)
    loaded = _load_file(flags, environ, cwd, home, collect)
    file_common, file_modes = _file_layers(loaded, collect)
    mode = _server_mode(flags, environ, loaded, collect) or \
        Value("local", Source.DEFAULT, "default mode", "mode")
    return (ServerSources(mode, flag_layer, env_layer, file_common, file_modes, loaded,
                          collect.catalog),
            collect.violations)


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


def _flag_layer(flags: ServerFlags, collect: _Collector) -> Layer:
    generic: dict[str, Value] = {}
    for name, raw in flags.values.items():
        if value := collect.parse(name, raw, Source.FLAG, FLAG_FOR_FIELD[name]):
            generic[name] = value
    scoped: dict[str, dict[str, Value]] = {}
    for provider, raw in flags.scoped_keys.items():
        spec = collect.catalog.providers.get(provider)
        flag = (spec.key_flag if spec else None) or provider
        if value := collect.parse("api_key", raw, Source.FLAG, flag):
            scoped.setdefault(provider, {})["api_key"] = value
    return Layer(Source.FLAG, "flags", MappingProxyType(generic), _freeze(scoped))


def _env_layer(environ: Mapping[str, str], collect: _Collector) -> Layer:
    warnings: list[str] = []
    generic: dict[str, Value] = {}
    for name in FIELDS:
        current = ENV_FOR_FIELD[name]
        value = _env_value(name, current, environ, collect)
        old = DEPRECATED_ENV_FOR_FIELD.get(name)
        if old and environ.get(old, "").strip():
            if not environ.get(current, "").strip():
                value = _env_value(name, old, environ, collect)
                warnings.append(f"{old} is deprecated; rename it to {current}")
            else:
                warnings.append(f"{old} is deprecated and ignored because {current} is set")
        if value is not None:
            generic[name] = value
    scoped: dict[str, dict[str, Value]] = {}
    for spec in collect.catalog.providers.values():
        own: dict[str, Value] = {}
        if spec.key_env and (key := _env_value("api_key", spec.key_env, environ, collect)):
            own["api_key"] = key
        urls = [_env_value("base_url", variable, environ, collect)
                for variable in spec.base_url_envs]
        if spec.host_env:
            urls.append(_host_value(spec.host_env, environ, collect))
        if url := next((u for u in urls if u is not None), None):
            own["base_url"] = url
        if own:
            scoped[spec.name] = own
    return Layer(Source.ENV, "environment", MappingProxyType(generic), _freeze(scoped),
                 tuple(warnings))


def _env_value(name: str, variable: str, environ: Mapping[str, str], collect: _Collector,
               ) -> Value | None:
    """A variable's value; secrets also come from VARIABLE_FILE (Docker/Kubernetes secrets)."""
    raw = environ.get(variable, "")
    if name not in SECRET_FIELDS:
        return collect.parse(name, raw, Source.ENV, variable) if raw.strip() else None
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
        return collect.parse(name, raw, Source.ENV, variable)
    if not path.strip():
        return None
    return _secret_file_value(name, file_variable, path, collect)


def _secret_file_value(name: str, file_variable: str, path: str, collect: _Collector,
                       ) -> Value | None:
    """A key from a file: a regular file of at most 64 KiB holding the key on one line (a final
    newline or CRLF and a byte-order mark are what editors and `echo` add, and are dropped)."""
    def refuse(reason: Reason, message: str) -> None:
        collect.violations.append(Violation(name, reason, f"{file_variable}: {message}",
                                            Source.ENV, file_variable))

    if found := control_character(path):
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
    return collect.parse(name, secret, Source.ENV, file_variable,
                         f"{file_variable} ({shown_path})")


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


def _load_file(flags: ServerFlags, environ: Mapping[str, str], cwd: Path, home: Path,
               collect: _Collector) -> LoadedFile | None:
    try:
        path, named_by = config_file.locate(flags.config, environ, cwd, home)
        if path is None:
            return None
        return config_file.load(path, home, named_by)
    except ConfigFileError as exc:
        collect.violations.extend(exc.violations)
        return None


def _file_layers(loaded: LoadedFile | None, collect: _Collector,
                 ) -> tuple[Layer, Mapping[str, Layer]]:
    if loaded is None:
        empty = Layer(Source.FILE, "config file")
        return empty, MappingProxyType(dict.fromkeys(MODES, empty))
    content = loaded.content
    common = _section_layer(loaded.display, "llm", content.llm, collect)
    modes = {}
    for mode in MODES:
        section = getattr(content, mode)
        modes[mode] = _section_layer(loaded.display, f"{mode}.llm", section and section.llm,
                                     collect)
    return common, MappingProxyType(modes)


def _section_layer(shown: str, prefix: str, section: LLMSection | None, collect: _Collector,
                   ) -> Layer:
    generic: dict[str, Value] = {}
    for name in FIELDS:
        raw = getattr(section, name, None) if section else None
        if raw is not None and (value := collect.parse(name, raw, Source.FILE,
                                                       f"{shown}: {prefix}.{name}")):
            generic[name] = value
    return Layer(Source.FILE, f"{shown}: {prefix}", MappingProxyType(generic))


def _server_mode(flags: ServerFlags, environ: Mapping[str, str], loaded: LoadedFile | None,
                 collect: _Collector) -> Value | None:
    candidates = [
        (flags.mode, Source.FLAG, "--mode"),
        (environ.get(MODE_ENV), Source.ENV, MODE_ENV),
        (loaded.content.mode if loaded else None, Source.FILE,
         f"{loaded.display}: mode" if loaded else ""),
    ]
    for raw, source, subject in candidates:
        if raw is not None and raw.strip():
            try:
                return Value(parse_mode(raw, source, subject), source, subject, subject)
            except ParseError as exc:
                collect.violations.append(exc.violation)
                return None
    return Value("local", Source.DEFAULT, "default mode", "mode")


def _freeze(scoped: dict[str, dict[str, Value]]) -> Mapping[str, Mapping[str, Value]]:
    return MappingProxyType({k: MappingProxyType(v) for k, v in scoped.items()})
