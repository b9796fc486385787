"""The cascade's vocabulary: where a value came from, a layer of values, a violation, a result.

Plain data, no gRPC and no environment access, so every other module can share it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

FIELDS: Final = ("provider", "model", "base_url", "api_key", "max_tokens", "temperature")
# Fields a provider can claim by their value's shape (a model family, a key prefix, a host).
CLAIMABLE: Final = ("model", "base_url", "api_key")


class Source(enum.Enum):
    """A cascade layer; names match the proto enum `llmconfig.v1.Source` without its prefix."""

    REQUEST = 1
    FLAG = 2
    ENV = 3
    FILE = 4
    DEFAULT = 5


@dataclass(frozen=True, slots=True)
class Value:
    """One value from one place. `detail` names the place; it never contains a secret."""

    value: Any
    source: Source
    detail: str
    # The request field path or the variable/flag/file key, for error subjects.
    subject: str = ""
    # Notes to emit as warnings if (and only if) this value is the one used.
    notes: tuple[str, ...] = ()
    # Written by a tool on the user's behalf (Stigmer's CLI saves its own default model), not
    # chosen by a person: a model the provider has since retired gives way to its replacement,
    # as a default does, instead of stopping the server.
    gives_way: bool = False


@dataclass(frozen=True, slots=True)
class Layer:
    """What one place (the request, the flags, the environment, a file section) says.

    `generic` values apply to whichever provider is resolved; `scoped` values (ANTHROPIC_API_KEY,
    OLLAMA_HOST, --anthropic-key, …) apply only to their own provider. Keys are LLM field names
    (`model`) and runner field paths (`temporal.address`): one layer feeds both cascades.

    `problems` are values of this place that could not be parsed (each names its field, so only
    the cascade that uses the field fails); `broken` says the whole place is unusable (a config
    file that cannot be read), which fails every resolution that includes the layer.
    """

    source: Source
    name: str
    generic: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    scoped: Mapping[str, Mapping[str, Value]] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()  # about the place or its LLM values
    runner_warnings: tuple[str, ...] = ()
    problems: tuple[Violation, ...] = ()
    broken: tuple[Violation, ...] = ()

    def problems_for(self, fields: frozenset[str] | tuple[str, ...]) -> tuple[Violation, ...]:
        """What stops a resolution of `fields` that includes this layer."""
        return (*self.broken, *(p for p in self.problems if p.field in fields))

    def candidates(self, name: str, provider: str) -> tuple[Value, ...]:
        """The values this layer offers for a field, best first."""
        found = []
        if (generic := self.generic.get(name)) is not None:
            found.append(generic)
        if (scoped := self.scoped.get(provider, {}).get(name)) is not None:
            found.append(scoped)
        return tuple(found)

    def is_empty(self) -> bool:
        return not (self.generic or self.scoped or self.warnings or self.runner_warnings
                    or self.problems or self.broken)


class Reason(enum.StrEnum):
    """Machine-readable reasons, in UPPER_SNAKE_CASE as google.rpc.ErrorInfo wants them."""

    UNKNOWN_PROVIDER = "UNKNOWN_PROVIDER"
    UNKNOWN_MODE = "UNKNOWN_MODE"
    EMPTY_VALUE = "EMPTY_VALUE"
    INVALID_URL = "INVALID_URL"
    INVALID_NUMBER = "INVALID_NUMBER"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    PROVIDER_MISMATCH = "PROVIDER_MISMATCH"
    API_KEY_MISSING = "API_KEY_MISSING"
    SECRET_FILE_UNREADABLE = "SECRET_FILE_UNREADABLE"
    CONFLICTING_SETTINGS = "CONFLICTING_SETTINGS"
    CONFIG_FILE_INVALID = "CONFIG_FILE_INVALID"
    CONFIG_FILE_MISSING = "CONFIG_FILE_MISSING"
    VALUE_TOO_LONG = "VALUE_TOO_LONG"
    CONTROL_CHARACTER = "CONTROL_CHARACTER"
    UNEXPECTED_WHITESPACE = "UNEXPECTED_WHITESPACE"
    INVALID_API_KEY = "INVALID_API_KEY"
    UNKNOWN_NETWORK = "UNKNOWN_NETWORK"
    REQUIRED_VALUE_MISSING = "REQUIRED_VALUE_MISSING"
    INVALID_VALUE = "INVALID_VALUE"
    INVALID_SESSION_ID = "INVALID_SESSION_ID"
    MODEL_RETIRED = "MODEL_RETIRED"


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing wrong. `subject` is the request field path (`overrides.temperature`) for a
    request value, otherwise the variable, flag or file key the bad value came from."""

    field: str
    reason: Reason
    message: str
    source: Source
    subject: str

    @property
    def caused_by_request(self) -> bool:
        return self.source is Source.REQUEST


class ConfigError(Exception):
    """The inputs cannot produce a valid configuration. Carries every violation found."""

    def __init__(self, violations: list[Violation] | tuple[Violation, ...]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(v.message for v in self.violations))

    @property
    def caused_by_request(self) -> bool:
        return any(v.caused_by_request for v in self.violations)


@dataclass(frozen=True, slots=True)
class Origin:
    field: str
    source: Source
    detail: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """One resolved, validated configuration and how it was reached."""

    mode: str
    provider: str
    model: str
    requested_model: str
    base_url: str
    openai_base_url: str
    api_key: str
    api_key_hint: str
    max_tokens: int | None
    temperature: float | None
    origins: tuple[Origin, ...]
    warnings: tuple[str, ...]
    revision: str

    @property
    def api_key_present(self) -> bool:
        return bool(self.api_key)

    def origin_of(self, name: str) -> Origin:
        return next(o for o in self.origins if o.field == name)


class HealthStatus(enum.Enum):
    """A provider check's verdict; names match the proto enum `llmconfig.v1.HealthStatus`
    without its prefix."""

    HEALTHY = 1
    UNREACHABLE = 2
    TIMEOUT = 3
    UNAUTHENTICATED = 4
    MODEL_NOT_FOUND = 5
    NOT_CONFIGURED = 6
    RATE_LIMITED = 7
    UNAVAILABLE = 8
    BAD_RESPONSE = 9
    QUOTA_EXCEEDED = 10


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What a provider probe checks, and with which budget."""

    provider: str
    base_url: str
    model: str
    api_key: str
    key_hint: str
    key_origin: str  # "ANTHROPIC_API_KEY", "request overrides.api_key", … (never the key)
    timeout: float
    in_container: bool = False
    display_name: str = ""  # "vLLM": how messages name the provider (default: its name)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A probe's answer."""

    status: HealthStatus
    message: str
    model_available: bool = False
    available_models: tuple[str, ...] = ()
    server_version: str = ""
