"""Closing the door at shutdown: once the drain period is over, new calls to the service are
answered UNAVAILABLE — which clients retry, elsewhere or after the restart — instead of being
cut off as CANCELLED by the transport while the server stops. Health and reflection stay
open so orchestrators keep seeing NOT_SERVING."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpc

SERVICE_PREFIX: Final = "/llmconfig.v1.LLMConfigService/"


class Admission(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.open = True

    def close(self) -> None:
        self.open = False

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails],
                                     Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if self.open or not details.method.startswith(SERVICE_PREFIX):
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:
            return None
        return _refusing(handler)


async def _refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAVAILABLE,
                        "the server is shutting down; retry (the llmconfig client does)")


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_refuse)
    return grpc.unary_unary_rpc_method_handler(_refuse)
