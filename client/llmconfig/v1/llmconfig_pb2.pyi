import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_REQUEST: _ClassVar[Source]
    SOURCE_FLAG: _ClassVar[Source]
    SOURCE_ENV: _ClassVar[Source]
    SOURCE_FILE: _ClassVar[Source]
    SOURCE_DEFAULT: _ClassVar[Source]

class HealthStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATUS_UNSPECIFIED: _ClassVar[HealthStatus]
    HEALTH_STATUS_HEALTHY: _ClassVar[HealthStatus]
    HEALTH_STATUS_UNREACHABLE: _ClassVar[HealthStatus]
    HEALTH_STATUS_TIMEOUT: _ClassVar[HealthStatus]
    HEALTH_STATUS_UNAUTHENTICATED: _ClassVar[HealthStatus]
    HEALTH_STATUS_MODEL_NOT_FOUND: _ClassVar[HealthStatus]
    HEALTH_STATUS_NOT_CONFIGURED: _ClassVar[HealthStatus]
    HEALTH_STATUS_RATE_LIMITED: _ClassVar[HealthStatus]
    HEALTH_STATUS_UNAVAILABLE: _ClassVar[HealthStatus]
    HEALTH_STATUS_BAD_RESPONSE: _ClassVar[HealthStatus]
    HEALTH_STATUS_QUOTA_EXCEEDED: _ClassVar[HealthStatus]

class ModelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATUS_UNSPECIFIED: _ClassVar[ModelStatus]
    MODEL_STATUS_ACTIVE: _ClassVar[ModelStatus]
    MODEL_STATUS_LEGACY: _ClassVar[ModelStatus]
    MODEL_STATUS_DEPRECATED: _ClassVar[ModelStatus]
    MODEL_STATUS_RETIRED: _ClassVar[ModelStatus]

class KnownFrom(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KNOWN_FROM_UNSPECIFIED: _ClassVar[KnownFrom]
    KNOWN_FROM_CATALOG: _ClassVar[KnownFrom]
    KNOWN_FROM_PROVIDER: _ClassVar[KnownFrom]
    KNOWN_FROM_BOTH: _ClassVar[KnownFrom]
SOURCE_UNSPECIFIED: Source
SOURCE_REQUEST: Source
SOURCE_FLAG: Source
SOURCE_ENV: Source
SOURCE_FILE: Source
SOURCE_DEFAULT: Source
HEALTH_STATUS_UNSPECIFIED: HealthStatus
HEALTH_STATUS_HEALTHY: HealthStatus
HEALTH_STATUS_UNREACHABLE: HealthStatus
HEALTH_STATUS_TIMEOUT: HealthStatus
HEALTH_STATUS_UNAUTHENTICATED: HealthStatus
HEALTH_STATUS_MODEL_NOT_FOUND: HealthStatus
HEALTH_STATUS_NOT_CONFIGURED: HealthStatus
HEALTH_STATUS_RATE_LIMITED: HealthStatus
HEALTH_STATUS_UNAVAILABLE: HealthStatus
HEALTH_STATUS_BAD_RESPONSE: HealthStatus
HEALTH_STATUS_QUOTA_EXCEEDED: HealthStatus
MODEL_STATUS_UNSPECIFIED: ModelStatus
MODEL_STATUS_ACTIVE: ModelStatus
MODEL_STATUS_LEGACY: ModelStatus
MODEL_STATUS_DEPRECATED: ModelStatus
MODEL_STATUS_RETIRED: ModelStatus
KNOWN_FROM_UNSPECIFIED: KnownFrom
KNOWN_FROM_CATALOG: KnownFrom
KNOWN_FROM_PROVIDER: KnownFrom
KNOWN_FROM_BOTH: KnownFrom

class LLMSettings(_message.Message):
    __slots__ = ("provider", "model", "base_url", "api_key", "max_tokens", "temperature")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    base_url: str
    api_key: str
    max_tokens: int
    temperature: float
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., base_url: _Optional[str] = ..., api_key: _Optional[str] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ...) -> None: ...

class ResolveLLMConfigRequest(_message.Message):
    __slots__ = ("mode", "overrides", "include_secrets", "network")
    MODE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SECRETS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    mode: str
    overrides: LLMSettings
    include_secrets: bool
    network: str
    def __init__(self, mode: _Optional[str] = ..., overrides: _Optional[_Union[LLMSettings, _Mapping]] = ..., include_secrets: _Optional[bool] = ..., network: _Optional[str] = ...) -> None: ...

class WatchLLMConfigRequest(_message.Message):
    __slots__ = ("mode", "overrides", "include_secrets", "known_revision", "network")
    MODE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SECRETS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_REVISION_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    mode: str
    overrides: LLMSettings
    include_secrets: bool
    known_revision: str
    network: str
    def __init__(self, mode: _Optional[str] = ..., overrides: _Optional[_Union[LLMSettings, _Mapping]] = ..., include_secrets: _Optional[bool] = ..., known_revision: _Optional[str] = ..., network: _Optional[str] = ...) -> None: ...

class WatchLLMConfigEvent(_message.Message):
    __slots__ = ("config", "error")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    config: ResolveLLMConfigResponse
    error: _status_pb2.Status
    def __init__(self, config: _Optional[_Union[ResolveLLMConfigResponse, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class LLMConfig(_message.Message):
    __slots__ = ("provider", "model", "requested_model", "base_url", "openai_base_url", "api_key", "api_key_present", "api_key_hint", "max_tokens", "temperature", "mode")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    OPENAI_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    requested_model: str
    base_url: str
    openai_base_url: str
    api_key: str
    api_key_present: bool
    api_key_hint: str
    max_tokens: int
    temperature: float
    mode: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., requested_model: _Optional[str] = ..., base_url: _Optional[str] = ..., openai_base_url: _Optional[str] = ..., api_key: _Optional[str] = ..., api_key_present: _Optional[bool] = ..., api_key_hint: _Optional[str] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., mode: _Optional[str] = ...) -> None: ...

class FieldOrigin(_message.Message):
    __slots__ = ("field", "source", "detail")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    field: str
    source: Source
    detail: str
    def __init__(self, field: _Optional[str] = ..., source: _Optional[_Union[Source, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ResolveLLMConfigResponse(_message.Message):
    __slots__ = ("config", "origins", "warnings", "revision")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ORIGINS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    config: LLMConfig
    origins: _containers.RepeatedCompositeFieldContainer[FieldOrigin]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    revision: str
    def __init__(self, config: _Optional[_Union[LLMConfig, _Mapping]] = ..., origins: _Optional[_Iterable[_Union[FieldOrigin, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., revision: _Optional[str] = ...) -> None: ...

class CheckProviderHealthRequest(_message.Message):
    __slots__ = ("provider", "base_url", "model", "mode", "refresh")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    provider: str
    base_url: str
    model: str
    mode: str
    refresh: bool
    def __init__(self, provider: _Optional[str] = ..., base_url: _Optional[str] = ..., model: _Optional[str] = ..., mode: _Optional[str] = ..., refresh: _Optional[bool] = ...) -> None: ...

class CheckProviderHealthResponse(_message.Message):
    __slots__ = ("status", "healthy", "message", "provider", "base_url", "model", "model_available", "available_models", "server_version", "latency", "checked_at", "cached")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_MODELS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    status: HealthStatus
    healthy: bool
    message: str
    provider: str
    base_url: str
    model: str
    model_available: bool
    available_models: _containers.RepeatedScalarFieldContainer[str]
    server_version: str
    latency: _duration_pb2.Duration
    checked_at: _timestamp_pb2.Timestamp
    cached: bool
    def __init__(self, status: _Optional[_Union[HealthStatus, str]] = ..., healthy: _Optional[bool] = ..., message: _Optional[str] = ..., provider: _Optional[str] = ..., base_url: _Optional[str] = ..., model: _Optional[str] = ..., model_available: _Optional[bool] = ..., available_models: _Optional[_Iterable[str]] = ..., server_version: _Optional[str] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cached: _Optional[bool] = ...) -> None: ...

class ResolveRunnerConfigRequest(_message.Message):
    __slots__ = ("mode", "session_id", "llm_overrides", "include_secrets", "network")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LLM_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SECRETS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    mode: str
    session_id: str
    llm_overrides: LLMSettings
    include_secrets: bool
    network: str
    def __init__(self, mode: _Optional[str] = ..., session_id: _Optional[str] = ..., llm_overrides: _Optional[_Union[LLMSettings, _Mapping]] = ..., include_secrets: _Optional[bool] = ..., network: _Optional[str] = ...) -> None: ...

class TemporalSettings(_message.Message):
    __slots__ = ("address", "namespace", "task_queue", "max_concurrency", "managed")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    MANAGED_FIELD_NUMBER: _ClassVar[int]
    address: str
    namespace: str
    task_queue: str
    max_concurrency: int
    managed: bool
    def __init__(self, address: _Optional[str] = ..., namespace: _Optional[str] = ..., task_queue: _Optional[str] = ..., max_concurrency: _Optional[int] = ..., managed: _Optional[bool] = ...) -> None: ...

class BackendSettings(_message.Message):
    __slots__ = ("endpoint", "api_key", "api_key_present", "api_key_hint")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    api_key: str
    api_key_present: bool
    api_key_hint: str
    def __init__(self, endpoint: _Optional[str] = ..., api_key: _Optional[str] = ..., api_key_present: _Optional[bool] = ..., api_key_hint: _Optional[str] = ...) -> None: ...

class SandboxSettings(_message.Message):
    __slots__ = ("type", "root_dir", "snapshot_id", "daytona_api_key", "daytona_api_key_present", "daytona_api_key_hint")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ROOT_DIR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    DAYTONA_API_KEY_FIELD_NUMBER: _ClassVar[int]
    DAYTONA_API_KEY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    DAYTONA_API_KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    type: str
    root_dir: str
    snapshot_id: str
    daytona_api_key: str
    daytona_api_key_present: bool
    daytona_api_key_hint: str
    def __init__(self, type: _Optional[str] = ..., root_dir: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., daytona_api_key: _Optional[str] = ..., daytona_api_key_present: _Optional[bool] = ..., daytona_api_key_hint: _Optional[str] = ...) -> None: ...

class RedisSettings(_message.Message):
    __slots__ = ("enabled", "host", "port", "password", "password_present")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_PRESENT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    host: str
    port: int
    password: str
    password_present: bool
    def __init__(self, enabled: _Optional[bool] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., password: _Optional[str] = ..., password_present: _Optional[bool] = ...) -> None: ...

class ExecutionSettings(_message.Message):
    __slots__ = ("mode", "sandbox_image", "sandbox_auto_pull", "sandbox_cleanup", "sandbox_ttl_seconds")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_AUTO_PULL_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_CLEANUP_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    mode: str
    sandbox_image: str
    sandbox_auto_pull: bool
    sandbox_cleanup: bool
    sandbox_ttl_seconds: int
    def __init__(self, mode: _Optional[str] = ..., sandbox_image: _Optional[str] = ..., sandbox_auto_pull: _Optional[bool] = ..., sandbox_cleanup: _Optional[bool] = ..., sandbox_ttl_seconds: _Optional[int] = ...) -> None: ...

class RunnerConfig(_message.Message):
    __slots__ = ("mode", "temporal", "backend", "sandbox", "redis", "execution")
    MODE_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    REDIS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    mode: str
    temporal: TemporalSettings
    backend: BackendSettings
    sandbox: SandboxSettings
    redis: RedisSettings
    execution: ExecutionSettings
    def __init__(self, mode: _Optional[str] = ..., temporal: _Optional[_Union[TemporalSettings, _Mapping]] = ..., backend: _Optional[_Union[BackendSettings, _Mapping]] = ..., sandbox: _Optional[_Union[SandboxSettings, _Mapping]] = ..., redis: _Optional[_Union[RedisSettings, _Mapping]] = ..., execution: _Optional[_Union[ExecutionSettings, _Mapping]] = ...) -> None: ...

class ResolveRunnerConfigResponse(_message.Message):
    __slots__ = ("config", "llm", "origins", "warnings", "revision")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    ORIGINS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    config: RunnerConfig
    llm: ResolveLLMConfigResponse
    origins: _containers.RepeatedCompositeFieldContainer[FieldOrigin]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    revision: str
    def __init__(self, config: _Optional[_Union[RunnerConfig, _Mapping]] = ..., llm: _Optional[_Union[ResolveLLMConfigResponse, _Mapping]] = ..., origins: _Optional[_Iterable[_Union[FieldOrigin, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., revision: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("provider", "mode", "refresh")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    provider: str
    mode: str
    refresh: bool
    def __init__(self, provider: _Optional[str] = ..., mode: _Optional[str] = ..., refresh: _Optional[bool] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "provider", "aliases", "status", "max_output_tokens", "context_window", "retires_on", "replacement", "available", "known_from", "tier", "family")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    RETIRES_ON_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FROM_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    status: ModelStatus
    max_output_tokens: int
    context_window: int
    retires_on: str
    replacement: str
    available: bool
    known_from: KnownFrom
    tier: str
    family: str
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[ModelStatus, str]] = ..., max_output_tokens: _Optional[int] = ..., context_window: _Optional[int] = ..., retires_on: _Optional[str] = ..., replacement: _Optional[str] = ..., available: _Optional[bool] = ..., known_from: _Optional[_Union[KnownFrom, str]] = ..., tier: _Optional[str] = ..., family: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "warnings")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
