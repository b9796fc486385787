"""Proto ⇄ the client's plain, immutable results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from ._errors import from_status
from ._models import (
    Backend,
    Change,
    Execution,
    Health,
    HealthStatus,
    LLMConfig,
    ModelInfo,
    ModelStatus,
    Origin,
    Redis,
    Resolved,
    RunnerConfig,
    RunnerResolved,
    Sandbox,
    Source,
    Temporal,
)
from .v1 import llmconfig_pb2 as pb

# A newer server may send enum numbers this client does not know (proto3 enums are open): they
# become the UNKNOWN member, never an exception.
_SOURCE_BY_NUMBER: dict[int, Source] = {
    pb.SOURCE_REQUEST: Source.REQUEST,
    pb.SOURCE_FLAG: Source.FLAG,
    pb.SOURCE_ENV: Source.ENV,
    pb.SOURCE_FILE: Source.FILE,
    pb.SOURCE_DEFAULT: Source.DEFAULT,
}
_HEALTH_BY_NUMBER: dict[int, HealthStatus] = {
    number: HealthStatus[pb.HealthStatus.Name(number).removeprefix("HEALTH_STATUS_")]
    for number in pb.HealthStatus.values()
    if pb.HealthStatus.Name(number).removeprefix("HEALTH_STATUS_") in HealthStatus.__members__
}


def _source(number: int) -> Source:
    return _SOURCE_BY_NUMBER.get(number, Source.UNKNOWN)


def _health_status(number: int) -> HealthStatus:
    return _HEALTH_BY_NUMBER.get(number, HealthStatus.UNKNOWN)


def _enum_name(enum: Any, number: int, prefix: str) -> str:
    """The lower-case name of a known enum number without its prefix, else ""."""
    return enum.Name(number).removeprefix(prefix).lower() if number in enum.values() else ""


def _time(stamp: timestamp_pb2.Timestamp) -> datetime | None:
    """A Timestamp as an aware datetime; None when Python cannot hold it (before year 1, after
    9999, or nanos out of range)."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _seconds(duration: duration_pb2.Duration) -> float:
    """A Duration in seconds (a float holds any of them, valid or not)."""
    return duration.seconds + duration.nanos / 1e9


def _settings(overrides: dict[str, Any]) -> pb.LLMSettings:
    return pb.LLMSettings(**{k: v for k, v in overrides.items() if v is not None})


def resolve_request(mode: str | None, overrides: dict[str, Any], include_secrets: bool,
                    network: str = "") -> pb.ResolveLLMConfigRequest:
    return pb.ResolveLLMConfigRequest(mode=mode or "", overrides=_settings(overrides),
                                      include_secrets=include_secrets, network=network)


def runner_request(mode: str | None, session_id: str | None, overrides: dict[str, Any],
                   include_secrets: bool, network: str) -> pb.ResolveRunnerConfigRequest:
    return pb.ResolveRunnerConfigRequest(mode=mode or "", session_id=session_id or "",
                                         llm_overrides=_settings(overrides),
                                         include_secrets=include_secrets, network=network)


def _origins(origins: Any) -> tuple[Origin, ...]:
    return tuple(Origin(o.field, _source(o.source), o.detail) for o in origins)


def runner_from_proto(response: pb.ResolveRunnerConfigResponse) -> RunnerResolved:
    c = response.config
    t, b, s, r, e = c.temporal, c.backend, c.sandbox, c.redis, c.execution
    config = RunnerConfig(
        mode=c.mode,
        temporal=Temporal(t.address, t.namespace, t.task_queue, t.max_concurrency, t.managed),
        backend=Backend(b.endpoint, b.api_key, b.api_key_present, b.api_key_hint),
        sandbox=Sandbox(s.type, s.root_dir, s.snapshot_id, s.daytona_api_key,
                        s.daytona_api_key_present, s.daytona_api_key_hint),
        redis=Redis(r.enabled, r.host, r.port, r.password, r.password_present),
        execution=Execution(e.mode, e.sandbox_image, e.sandbox_auto_pull, e.sandbox_cleanup,
                            e.sandbox_ttl_seconds),
    )
    return RunnerResolved(config, resolved_from_proto(response.llm), _origins(response.origins),
                          tuple(response.warnings), response.revision)


def watch_request(mode: str | None, overrides: dict[str, Any], include_secrets: bool,
                  known_revision: str, network: str = "") -> pb.WatchLLMConfigRequest:
    return pb.WatchLLMConfigRequest(mode=mode or "", overrides=_settings(overrides),
                                    include_secrets=include_secrets,
                                    known_revision=known_revision, network=network)


def change_from_proto(event: pb.WatchLLMConfigEvent) -> Change:
    if event.HasField("config"):
        return Change(resolved_from_proto(event.config))
    return Change(None, from_status(event.error))


def health_request(provider: str | None, model: str | None, base_url: str | None,
                   mode: str | None, refresh: bool) -> pb.CheckProviderHealthRequest:
    return pb.CheckProviderHealthRequest(provider=provider or "", model=model or "",
                                         base_url=base_url or "", mode=mode or "",
                                         refresh=refresh)


def resolved_from_proto(response: pb.ResolveLLMConfigResponse) -> Resolved:
    c = response.config
    config = LLMConfig(
        provider=c.provider,
        model=c.model,
        requested_model=c.requested_model,
        base_url=c.base_url,
        openai_base_url=c.openai_base_url,
        api_key=c.api_key,
        api_key_present=c.api_key_present,
        api_key_hint=c.api_key_hint,
        max_tokens=c.max_tokens if c.HasField("max_tokens") else None,
        temperature=c.temperature if c.HasField("temperature") else None,
        mode=c.mode,
    )
    return Resolved(config, _origins(response.origins), tuple(response.warnings),
                    response.revision)


def health_from_proto(response: pb.CheckProviderHealthResponse) -> Health:
    return Health(
        status=_health_status(response.status),
        healthy=response.healthy,
        message=response.message,
        provider=response.provider,
        base_url=response.base_url,
        model=response.model,
        model_available=response.model_available,
        available_models=tuple(response.available_models),
        server_version=response.server_version,
        latency=_seconds(response.latency),
        checked_at=_time(response.checked_at),
        cached=response.cached,
    )


def models_request(provider: str | None, mode: str | None, refresh: bool,
                   ) -> pb.ListModelsRequest:
    return pb.ListModelsRequest(provider=provider or "", mode=mode or "", refresh=refresh)


def models_from_proto(response: pb.ListModelsResponse) -> tuple[tuple[ModelInfo, ...],
                                                               tuple[str, ...]]:
    models = []
    for m in response.models:
        status_name = _enum_name(pb.ModelStatus, m.status, "MODEL_STATUS_")
        status = ModelStatus(status_name) if status_name in ModelStatus._value2member_map_ \
            else ModelStatus.UNKNOWN
        known_from = _enum_name(pb.KnownFrom, m.known_from, "KNOWN_FROM_")
        models.append(ModelInfo(
            id=m.id, provider=m.provider, aliases=tuple(m.aliases), status=status,
            max_output_tokens=m.max_output_tokens if m.HasField("max_output_tokens") else None,
            context_window=m.context_window if m.HasField("context_window") else None,
            retires_on=m.retires_on, replacement=m.replacement, available=m.available,
            known_from=known_from, tier=m.tier, family=m.family))
    return tuple(models), tuple(response.warnings)
