"""Proto ⇄ the client's plain, immutable results."""

from __future__ import annotations

from datetime import UTC
from typing import Any

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

_SOURCE_BY_NUMBER = {
    pb.SOURCE_REQUEST: Source.REQUEST,
    pb.SOURCE_FLAG: Source.FLAG,
    pb.SOURCE_ENV: Source.ENV,
    pb.SOURCE_FILE: Source.FILE,
    pb.SOURCE_DEFAULT: Source.DEFAULT,
}


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
    return tuple(Origin(o.field, _SOURCE_BY_NUMBER[o.source], o.detail) for o in origins)


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
    name = pb.HealthStatus.Name(response.status).removeprefix("HEALTH_STATUS_")
    return Health(
        status=HealthStatus[name],
        healthy=response.healthy,
        message=response.message,
        provider=response.provider,
        base_url=response.base_url,
        model=response.model,
        model_available=response.model_available,
        available_models=tuple(response.available_models),
        server_version=response.server_version,
        latency=response.latency.ToTimedelta().total_seconds(),
        checked_at=response.checked_at.ToDatetime(tzinfo=UTC),
        cached=response.cached,
    )


def models_request(provider: str | None, mode: str | None, refresh: bool,
                   ) -> pb.ListModelsRequest:
    return pb.ListModelsRequest(provider=provider or "", mode=mode or "", refresh=refresh)


def models_from_proto(response: pb.ListModelsResponse) -> tuple[tuple[ModelInfo, ...],
                                                               tuple[str, ...]]:
    models = []
    for m in response.models:
        status_name = pb.ModelStatus.Name(m.status).removeprefix("MODEL_STATUS_").lower() \
            if m.status in pb.ModelStatus.values() else "unknown"
        status = ModelStatus(status_name) if status_name in ModelStatus._value2member_map_ \
            else ModelStatus.UNKNOWN
        known_from = pb.KnownFrom.Name(m.known_from).removeprefix("KNOWN_FROM_").lower() \
            if m.known_from in pb.KnownFrom.values() else ""
        models.append(ModelInfo(
            id=m.id, provider=m.provider, aliases=tuple(m.aliases), status=status,
            max_output_tokens=m.max_output_tokens if m.HasField("max_output_tokens") else None,
            context_window=m.context_window if m.HasField("context_window") else None,
            retires_on=m.retires_on, replacement=m.replacement, available=m.available,
            known_from=known_from, tier=m.tier, family=m.family))
    return tuple(models), tuple(response.warnings)
