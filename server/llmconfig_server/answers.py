"""ResolveLLMConfig's answers, remembered by the exact request bytes.

The server's inputs never change while it runs, so equal requests get equal answers: a runner
fleet asking the same question costs one resolution and one serialisation, then a dictionary
lookup per call. Errors are never remembered (they are raised before anything is stored), and
`include_secrets` is part of the request bytes, so an answer with a key is only ever served to a
request that asked for it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import DecodeError

from llmconfig.v1 import llmconfig_pb2 as pb

from .access import Caller, Denied, audit_secret, require_secrets
from .servicer import SERVICE_NAME, LLMConfigServicer

CAPACITY = 1024
METHOD = "ResolveLLMConfig"


class Answer(NamedTuple):
    data: bytes
    # Set when the answer carries the key: who receives it is checked and audited every time.
    secret: tuple[str, str] | None = None  # (provider, key hint)


class AnswerCache:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[bytes, Answer] = OrderedDict()

    def get(self, request: bytes) -> Answer | None:
        answer = self._answers.get(request)
        if answer is not None:
            self._answers.move_to_end(request)
        return answer

    def put(self, request: bytes, answer: Answer) -> None:
        self._answers[request] = answer
        if len(self._answers) > self.capacity:
            self._answers.popitem(last=False)


def resolve_handler(servicer: LLMConfigServicer, cache: AnswerCache) -> grpc.RpcMethodHandler:
    """A bytes-in, bytes-out handler for ResolveLLMConfig that consults `cache` first."""

    async def handle(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        if (answer := cache.get(raw)) is not None:
            if answer.secret:
                await _hand_over_secret(context, *answer.secret)
            return answer.data
        try:
            request = pb.ResolveLLMConfigRequest.FromString(raw)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "the request is not a valid llmconfig.v1.ResolveLLMConfigRequest")
            raise AssertionError("context.abort returned") from None  # it raises
        if request.include_secrets:
            await _authorize_secrets(context)
        response = await servicer.ResolveLLMConfig(request, context)
        secret = None
        if request.include_secrets and response.config.api_key:
            secret = (response.config.provider, response.config.api_key_hint)
            await _hand_over_secret(context, *secret)
        answer = Answer(response.SerializeToString(), secret)
        cache.put(raw, answer)
        return answer.data

    return grpc.unary_unary_rpc_method_handler(handle)  # no (de)serializers: raw bytes


async def _authorize_secrets(context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
    try:
        return require_secrets()
    except Denied as exc:
        await context.abort(exc.status.code, exc.status.details, exc.status.trailing_metadata)
        raise AssertionError("context.abort returned") from None  # it raises


async def _hand_over_secret(context: grpc.aio.ServicerContext[Any, Any], provider: str,
                            key_hint: str) -> None:
    """Check the caller may have the key (again, for a remembered answer) and audit it."""
    caller = await _authorize_secrets(context)
    audit_secret(caller, context.peer(), METHOD, provider, key_hint)


def add_to_server(servicer: LLMConfigServicer, server: grpc.aio.Server) -> None:
    """Register the service as the generated code would, but with ResolveLLMConfig's answers
    going through the cache."""
    handlers = {
        METHOD: resolve_handler(servicer, AnswerCache()),
        "CheckProviderHealth": grpc.unary_unary_rpc_method_handler(
            servicer.CheckProviderHealth,
            request_deserializer=pb.CheckProviderHealthRequest.FromString,
            response_serializer=pb.CheckProviderHealthResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                          handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
