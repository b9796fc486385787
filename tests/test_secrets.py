"""A key never reaches a response without include_secrets, a warning, an origin or an error."""

from __future__ import annotations

import grpc
import pytest

import llmconfig
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc

from conftest import ANTHROPIC_KEY, OPENAI_KEY, TRUST_LOOPBACK

KEY_TAIL = ANTHROPIC_KEY[-12:]  # more than the 4-character hint


def raw_call(target: str, request: pb.ResolveLLMConfigRequest) -> bytes:
    stub = pb_grpc.LLMConfigServiceStub(grpc.insecure_channel(target))
    try:
        return stub.ResolveLLMConfig(request, timeout=5).SerializeToString()
    except grpc.RpcError as exc:
        return (exc.details() + repr(exc.trailing_metadata())).encode()


@pytest.mark.parametrize("overrides", [
    {},
    {"provider": "openai"},  # the anthropic key is dropped: a warning mentions it
    {"model": "gpt-4o"},
    {"temperature": 7.0},
])
def test_no_response_or_error_carries_the_key_without_include_secrets(serve, overrides):
    client = serve(env={"STIGMER_LLM_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY})
    wire = raw_call(client.target, pb.ResolveLLMConfigRequest(overrides=pb.LLMSettings(
        **overrides)))
    assert KEY_TAIL.encode() not in wire
    assert OPENAI_KEY[-12:].encode() not in wire


def test_a_request_key_is_not_echoed_in_its_error(serve):
    client = serve(args=["--llm-provider", "openai"], env={"OPENAI_API_KEY": OPENAI_KEY})
    wire = raw_call(client.target, pb.ResolveLLMConfigRequest(
        overrides=pb.LLMSettings(api_key=ANTHROPIC_KEY)))
    assert b"PROVIDER_MISMATCH" in wire
    assert KEY_TAIL.encode() not in wire


def test_key_hint_shows_at_most_the_last_4_characters(serve):
    config = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve().config
    assert config.api_key_hint == "sk-ant-…" + ANTHROPIC_KEY[-4:]


def test_a_short_key_gets_no_tail_in_its_hint(serve):
    config = serve(args=["--llm-api-key", "abc123"]).resolve().config
    assert config.api_key_hint == "…"


def test_repr_of_a_config_never_shows_the_key(serve):
    resolved = serve(args=[TRUST_LOOPBACK],
                     env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve(include_secrets=True)
    assert resolved.config.api_key == ANTHROPIC_KEY
    assert ANTHROPIC_KEY not in repr(resolved)


def test_config_file_key_of_wrong_type_is_not_echoed(serve):
    with pytest.raises(Exception) as caught:
        serve(files={"~/.stigmer/llmconfig.yaml": "llm:\n  api_key: [sk-ant-secret-value-1234]\n"})
    assert "sk-ant-secret" not in str(caught.value)
    assert "llm.api_key: input should be a valid string, got a list" in str(caught.value)


def test_client_errors_carry_no_key(serve):
    client = serve(args=["--llm-provider", "openai"], env={"OPENAI_API_KEY": OPENAI_KEY})
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.resolve(api_key=ANTHROPIC_KEY)
    assert KEY_TAIL not in str(caught.value)
    assert all(KEY_TAIL not in v.description for v in caught.value.violations)


def test_an_answer_with_secrets_is_never_reused_for_a_call_without(serve):
    client = serve(args=[TRUST_LOOPBACK], env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY
    assert client.resolve().config.api_key == ""
    assert client.resolve(model="claude-opus-4.6", include_secrets=True).config.api_key
    assert client.resolve(model="claude-opus-4.6").config.api_key == ""
