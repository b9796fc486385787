"""The `llmconfig` command: output, JSON, exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import providers
from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK
from providers import refused_url


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmconfig", *args], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **(env or {})})


def dead_target() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_resolve_prints_each_value_with_its_origin(serve):
    target = serve(env={"STIGMER_LLM_MODEL": "llama3.1:8b"}).target
    done = cli("resolve", "--target", target)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split() == ["model", "llama3.1:8b", "env", "STIGMER_LLM_MODEL"]
               for line in lines)
    assert any(line.split()[:3] == ["provider", "ollama", "env"] for line in lines)
    assert "\033[" not in done.stdout  # no colour when not on a terminal


def test_resolve_json_omits_the_key_unless_asked(serve):
    target = serve(args=[TRUST_LOOPBACK], env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).target
    hidden = json.loads(cli("resolve", "--target", target, "--json").stdout)
    assert "api_key" not in hidden["config"]
    assert hidden["config"]["api_key_hint"] == "sk-ant-…f2c9"
    shown = json.loads(cli("resolve", "--target", target, "--json", "--show-secrets").stdout)
    assert shown["config"]["api_key"] == ANTHROPIC_KEY


def test_resolve_overrides_from_flags(serve):
    target = serve().target
    data = json.loads(cli("resolve", "--target", target, "--json", "--model", "llama3.2",
                          "--temperature", "0.4").stdout)
    assert (data["config"]["model"], data["config"]["temperature"]) == ("llama3.2:3b", 0.4)
    assert {"field": "temperature", "source": "request",
            "detail": "request overrides.temperature"} in data["origins"]


def test_resolve_invalid_exits_2_with_the_reason(serve):
    done = cli("resolve", "--target", serve().target, "--temperature", "7")
    assert done.returncode == 2
    assert "INVALID_ARGUMENT" in done.stderr
    assert "out of range for ollama" in done.stderr


def test_health_exits_0_when_healthy(serve, emulators):
    ollama = providers.ollama()
    emulators.append(ollama)
    done = cli("health", "--target", serve(env={"OLLAMA_BASE_URL": ollama.url}).target)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("✓ HEALTHY  ollama qwen2.5-coder:7b at")


def test_health_exits_1_with_the_fix_when_unhealthy(serve):
    done = cli("health", "--target", serve(env={"OLLAMA_BASE_URL": refused_url()}).target)
    assert done.returncode == 1
    assert "✗ UNREACHABLE" in done.stdout
    assert 'start it with "ollama serve"' in done.stdout


def test_health_json(serve):
    done = cli("health", "--json", "--target", serve(env={"OLLAMA_BASE_URL": refused_url()}
                                                      ).target)
    data = json.loads(done.stdout)
    assert (data["status"], data["healthy"]) == ("unreachable", False)


def test_health_exits_3_when_the_service_is_unreachable():
    done = cli("health", "--target", dead_target(), "--timeout", "1")
    assert done.returncode == 3
    assert "cannot be reached" in done.stderr
    assert "llmconfig-server" in done.stderr


def test_doctor_names_the_next_command(serve):
    done = cli("doctor", "--target", serve(env={"OLLAMA_BASE_URL": refused_url()}).target)
    assert done.returncode == 1
    assert "✓ config    ollama qwen2.5-coder:7b" in done.stdout
    assert done.stdout.rstrip().endswith("Not ready. Next: ollama serve")


def test_doctor_ready(serve, emulators):
    ollama = providers.ollama()
    emulators.append(ollama)
    done = cli("doctor", "--target", serve(env={"OLLAMA_BASE_URL": ollama.url}).target)
    assert done.returncode == 0
    assert done.stdout.rstrip().endswith("Ready.")


def test_doctor_with_the_model_missing_says_what_to_pull(serve, emulators):
    ollama = providers.ollama(["qwen2.5-coder:14b"])
    emulators.append(ollama)
    done = cli("doctor", "--target", serve(env={"OLLAMA_BASE_URL": ollama.url}).target)
    assert done.stdout.rstrip().endswith("Next: ollama pull qwen2.5-coder:7b")


def test_doctor_when_the_service_is_down_exits_3():
    done = cli("doctor", "--target", dead_target(), "--timeout", "1")
    assert done.returncode == 3
    assert "Next: start the service with `llmconfig-server`" in done.stdout


def test_target_from_environment(serve):
    done = cli("resolve", env={"STIGMER_LLMCONFIG_TARGET": serve().target})
    assert done.returncode == 0


def test_color_always_colours(serve):
    done = cli("resolve", "--color", "always", "--target", serve().target)
    assert "\033[2mdefault" in done.stdout


def test_help_explains_the_commands():
    done = cli("--help")
    assert done.returncode == 0
    for text in ("resolve", "health", "doctor", "STIGMER_LLMCONFIG_TARGET", "exit codes"):
        assert text in done.stdout
