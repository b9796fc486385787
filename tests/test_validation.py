"""Bad overrides are INVALID_ARGUMENT with google.rpc.BadRequest field violations that say what
is allowed; the server never answers INTERNAL for them."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import llmconfig
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc

from conftest import ANTHROPIC_KEY


def invalid(client, **kwargs):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.resolve(**kwargs)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def test_temperature_out_of_range_for_anthropic(serve):
    error = invalid(serve(), provider="anthropic", api_key=ANTHROPIC_KEY, temperature=3.5)
    (violation,) = error.violations
    assert violation.subject == "overrides.temperature"
    assert violation.reason == "OUT_OF_RANGE"
    assert "temperature 3.5 is out of range for anthropic (0.0–1.0)" in violation.description


def test_temperature_range_is_per_provider(serve):
    assert serve().resolve(temperature=1.8).config.temperature == 1.8  # ollama allows 0–2
    invalid(serve(), temperature=2.5)


def test_negative_temperature_is_refused(serve):
    invalid(serve(), temperature=-0.1)


def test_max_tokens_must_be_positive(serve):
    error = invalid(serve(), max_tokens=0)
    assert error.violations[0].subject == "overrides.max_tokens"
    assert "1–131072" in error.violations[0].description


def test_max_tokens_within_the_provider_limit(serve):
    error = invalid(serve(), provider="anthropic", api_key=ANTHROPIC_KEY, max_tokens=200_000)
    assert "out of range for anthropic (1–128000)" in error.message


def test_unknown_provider_lists_the_known_ones(serve):
    error = invalid(serve(), provider="gemini")
    assert error.violations[0].reason == "UNKNOWN_PROVIDER"
    assert "use one of: anthropic, lmstudio, ollama, openai, vllm" in error.message


def test_empty_model_override_is_refused(serve):
    error = invalid(serve(), model="  ")
    assert (error.violations[0].subject, error.violations[0].reason) == (
        "overrides.model", "EMPTY_VALUE")


@pytest.mark.parametrize("url", ["localhost:11434", "ftp://host", "http://", "http://h:99999",
                                 "http://h?x=1"])
def test_malformed_base_url_is_refused(serve, url):
    error = invalid(serve(), base_url=url)
    assert error.violations[0].reason == "INVALID_URL"
    assert "http://localhost:11434" in error.message  # says what a good one looks like


def test_unknown_mode_is_refused(serve):
    error = invalid(serve(), mode="staging")
    assert (error.violations[0].subject, error.violations[0].reason) == ("mode", "UNKNOWN_MODE")


def test_every_violation_is_reported_at_once(serve):
    error = invalid(serve(), provider="anthropic", api_key=ANTHROPIC_KEY, temperature=3.0,
                    max_tokens=0)
    assert {v.subject for v in error.violations} == {"overrides.temperature",
                                                     "overrides.max_tokens"}


def error_details(serve_client, request):
    """(BadRequest or PreconditionFailure, ErrorInfo) of the status a raw call ends with."""
    stub = pb_grpc.LLMConfigServiceStub(grpc.insecure_channel(serve_client.target))
    with pytest.raises(grpc.RpcError) as caught:
        stub.ResolveLLMConfig(request, timeout=5)
    details = rpc_status.from_call(caught.value).details
    listed = next(d for d in details if not d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR))
    violations = error_details_pb2.BadRequest()
    if not listed.Unpack(violations):
        violations = error_details_pb2.PreconditionFailure()
        listed.Unpack(violations)
    info = error_details_pb2.ErrorInfo()
    next(d for d in details if d.Unpack(info))
    return violations, info


def test_error_info_names_every_violation_with_its_reason(serve):
    # Clients whose BadRequest lacks FieldViolation.reason (Debian's Go genproto) read the
    # reasons from ErrorInfo: the first is its own reason, the N-th is reason_N.
    overrides = pb.LLMSettings(provider="anthropic", api_key=ANTHROPIC_KEY, temperature=3.0,
                               max_tokens=0)
    bad, info = error_details(serve(), pb.ResolveLLMConfigRequest(overrides=overrides))
    first, second = bad.field_violations
    assert (info.reason, info.metadata["subject"]) == (first.reason, first.field)
    assert (info.metadata["reason_2"], info.metadata["subject_2"]) == (second.reason,
                                                                       second.field)
    assert {info.metadata["field"], info.metadata["field_2"]} == {"temperature", "max_tokens"}
    assert "reason_3" not in info.metadata


def test_error_info_of_one_violation_keeps_its_plain_keys(serve):
    _, info = error_details(serve(), pb.ResolveLLMConfigRequest(
        overrides=pb.LLMSettings(temperature=5.0)))
    assert dict(info.metadata) == {"field": "temperature", "subject": "overrides.temperature"}


def test_request_error_wins_over_server_precondition(serve):
    # No key anywhere (a precondition) and a bad temperature (the caller's fault): the caller
    # hears about its own mistake with the right code.
    error = invalid(serve(), provider="anthropic", temperature=5.0)
    assert [v.subject for v in error.violations] == ["overrides.temperature"]


def test_nan_temperature_is_refused_not_internal(serve):
    client = serve()
    stub = pb_grpc.LLMConfigServiceStub(grpc.insecure_channel(client.target))
    request = pb.ResolveLLMConfigRequest(overrides=pb.LLMSettings(temperature=float("nan")))
    with pytest.raises(grpc.RpcError) as caught:
        stub.ResolveLLMConfig(request, timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_provider_in_the_other_mode_is_a_precondition_not_internal(serve):
    client = serve(files={"~/.stigmer/llmconfig.yaml": "cloud:\n  llm:\n    provider: anthropic\n"})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve("cloud")
    assert caught.value.reason == "API_KEY_MISSING"
