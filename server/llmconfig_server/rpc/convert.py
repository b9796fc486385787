"""Proto ⇄ domain for llmconfig.v1.LLMConfigService, and nothing else."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig_server.health.checker import HealthReport
from llmconfig_server.resolve.domain import ConfigError, Resolution
from llmconfig_server.resolve.runner import RunnerResolution
from llmconfig_server.support.redact import redact_text, redact_url

if TYPE_CHECKING:
    from llmconfig_server.live.state import Snapshot

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LLMConfigService"].full_name
_OVERRIDE_FIELDS = ("provider", "model", "base_url", "api_key", "max_tokens", "temperature")


def overrides_of(request: Any, field: str = "overrides") -> dict[str, Any]:
    """The LLMSettings in `request.<field>` that the caller set."""
    if not request.HasField(field):
        return {}
    given = getattr(request, field)
    return {name: getattr(given, name) for name in _OVERRIDE_FIELDS if given.HasField(name)}


def response_of(resolution: Resolution, *, include_secrets: bool) -> pb.ResolveLLMConfigResponse:
    """The answer; URL credentials, like the key, only with `include_secrets`."""
    shown = _as_is if include_secrets else redact_text
    config = pb.LLMConfig(
        provider=resolution.provider,
        model=resolution.model,
        requested_model=resolution.requested_model,
        base_url=resolution.base_url if include_secrets else redact_url(resolution.base_url),
        openai_base_url=resolution.openai_base_url if include_secrets
        else redact_url(resolution.openai_base_url),
        api_key=resolution.api_key if include_secrets else "",
        api_key_present=resolution.api_key_present,
        api_key_hint=resolution.api_key_hint,
        mode=resolution.mode,
    )
    if resolution.max_tokens is not None:
        config.max_tokens = resolution.max_tokens
    if resolution.temperature is not None:
        config.temperature = resolution.temperature
    return pb.ResolveLLMConfigResponse(
        config=config,
        origins=[
            # Domain sources carry the proto enum's numbers (pinned by tests/test_proto.py).
            pb.FieldOrigin(field=o.field, source=cast("pb.Source", o.source.value),
                           detail=shown(o.detail))
            for o in resolution.origins
        ],
        warnings=[shown(w) for w in resolution.warnings],
        revision=resolution.revision,
    )


def runner_response_of(resolution: RunnerResolution, *, include_secrets: bool,
                       ) -> pb.ResolveRunnerConfigResponse:
    """The runner part of ResolveRunnerConfig's answer; secrets only with `include_secrets`."""
    v = resolution.values

    def secret(path: str) -> str:
        return str(v.get(path) or "") if include_secrets else ""

    config = pb.RunnerConfig(
        mode=resolution.mode,
        temporal=pb.TemporalSettings(
            address=v["temporal.address"], namespace=v["temporal.namespace"],
            task_queue=v["temporal.task_queue"], max_concurrency=v["temporal.max_concurrency"],
            managed=v["temporal.managed"]),
        backend=pb.BackendSettings(
            endpoint=v["backend.endpoint"], api_key=secret("backend.api_key"),
            api_key_present=bool(v.get("backend.api_key")),
            api_key_hint=resolution.hint("backend.api_key")),
        sandbox=pb.SandboxSettings(
            type=v["sandbox.type"], root_dir=v["sandbox.root_dir"],
            snapshot_id=v.get("sandbox.snapshot_id") or "",
            daytona_api_key=secret("sandbox.daytona_api_key"),
            daytona_api_key_present=bool(v.get("sandbox.daytona_api_key")),
            daytona_api_key_hint=resolution.hint("sandbox.daytona_api_key")),
        redis=pb.RedisSettings(
            enabled=v["redis.enabled"], host=v.get("redis.host") or "",
            port=v["redis.port"], password=secret("redis.password"),
            password_present=bool(v.get("redis.password"))),
        execution=pb.ExecutionSettings(
            mode=v["execution.mode"], sandbox_image=v["execution.sandbox_image"],
            sandbox_auto_pull=v["execution.sandbox_auto_pull"],
            sandbox_cleanup=v["execution.sandbox_cleanup"],
            sandbox_ttl_seconds=v["execution.sandbox_ttl_seconds"]),
    )
    return pb.ResolveRunnerConfigResponse(
        config=config,
        origins=[pb.FieldOrigin(field=o.field, source=cast("pb.Source", o.source.value),
                                detail=o.detail) for o in resolution.origins],
        warnings=list(resolution.warnings),
        revision=resolution.revision,
    )


def health_answer_of(report: HealthReport) -> bytes:
    return health_response_of(report).SerializeToString()


def health_response_of(report: HealthReport) -> pb.CheckProviderHealthResponse:
    response = pb.CheckProviderHealthResponse(
        status=pb.HealthStatus.Name(report.status.value),
        healthy=report.healthy,
        message=report.message,
        provider=report.provider,
        base_url=report.base_url,
        model=report.model,
        model_available=report.model_available,
        available_models=report.available_models,
        server_version=report.server_version,
        cached=report.cached,
    )
    response.latency.FromTimedelta(timedelta(seconds=report.latency))
    response.checked_at.FromDatetime(report.checked_at)
    return response


_STATUS_OF: Final = {
    "active": pb.MODEL_STATUS_ACTIVE, "legacy": pb.MODEL_STATUS_LEGACY,
    "deprecated": pb.MODEL_STATUS_DEPRECATED, "retired": pb.MODEL_STATUS_RETIRED,
}
_KNOWN_FROM: Final = {
    "catalog": pb.KNOWN_FROM_CATALOG, "provider": pb.KNOWN_FROM_PROVIDER,
    "both": pb.KNOWN_FROM_BOTH,
}


def models_response_of(snapshot: Snapshot, providers: list[str], mode: str,
                       ) -> pb.ListModelsResponse:
    """ListModels' answer: each provider's models, with availability at the base URL `mode`
    resolves for it."""
    from llmconfig_server.health.model_lists import resolve_provider, rows

    catalog = snapshot.resolver.catalog
    response = pb.ListModelsResponse()
    for provider in providers:
        try:
            base_url = resolve_provider(snapshot.resolver, mode, provider).base_url
        except ConfigError:
            base_url = catalog.providers[provider].default_base_url
        listed = rows(catalog, snapshot.runtime.lists.get(provider, base_url), provider,
                      redact_url(base_url), snapshot.runtime.lists.error(provider, base_url))
        response.warnings.extend(redact_text(w) for w in listed.warnings)
        for row in listed.rows:
            facts = row.facts
            info = pb.ModelInfo(
                id=facts.id, provider=provider, aliases=list(facts.aliases),
                status=_STATUS_OF.get(row.status, pb.MODEL_STATUS_UNSPECIFIED),
                retires_on=facts.retires_on.isoformat() if facts.retires_on else "",
                replacement=row.replacement, available=row.available,
                known_from=_KNOWN_FROM[row.known_from], tier=facts.tier or "",
                family=facts.family)
            if facts.max_output_tokens:
                info.max_output_tokens = min(facts.max_output_tokens, 2**31 - 1)
            if facts.context_window:
                info.context_window = min(facts.context_window, 2**31 - 1)
            response.models.append(info)
    return response


def _as_is(text: str) -> str:
    return text
