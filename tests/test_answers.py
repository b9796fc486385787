"""ResolveLLMConfig answers are remembered by the exact request bytes."""

from __future__ import annotations

import grpc
import pytest

from llmconfig.v1 import llmconfig_pb2 as pb

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK

METHOD = "/llmconfig.v1.LLMConfigService/ResolveLLMConfig"


def raw_call(target: str):
    channel = grpc.insecure_channel(target)
    return channel.unary_unary(METHOD, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)


def test_undecodable_request_is_invalid_argument(serve):
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(serve().target)(b"\xff\xff\xff", timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid llmconfig.v1.ResolveLLMConfigRequest" in caught.value.details()


def test_equal_requests_get_byte_identical_answers(serve):
    call = raw_call(serve().target)
    request = pb.ResolveLLMConfigRequest(overrides=pb.LLMSettings(model="llama3.2"))
    first = call(request.SerializeToString(), timeout=5)
    assert call(request.SerializeToString(), timeout=5) == first
    assert pb.ResolveLLMConfigResponse.FromString(first).config.model == "llama3.2:3b"


def test_errors_are_answered_again_not_remembered_as_answers(serve):
    call = raw_call(serve().target)
    request = pb.ResolveLLMConfigRequest(overrides=pb.LLMSettings(temperature=9.0))
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as caught:
            call(request.SerializeToString(), timeout=5)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_the_cache_keeps_secrets_apart(serve):
    call = raw_call(serve(args=[TRUST_LOOPBACK], env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).target)
    with_key = pb.ResolveLLMConfigRequest(include_secrets=True).SerializeToString()
    without = pb.ResolveLLMConfigRequest().SerializeToString()
    assert pb.ResolveLLMConfigResponse.FromString(call(with_key, timeout=5)).config.api_key
    assert pb.ResolveLLMConfigResponse.FromString(call(without, timeout=5)).config.api_key == ""


def test_a_request_over_64_kib_is_refused_by_the_transport(serve):
    call = raw_call(serve().target)
    padded = pb.ResolveLLMConfigRequest(mode="local").SerializeToString() + \
        b"\xfa\x07" + b"\x80\x80\x04" + b"x" * 65536  # an unknown field 127 of 64 KiB
    with pytest.raises(grpc.RpcError) as caught:
        call(padded, timeout=5)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
