"""ResolveRunnerConfig: seed 004's local and cloud tables, sessions, secrets, the config file's
runner sections, problems that never stop the server, and endpoints as a container sees them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import llmconfig
from llmconfig_server.access.tokens import digest_of

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK, base_env

BACKEND_KEY = "stk_live_TESTKEYtestkeyTESTKEY-0b7e"
DAYTONA_KEY = "dtn_TESTKEYtestkeyTESTKEYtestkey-5c1d"
CLOUD_ENV = {
    "MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    "TEMPORAL_SERVICE_ADDRESS": "temporal.prod.internal:7233", "TEMPORAL_NAMESPACE": "stigmer",
    "STIGMER_BACKEND_ENDPOINT": "api.stigmer.internal:443", "STIGMER_API_KEY": BACKEND_KEY,
    "DAYTONA_API_KEY": DAYTONA_KEY, "REDIS_HOST": "redis.prod.internal",
}


def test_local_defaults_are_seed_004s_table(serve):
    runner = serve().resolve_runner()
    c = runner.config
    assert c.mode == "local"
    assert (c.temporal.address, c.temporal.namespace, c.temporal.task_queue,
            c.temporal.max_concurrency) == ("localhost:7233", "default",
                                            "agent_execution_runner", 10)
    assert c.backend.endpoint == "localhost:7234"  # the daemon's port (Stigmer's DaemonPort)
    assert c.backend.api_key_present and c.backend.api_key == ""  # no secrets unasked
    assert (c.sandbox.type, c.sandbox.root_dir) == ("filesystem", "./workspace")
    assert not c.redis.enabled
    assert runner.llm.config.provider == "ollama"
    assert runner.origin("temporal.address").detail == "local mode default"


def test_cloud_with_every_value_is_seed_004s_table(serve):
    runner = serve(args=[TRUST_LOOPBACK], env=CLOUD_ENV).resolve_runner(include_secrets=True)
    c = runner.config
    assert c.mode == "cloud"
    assert c.temporal.address == "temporal.prod.internal:7233"
    assert c.temporal.task_queue == "agent_execution_runner"  # same default in cloud
    assert c.backend.api_key == BACKEND_KEY
    assert (c.sandbox.type, c.sandbox.daytona_api_key) == ("daytona", DAYTONA_KEY)
    assert c.sandbox.root_dir == ""
    assert (c.redis.enabled, c.redis.host, c.redis.port) == (True, "redis.prod.internal", 6379)
    assert runner.llm.config.provider == "anthropic"
    assert runner.origin("redis.host").detail == "REDIS_HOST"


def test_cloud_lists_every_missing_value_in_one_precondition(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve_runner("cloud")
    subjects = {v.subject for v in caught.value.violations}
    assert subjects == {"TEMPORAL_SERVICE_ADDRESS", "TEMPORAL_NAMESPACE",
                        "STIGMER_BACKEND_ENDPOINT", "STIGMER_API_KEY", "DAYTONA_API_KEY",
                        "REDIS_HOST"}
    assert all(v.reason == "REQUIRED_VALUE_MISSING" for v in caught.value.violations)


def test_a_missing_llm_key_is_listed_with_the_runner_problems(serve):
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        serve().resolve_runner("cloud")
    reasons = {v.reason for v in caught.value.violations}
    assert {"API_KEY_MISSING", "REQUIRED_VALUE_MISSING"} <= reasons


def test_a_session_gets_its_own_sandbox_folder(serve):
    runner = serve(env={"SANDBOX_ROOT_DIR": "/srv/work/"}).resolve_runner(session_id="s-42")
    assert runner.config.sandbox.root_dir == "/srv/work/sessions/s-42"
    assert runner.origin("sandbox.root_dir").detail.endswith("/sessions/s-42 for the request's "
                                                             "session_id")


@pytest.mark.parametrize("session", ["../etc", "a/b", "..", "a\\b", "x" * 200, "a..b"])
def test_a_session_id_that_could_leave_the_sandbox_is_invalid_argument(serve, session):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve().resolve_runner(session_id=session)
    assert caught.value.reason == "INVALID_SESSION_ID"


def test_runner_secrets_come_from_files_too(serve, workspace):
    path = workspace.write("backend.key", BACKEND_KEY + "\n")
    runner = serve(args=[TRUST_LOOPBACK],
                   env={"STIGMER_API_KEY_FILE": str(path)}).resolve_runner(include_secrets=True)
    assert runner.config.backend.api_key == BACKEND_KEY
    assert runner.origin("backend.api_key").detail == f"STIGMER_API_KEY_FILE ({path})"


def test_runner_secrets_need_the_secrets_scope(serve, workspace):
    path = workspace.write("tokens.yaml", f"tokens:\n  - name: runner\n    sha256: "
                                          f"{digest_of('llmc_r')}\n    scopes: [resolve]\n")
    client = serve(args=["--tokens-file", str(path)], client_options={"token": "llmc_r"})
    assert client.resolve_runner().config.backend.api_key_present
    with pytest.raises(llmconfig.PermissionDenied):
        client.resolve_runner(include_secrets=True)


def test_the_config_files_mode_runner_section_beats_its_runner_section(serve):
    client = serve(files={"~/.stigmer/llmconfig.yaml": (
        "runner:\n  temporal: {address: 'temporal.lan:7233', max_concurrency: 4}\n"
        "local:\n  runner:\n    temporal: {address: 'localhost:7234'}\n")})
    runner = client.resolve_runner()
    assert runner.config.temporal.address == "localhost:7234"
    assert runner.config.temporal.max_concurrency == 4
    assert runner.origin("temporal.address").detail.endswith(
        "~/.stigmer/llmconfig.yaml: local.runner.temporal.address")


def test_the_environment_beats_the_config_file(serve):
    client = serve(env={"TEMPORAL_NAMESPACE": "ns-env"}, files={
        "~/.stigmer/llmconfig.yaml": "runner:\n  temporal: {namespace: ns-file}\n"})
    assert client.resolve_runner().config.temporal.namespace == "ns-env"


def test_a_bad_runner_value_never_stops_the_server(server_process):
    handle = server_process(env={"TEMPORAL_MAX_CONCURRENCY": "lots"})
    handle.wait_for(r"runner settings \(local mode\) are not usable: TEMPORAL_MAX_CONCURRENCY: "
                    r"'lots' is not an integer; temporal.max_concurrency must be a whole number "
                    r"between 1 and 10000")
    with llmconfig.Client(handle.target) as client:
        assert client.resolve().config.provider == "ollama"  # LLM-only callers carry on
        with pytest.raises(llmconfig.PreconditionFailed) as caught:
            client.resolve_runner()
    assert caught.value.violations[0].subject == "TEMPORAL_MAX_CONCURRENCY"


def test_redis_settings_are_ignored_in_local_mode_with_a_warning(serve):
    runner = serve(env={"REDIS_HOST": "redis.lan"}).resolve_runner()
    assert not runner.config.redis.enabled
    assert any("Redis is not used in local mode; ignoring REDIS_HOST" in w
               for w in runner.warnings)


def test_runner_settings_are_reloaded(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", "runner:\n  temporal: {namespace: one}\n")
    client = serve()
    path.write_text("runner:\n  temporal: {namespace: two}\n")
    servers[0].reload()
    assert client.resolve_runner().config.temporal.namespace == "two"


# -- endpoints as a container sees them ------------------------------------------------------

def test_docker_network_rewrites_the_llm_base_url_and_says_why(serve):
    resolved = serve().resolve(network="docker")
    assert resolved.config.base_url == "http://host.docker.internal:11434"
    assert resolved.config.openai_base_url == "http://host.docker.internal:11434/v1"
    assert resolved.origin("base_url").detail == (
        "local mode default; for a container: http://localhost:11434 → "
        "http://host.docker.internal:11434")
    assert any("OLLAMA_HOST=0.0.0.0 ollama serve" in w for w in resolved.warnings)


def test_docker_network_rewrites_every_runner_endpoint(serve):
    env = {**CLOUD_ENV, "TEMPORAL_SERVICE_ADDRESS": "127.0.0.1:7233",
           "STIGMER_BACKEND_ENDPOINT": "localhost:50051", "REDIS_HOST": "::1"}
    runner = serve(env=env).resolve_runner(network="docker")
    c = runner.config
    assert c.temporal.address == "host.docker.internal:7233"
    assert c.backend.endpoint == "host.docker.internal:50051"
    assert c.redis.host == "host.docker.internal"
    assert runner.origin("temporal.address").detail.endswith(
        "for a container: 127.0.0.1:7233 → host.docker.internal:7233")


def test_docker_network_leaves_other_hosts_alone(serve):
    runner = serve(env=CLOUD_ENV).resolve_runner(network="docker")
    assert runner.config.temporal.address == "temporal.prod.internal:7233"
    assert runner.llm.config.base_url == "https://api.anthropic.com"


def test_the_container_host_is_the_servers_to_choose(serve):
    client = serve(args=["--container-host", "172.17.0.1"])
    assert client.resolve(network="docker").config.base_url == "http://172.17.0.1:11434"


def test_the_host_network_is_the_servers_own_view(serve):
    assert serve().resolve(network="host").config.base_url == "http://localhost:11434"


def test_an_unknown_network_is_invalid_argument(serve):
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        serve().resolve(network="kubernetes")
    assert caught.value.reason == "UNKNOWN_NETWORK"


def test_the_client_reads_the_network_from_its_environment(serve, monkeypatch):
    monkeypatch.setenv("STIGMER_LLMCONFIG_NETWORK", "docker")  # read when the client is made
    client = serve()
    assert client.resolve().config.base_url == "http://host.docker.internal:11434"


def test_health_of_a_containers_url_is_checked_from_the_servers_view(serve):
    health = serve().check_health(base_url="http://host.docker.internal:11434")
    assert health.base_url == "http://localhost:11434"
    assert health.status is llmconfig.HealthStatus.UNREACHABLE  # not refused as foreign


def test_watch_sees_the_containers_view(serve):
    change = next(iter(serve().watch(network="docker")))
    assert change.resolved.config.base_url == "http://host.docker.internal:11434"


def test_cli_runner_prints_each_value_and_its_origin(serve, workspace):
    target = serve(env={"TEMPORAL_NAMESPACE": "ns1"}).target
    done = subprocess.run([sys.executable, "-m", "llmconfig", "runner", "--target", target,
                           "--session-id", "abc", "--color", "never"], capture_output=True,
                          text=True, timeout=30, env=base_env(workspace))
    assert done.returncode == 0, done.stderr
    assert "temporal.namespace            ns1" in done.stdout
    assert "TEMPORAL_NAMESPACE" in done.stdout
    assert "./workspace/sessions/abc" in done.stdout
    assert "dummy-local-key" not in done.stdout  # a hint, not the secret


def test_doctor_in_a_container_says_to_open_ollama_beyond_loopback(serve, workspace):
    target = serve().target
    done = subprocess.run([sys.executable, "-m", "llmconfig", "doctor", "--target", target,
                           "--network", "docker", "--color", "never"], capture_output=True,
                          text=True, timeout=30, env=base_env(workspace))
    assert done.returncode == 1
    assert ("Next: on the host, make Ollama listen beyond loopback: OLLAMA_HOST=0.0.0.0 ollama "
            "serve (this container reaches it at http://host.docker.internal:11434)") in done.stdout


def test_a_rotated_runner_secret_file_is_served(serve, workspace):
    import time

    path = workspace.write("secrets/backend.key", BACKEND_KEY + "\n")
    client = serve(args=[TRUST_LOOPBACK], env={"STIGMER_API_KEY_FILE": str(path)})
    rotated = BACKEND_KEY.replace("0b7e", "9f9f")
    path.write_text(rotated + "\n")
    deadline = time.monotonic() + 3
    while client.resolve_runner(include_secrets=True).config.backend.api_key != rotated:
        assert time.monotonic() < deadline, "not served within 3 s"
        time.sleep(0.05)
