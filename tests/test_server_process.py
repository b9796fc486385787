"""The `llmconfig-server` process: refusing bad configuration, the startup block, signals."""

from __future__ import annotations

import signal
import socket
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import llmconfig

from conftest import ANTHROPIC_KEY, refusal_lines


def refused(workspace, args=None, env=None) -> str:
    """What the command prints refusing to start, from its own rules and message in-process
    (refusal_lines); `refused_by_the_command` runs it, for exit 2."""
    log = "\n".join(refusal_lines(workspace, args or [], env))
    assert "Traceback" not in log
    assert "refusing to start" in log
    return log


def refused_by_the_command(server_process, args=None, env=None) -> str:
    handle = server_process(args, env, wait_ready=False)
    assert handle.finish() == 2
    assert "Traceback" not in handle.log
    assert "refusing to start" in handle.log
    return handle.log


def test_config_file_with_unknown_key_is_refused_naming_file_and_key(workspace):
    workspace.write("~/.stigmer/llmconfig.yaml", "local:\n  llm:\n    modle: llama3\n")
    log = refused(workspace)
    assert ".stigmer/llmconfig.yaml:3:5: local.llm.modle: unknown key" in log
    assert "allowed here: api_key, base_url, max_tokens, model, provider, temperature" in log


def test_config_file_with_wrong_type_is_refused_naming_file_and_key(workspace):
    workspace.write("~/.stigmer/llmconfig.yaml", "llm:\n  max_tokens: lots\n")
    log = refused(workspace)
    assert "~/.stigmer/llmconfig.yaml:2:15: llm.max_tokens: input should be a valid integer, " \
        "got text" in log  # described, never quoted


def test_invalid_yaml_is_refused_naming_file_and_line(workspace):
    workspace.write("~/.stigmer/llmconfig.yaml", "llm:\n  model: [unclosed\n")
    log = refused(workspace)
    assert ".stigmer/llmconfig.yaml:3:1: invalid YAML" in log


def test_missing_named_config_file_is_refused(workspace):
    log = refused(workspace, ["--config", "/nonexistent/config.yaml"])
    assert "config file /nonexistent/config.yaml (named by --config) does not exist" in log


def test_unknown_provider_in_env_is_refused(workspace):
    log = refused(workspace, env={"STIGMER_LLM_PROVIDER": "gemini"})
    assert "STIGMER_LLM_PROVIDER: provider 'gemini' is not known; use one of: anthropic, " \
           "lmstudio, ollama, openai, vllm" in log


def test_unparsable_number_in_env_names_the_variable(workspace):
    log = refused(workspace, env={"STIGMER_LLM_MAX_TOKENS": "abc"})
    assert "STIGMER_LLM_MAX_TOKENS: 'abc' is not an integer" in log


def test_unparsable_flag_names_the_flag(workspace):
    log = refused(workspace, ["--llm-temperature", "warm"])
    assert "--llm-temperature: 'warm' is not a number" in log


def test_malformed_base_url_is_refused(workspace):
    log = refused(workspace, env={"OLLAMA_BASE_URL": "localhost:11434"})
    assert "OLLAMA_BASE_URL: base_url 'localhost:11434' is not usable" in log


def test_unreadable_secret_file_is_refused(workspace):
    log = refused(workspace, env={"ANTHROPIC_API_KEY_FILE": str(workspace.cwd / "nope")})
    assert f"ANTHROPIC_API_KEY_FILE: cannot read {workspace.cwd / 'nope'}" in log


def test_key_and_key_file_together_are_refused(workspace):
    path = workspace.write("key", ANTHROPIC_KEY)
    log = refused(workspace, env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                                       "ANTHROPIC_API_KEY_FILE": str(path)})
    assert "ANTHROPIC_API_KEY and ANTHROPIC_API_KEY_FILE are both set" in log
    assert ANTHROPIC_KEY not in log


def test_every_problem_is_listed_in_one_message(workspace):
    log = refused(workspace, env={"STIGMER_LLM_MAX_TOKENS": "abc",
                                       "STIGMER_LLM_PROVIDER": "gemini"})
    assert "STIGMER_LLM_MAX_TOKENS" in log and "STIGMER_LLM_PROVIDER" in log


def test_selected_mode_without_required_key_is_refused(server_process):
    log = refused_by_the_command(server_process, ["--mode", "cloud"])
    assert "api_key is required for provider anthropic" in log


def test_other_mode_without_key_is_reported_not_fatal(server_process):
    handle = server_process()
    handle.wait_for(r"cloud mode \(on request\) is not usable: api_key is required")


def test_startup_block_shows_each_value_and_its_origin(server_process):
    handle = server_process(env={"STIGMER_LLM_MODEL": "llama3.1:8b"})
    handle.wait_for(r"serving on 127\.0\.0\.1:\d+ \(mode local, from default mode\)")
    handle.wait_for(r"model\s+llama3\.1:8b\s+env\s+STIGMER_LLM_MODEL")
    handle.wait_for(r"base_url\s+http://localhost:11434\s+default\s+local mode default")


def test_startup_block_shows_a_key_hint_never_the_key(server_process):
    handle = server_process(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    handle.wait_for(r"api_key\s+sk-ant-…f2c9\s+env\s+ANTHROPIC_API_KEY")
    handle.proc.send_signal(signal.SIGTERM)
    handle.finish()
    assert ANTHROPIC_KEY not in handle.log
    assert ANTHROPIC_KEY[-12:] not in handle.log


def test_sigterm_stops_gracefully_with_exit_0(server_process):
    handle = server_process()
    with llmconfig.Client(handle.target) as client:
        assert client.resolve().config.provider == "ollama"
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    handle.wait_for("stopping: NOT_SERVING")


def test_sigterm_turns_health_not_serving_before_stopping(server_process):
    handle = server_process(["--shutdown-grace", "1"])
    channel = grpc.insecure_channel(handle.target)
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service="llmconfig.v1.LLMConfigService"), timeout=20)
    seen = []

    def read() -> None:
        try:
            for update in watch:
                seen.append(update.status)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    handle.wait_for("serving on")
    while not seen:
        threading.Event().wait(0.02)
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    reader.join(timeout=10)
    channel.close()
    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in seen


def test_address_in_use_exits_1_with_a_message(server_process):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        handle = server_process(["--listen", f"127.0.0.1:{port}"], wait_ready=False)
        assert handle.finish() == 1
    assert f"cannot listen on 127.0.0.1:{port}" in handle.log
    assert "Traceback" not in handle.log


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_exit_0(server_process, flag):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "llmconfig_server", flag], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0
    assert "llmconfig-server" in done.stdout


def test_missing_key_message_names_origin_and_the_key_file_first(workspace):
    log = refused(workspace, env={"STIGMER_LLM_PROVIDER": "anthropic"})
    assert (
        "api_key is required for provider anthropic (provider from STIGMER_LLM_PROVIDER); put "
        "the key in a file only the server can read and set ANTHROPIC_API_KEY_FILE to its path "
        "(or set ANTHROPIC_API_KEY or STIGMER_LLM_API_KEY)"
    ) in log
    assert "--anthropic-key" not in log  # a flag's value shows in `ps` to every user


def test_sigterm_lets_an_in_flight_call_finish(server_process, emulators):
    import providers
    from providers import Reply

    ollama = providers.ollama()
    emulators.append(ollama)
    ollama.override("/api/tags", Reply(body={"models": [{"name": "qwen2.5-coder:7b"}]},
                                       delay=1.0))
    handle = server_process(["--shutdown-grace", "5", "--probe-timeout", "5"],
                            env={"OLLAMA_BASE_URL": ollama.url})
    answers = []
    with llmconfig.Client(handle.target) as client:
        caller = threading.Thread(target=lambda: answers.append(client.check_health()))
        caller.start()
        while ollama.counts["/api/tags"] == 0:  # the probe is under way
            threading.Event().wait(0.02)
        handle.proc.send_signal(signal.SIGTERM)
        caller.join(timeout=10)
    assert handle.finish() == 0
    assert answers and answers[0].healthy


def test_invalid_probe_timeout_is_refused(workspace):
    log = refused(workspace, env={"STIGMER_LLMCONFIG_PROBE_TIMEOUT": "soon"})
    assert "STIGMER_LLMCONFIG_PROBE_TIMEOUT: 'soon' is not a number of seconds" in log
