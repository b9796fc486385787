"""The typed client. `Client` wraps one channel; use it as a context manager."""

from __future__ import annotations

import os
from datetime import UTC
from types import TracebackType
from typing import Any

import grpc

from ._errors import from_rpc_error
from ._models import Health, HealthStatus, LLMConfig, Origin, Resolved, Source
from .v1 import llmconfig_pb2 as pb
from .v1 import llmconfig_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50061"
TARGET_ENV = "STIGMER_LLMCONFIG_TARGET"
DEFAULT_TIMEOUT = 5.0


def default_target() -> str:
    return os.environ.get(TARGET_ENV, "").strip() or DEFAULT_TARGET


class Client:
    """Synchronous client of llmconfig.v1.LLMConfigService."""

    def __init__(self, target: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = target or default_target()
        self.timeout = timeout
        self._channel = grpc.insecure_channel(self.target)
        self._stub = pb_grpc.LLMConfigServiceStub(self._channel)

    def resolve(
        self,
        mode: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        include_secrets: bool = False,
        timeout: float | None = None,
    ) -> Resolved:
        """Resolve the configuration for a run; arguments are the run's overrides."""
        overrides = pb.LLMSettings(provider=provider, model=model, base_url=base_url,
                                   api_key=api_key, max_tokens=max_tokens,
                                   temperature=temperature)  # None leaves a field unset
        request = pb.ResolveLLMConfigRequest(
            mode=mode or "", overrides=overrides, include_secrets=include_secrets
        )
        response = self._call(self._stub.ResolveLLMConfig, request, timeout)
        return resolved_from_proto(response)

    def check_health(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        mode: str | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> Health:
        """Ask whether the provider (default: as resolved for the mode) is usable. Spends no
        tokens; answers within the server's probe timeout."""
        request = pb.CheckProviderHealthRequest(
            provider=provider or "", model=model or "", base_url=base_url or "",
            mode=mode or "", refresh=refresh,
        )
        return health_from_proto(self._call(self._stub.CheckProviderHealth, request, timeout))

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


_SOURCE_BY_NUMBER = {
    pb.SOURCE_REQUEST: Source.REQUEST,
    pb.SOURCE_FLAG: Source.FLAG,
    pb.SOURCE_ENV: Source.ENV,
    pb.SOURCE_FILE: Source.FILE,
    pb.SOURCE_DEFAULT: Source.DEFAULT,
}


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
    origins = tuple(
        Origin(o.field, _SOURCE_BY_NUMBER[o.source], o.detail) for o in response.origins
    )
    return Resolved(config, origins, tuple(response.warnings), response.revision)


def health_from_proto(response: pb.CheckProviderHealthResponse) -> Health:
    return Health(
        status=HealthStatus[pb.HealthStatus.Name(response.status).removeprefix("HEALTH_STATUS_")],
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
