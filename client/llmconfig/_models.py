"""Immutable results. They mirror the proto but are plain Python: no protobuf in callers' code."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _langchain

if TYPE_CHECKING:
    from ._errors import LLMConfigError


class Source(enum.Enum):
    """The cascade layer a value came from."""

    REQUEST = "request"
    FLAG = "flag"
    ENV = "env"
    FILE = "file"
    DEFAULT = "default"
    UNKNOWN = "unknown"  # a layer this client does not know yet (a newer server)


class HealthStatus(enum.Enum):
    """A provider check's verdict."""

    HEALTHY = "healthy"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    UNAUTHENTICATED = "unauthenticated"
    MODEL_NOT_FOUND = "model_not_found"
    NOT_CONFIGURED = "not_configured"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad_response"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNKNOWN = "unknown"  # a verdict this client does not know yet (a newer server): see `healthy`


class ModelStatus(enum.Enum):
    """A model's lifecycle, in the providers' words."""

    ACTIVE = "active"
    LEGACY = "legacy"
    DEPRECATED = "deprecated"  # still served, with a retirement date
    RETIRED = "retired"  # refused; see `replacement`
    UNKNOWN = "unknown"  # a status this client does not know yet


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model as ListModels answers it."""

    id: str
    provider: str
    aliases: tuple[str, ...]
    status: ModelStatus
    max_output_tokens: int | None
    context_window: int | None
    retires_on: str  # YYYY-MM-DD, or "" when none is announced
    replacement: str
    available: bool  # listed by the provider (Ollama: pulled) at the mode's base URL
    known_from: str  # "catalog", "provider" or "both"
    tier: str
    family: str


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of CheckProviderHealth."""

    status: HealthStatus
    healthy: bool
    message: str  # what is wrong and the command that fixes it
    provider: str
    base_url: str
    model: str
    model_available: bool
    available_models: tuple[str, ...]
    server_version: str
    latency: float  # seconds
    checked_at: datetime | None  # None when the server sent a time Python cannot hold
    cached: bool


@dataclass(frozen=True, slots=True)
class Origin:
    field: str
    source: Source
    detail: str


@dataclass(frozen=True, slots=True)
class LLMConfig:
    provider: str
    model: str
    requested_model: str
    base_url: str
    openai_base_url: str
    api_key: str  # empty unless resolved with include_secrets=True
    api_key_present: bool
    api_key_hint: str
    max_tokens: int | None  # None: the provider's default
    temperature: float | None  # None: the provider's default
    mode: str

    def chat_model_kwargs(self, *, openai_compatible: bool = False) -> dict[str, Any]:
        """Keyword arguments for the provider's LangChain chat model (ChatAnthropic, ChatOllama
        with an explicit base_url, ChatOpenAI). `openai_compatible=True` targets ChatOpenAI at
        `openai_base_url` (Ollama's /v1). Needs `include_secrets=True` for keyed providers."""
        return _langchain.chat_model_kwargs(self, openai_compatible)

    def chat_model_class(self, *, openai_compatible: bool = False) -> str:
        """The chat model's import path, e.g. "langchain_anthropic.ChatAnthropic"."""
        return ".".join(_langchain.chat_model_class(self, openai_compatible))

    def chat_model(self, *, openai_compatible: bool = False) -> Any:
        """The LangChain chat model itself (pip install 'llmconfig[langchain]')."""
        return _langchain.chat_model(self, openai_compatible)

    def __repr__(self) -> str:
        # Never print a key, even when the caller asked for it.
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name != "api_key"
        )
        return f"LLMConfig({shown})"


@dataclass(frozen=True, slots=True)
class Resolved:
    """The answer of ResolveLLMConfig. `stale`: a watched client served it from memory while
    its stream was down (never longer than its `max_staleness`); always False otherwise."""

    config: LLMConfig
    origins: tuple[Origin, ...]
    warnings: tuple[str, ...]
    revision: str
    stale: bool = field(default=False, compare=False)

    def origin(self, field: str) -> Origin:
        """Where `field` came from (e.g. `origin("model").detail == "STIGMER_LLM_MODEL"`)."""
        for origin in self.origins:
            if origin.field == field:
                return origin
        raise KeyError(field)


@dataclass(frozen=True, slots=True)
class Change:
    """One event of `watch()`: the new resolution, or the error that resolving gives now (the
    watch goes on: a later event may bring a valid configuration back)."""

    resolved: Resolved | None
    error: LLMConfigError | None = None

    @property
    def ok(self) -> bool:
        return self.resolved is not None


@dataclass(frozen=True, slots=True)
class Temporal:
    address: str
    namespace: str
    task_queue: str
    max_concurrency: int
    managed: bool = True  # the daemon runs Temporal itself (no address was given)


@dataclass(frozen=True, slots=True)
class Backend:
    endpoint: str
    api_key: str = field(repr=False)  # only with include_secrets
    api_key_present: bool
    api_key_hint: str


@dataclass(frozen=True, slots=True)
class Sandbox:
    type: str  # "filesystem" or "daytona"
    root_dir: str
    snapshot_id: str
    daytona_api_key: str = field(repr=False)
    daytona_api_key_present: bool
    daytona_api_key_hint: str


@dataclass(frozen=True, slots=True)
class Redis:
    enabled: bool
    host: str
    port: int
    password: str = field(repr=False)
    password_present: bool


@dataclass(frozen=True, slots=True)
class Execution:
    """How the runner executes an agent's commands (Stigmer's STIGMER_EXECUTION_MODE and
    STIGMER_SANDBOX_*)."""

    mode: str  # "local", "sandbox" or "auto"
    sandbox_image: str
    sandbox_auto_pull: bool
    sandbox_cleanup: bool
    sandbox_ttl_seconds: int


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Everything a runner reads besides its LLM."""

    mode: str
    temporal: Temporal
    backend: Backend
    sandbox: Sandbox
    redis: Redis
    execution: Execution


@dataclass(frozen=True, slots=True)
class RunnerResolved:
    """The answer of ResolveRunnerConfig: the runner's settings and the mode's LLM config.
    `stale` as in `Resolved` (then `llm.stale` too)."""

    config: RunnerConfig
    llm: Resolved
    origins: tuple[Origin, ...]  # field paths such as "temporal.address"
    warnings: tuple[str, ...]
    revision: str
    stale: bool = field(default=False, compare=False)

    def origin(self, path: str) -> Origin:
        for origin in self.origins:
            if origin.field == path:
                return origin
        raise KeyError(path)
