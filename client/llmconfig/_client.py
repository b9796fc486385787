"""`Client` (blocking) and `AsyncClient` (asyncio): one channel each; use them as context
managers. Every non-OK status is raised as a typed `LLMConfigError`."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import grpc

from ._channel import CHANNEL_OPTIONS, DEFAULT_TIMEOUT, security_from, target_or_default
from ._convert import health_from_proto, health_request, resolve_request, resolved_from_proto
from ._errors import from_rpc_error
from ._models import Health, Resolved
from .v1 import llmconfig_pb2_grpc as pb_grpc


class _Base:
    """`target` (`host:port` or `unix:PATH`) defaults to STIGMER_LLMCONFIG_TARGET, else
    127.0.0.1:50061; `timeout` (seconds) is the default deadline of every call.

    `token` (else `token_file`, else STIGMER_LLMCONFIG_TOKEN / STIGMER_LLMCONFIG_TOKEN_FILE) is
    sent as a bearer token. `ca_file` (else STIGMER_LLMCONFIG_CA_FILE) turns on TLS, verifying
    the server against that CA; `cert_file` and `key_file` (else STIGMER_LLMCONFIG_CERT_FILE /
    _KEY_FILE) present a client certificate to a server that requires mTLS.
    """

    def __init__(self, target: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 token: str | None = None, token_file: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None) -> None:
        self.target = target_or_default(target)
        self.timeout = timeout
        security = security_from(token, token_file, ca_file, cert_file, key_file)
        self.tls = security.ca is not None
        self._metadata = security.metadata
        self._channel = self._open(self.target, security.channel_credentials())
        self._stub = pb_grpc.LLMConfigServiceStub(self._channel)

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None) -> Any:
        raise NotImplementedError


class Client(_Base):
    """Blocking client of llmconfig.v1.LLMConfigService."""

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
        if credentials is not None:
            return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)

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
        """The configuration for a run; the keyword arguments are the run's overrides."""
        request = resolve_request(mode, {
            "provider": provider, "model": model, "base_url": base_url, "api_key": api_key,
            "max_tokens": max_tokens, "temperature": temperature,
        }, include_secrets)
        return resolved_from_proto(self._call(self._stub.ResolveLLMConfig, request, timeout))

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
        """Whether the provider (default: as resolved for the mode) is usable. Spends no tokens."""
        request = health_request(provider, model, base_url, mode, refresh)
        return health_from_proto(self._call(self._stub.CheckProviderHealth, request, timeout))

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout,
                          metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client of llmconfig.v1.LLMConfigService; the same calls as `Client`, awaited."""

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None,
              ) -> grpc.aio.Channel:
        if credentials is not None:
            return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)

    async def resolve(
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
        """The configuration for a run; the keyword arguments are the run's overrides."""
        request = resolve_request(mode, {
            "provider": provider, "model": model, "base_url": base_url, "api_key": api_key,
            "max_tokens": max_tokens, "temperature": temperature,
        }, include_secrets)
        return resolved_from_proto(await self._call(self._stub.ResolveLLMConfig, request, timeout))

    async def check_health(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        mode: str | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> Health:
        """Whether the provider (default: as resolved for the mode) is usable. Spends no tokens."""
        request = health_request(provider, model, base_url, mode, refresh)
        return health_from_proto(
            await self._call(self._stub.CheckProviderHealth, request, timeout))

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout,
                                metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
