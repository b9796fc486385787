"""ResolveLLMConfig's answers, remembered by the exact request bytes; every method decodes its
own request, so bytes that are not one get INVALID_ARGUMENT.

The server's inputs never change while it runs, so equal requests get equal answers: a runner
fleet asking the same question costs one resolution and one serialisation, then a dictionary
lookup per call. Errors are never remembered (they are raised before anything is stored), and
`include_secrets` is part of the request bytes, so an answer with a key is only ever served to a
request that asked for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from llmconfig.v1 import llmconfig_pb2 as pb

from .bounded import BoundedCache
from .servicer import SERVICE_NAME, LLMConfigServicer

CAPACITY: Final = 1024
MAX_BYTES: Final = 16 * 1024 * 1024
METHOD = "ResolveLLMConfig"

_Request = TypeVar("_Request", bound=Message)
_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class AnswerCache(BoundedCache[bytes, bytes]):
    """Answers by request bytes, at most `capacity` of them and `max_bytes` in all."""

    def __init__(self, capacity: int = CAPACITY, max_bytes: int = MAX_BYTES) -> None:
        super().__init__(capacity, max_bytes, lambda request, answer: len(request) + len(answer))


async def decode(raw: bytes, kind: type[_Request], context: _Context) -> _Request:
    """The request, or INVALID_ARGUMENT for bytes that are not one (never an UNKNOWN with a
    traceback from a deserializer)."""
    try:
        return kind.FromString(raw)
    except DecodeError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request is not a valid {kind.DESCRIPTOR.full_name}")
        raise AssertionError("context.abort returned") from None  # it raises


def resolve_handler(servicer: LLMConfigServicer, cache: AnswerCache) -> grpc.RpcMethodHandler:
    """A bytes-in, bytes-out handler for ResolveLLMConfig that consults `cache` first."""

    async def handle(raw: bytes, context: _Context) -> bytes:
        if (answer := cache.get(raw)) is not None:
            return answer
        request = await decode(raw, pb.ResolveLLMConfigRequest, context)
        response = await servicer.ResolveLLMConfig(request, context)
        answer = response.SerializeToString()
        cache.put(raw, answer)
        return answer

    return grpc.unary_unary_rpc_method_handler(handle)  # no (de)serializers: raw bytes


def bytes_handler(kind: type[_Request],
                  method: Callable[[_Request, _Context], Awaitable[Message]],
                  ) -> grpc.RpcMethodHandler:
    """A bytes-in, bytes-out handler that decodes the request itself (see `decode`)."""

    async def handle(raw: bytes, context: _Context) -> bytes:
        response = await method(await decode(raw, kind, context), context)
        return response.SerializeToString()

    return grpc.unary_unary_rpc_method_handler(handle)


def add_to_server(servicer: LLMConfigServicer, server: grpc.aio.Server) -> None:
    """Register the service as the generated code would, but with ResolveLLMConfig's answers
    going through the cache."""
    handlers = {
        METHOD: resolve_handler(servicer, AnswerCache()),
        "CheckProviderHealth": bytes_handler(pb.CheckProviderHealthRequest,
                                             servicer.CheckProviderHealth),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                          handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
