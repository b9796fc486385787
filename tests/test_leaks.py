"""Nothing secret leaks in text (issue 15, row 10): URL credentials in any log line, the content
of a file the config path points at, a token in a client's repr or in cleartext on the network,
and a key guess tested against the revision."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys

import pytest

import llmconfig
from llmconfig._channel import security_from
from llmconfig_server.access.tokens import digest_of

from conftest import ANTHROPIC_KEY, base_env, startup_refusal

RUNNER_URLS = {
    "TEMPORAL_SERVICE_ADDRESS": "https://svc:t3mporalT0ken@temporal.example:7233",
    "REDIS_HOST": "redis://default:r3disPassw0rd@redis.example",
    "STIGMER_BACKEND_ENDPOINT": "backend:b4ckendSecret@backend.example:443",
}
URL_SECRETS = ("t3mporalT0ken", "r3disPassw0rd", "b4ckendSecret")


# -- URL credentials: one redaction for every log line ---------------------------------------

@pytest.mark.parametrize("log_format", ["text", "json"])
def test_credentials_in_runner_urls_never_reach_the_log(server_process, log_format):
    handle = server_process(["--log-format", log_format], env=RUNNER_URLS)
    handle.wait_for("runner settings")
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    assert "temporal.example" in handle.log  # the line is there…
    for secret in URL_SECRETS:
        assert secret not in handle.log  # …without what was inside the URL
    assert "https://***@temporal.example:7233" in handle.log
    if log_format == "json":
        for line in handle.lines:
            json.loads(line)


def test_credentials_in_a_reload_error_never_reach_the_log(server_process, workspace):
    path = workspace.write("config.yaml", "llm:\n  model: llama3.2\n")
    handle = server_process(["--config", str(path)])
    path.write_text("llm:\n  base_url: ftp://admin:ftpPassw0rd@files.example/\n")
    handle.proc.send_signal(signal.SIGHUP)
    handle.wait_for("still serving the last good configuration")
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    assert "ftpPassw0rd" not in handle.log


# -- a config path pointed at a file that is not a config file ------------------------------

SHADOW = ("root:$6$Zx9saltsalt$R00tHashR00tHashR00tHash/abcdefghij:19700:0:99999:7:::\n"
          "daemon:*:19700:0:99999:7:::\n"
          "alice:$y$j9T$AliceSaltAliceSalt$AliceHashAliceHashAlice:19701:0:99999:7:::\n")


def shadow_pieces() -> list[str]:
    return ["daemon", "alice", *(piece for line in SHADOW.splitlines()
                                 for piece in line.split(":") if len(piece) >= 8)]


def test_a_config_path_at_a_shadow_like_file_never_echoes_it_at_startup(workspace):
    path = workspace.write("shadow", SHADOW)
    handle = startup_refusal(workspace, ["--config", str(path)])
    assert f"{path}:1:1 (named by --config): <a key that is not a plain name>: unknown key" \
        in handle.log  # where, never what
    for piece in shadow_pieces():
        assert piece not in handle.log, piece


def test_a_config_path_at_a_shadow_like_file_never_reaches_an_answer(serve, servers,
                                                                     workspace):
    path = workspace.write("config.yaml", "llm:\n  model: llama3.2\n")
    client = serve(args=["--config", str(path)])
    path.write_text(SHADOW)
    assert servers[0].reload() == "failed"
    warnings = " ".join(client.resolve().warnings)
    assert "could not be reloaded" in warnings and ":3:1 " in warnings
    for piece in shadow_pieces():
        assert piece not in warnings, piece


def test_a_refused_value_is_described_never_quoted(workspace):
    path = workspace.write("config.yaml", "llm:\n  max_tokens: s3cretValue\n")
    handle = startup_refusal(workspace, ["--config", str(path)])
    assert f"{path}:2:15 (named by --config): llm.max_tokens: input should be a valid " \
        "integer" in handle.log
    assert "s3cretValue" not in handle.log


# -- the client: repr, cleartext ---------------------------------------------------------------

def test_a_token_is_never_in_the_repr_of_the_clients_security():
    security = security_from("llmc_repr-test-token-value", None, None, None, None)
    assert "llmc_repr-test-token-value" not in repr(security)
    assert "token=<set>" in repr(security)
    with llmconfig.Client("127.0.0.1:1", token="llmc_repr-test-token-value") as client:
        assert "llmc_repr-test-token-value" not in repr(client)


@pytest.mark.parametrize("target", ["10.11.12.13:50061", "llmconfig.example:50061",
                                    "dns:///llmconfig.example:50061"])
def test_a_token_is_not_sent_in_cleartext_beyond_this_machine(target, monkeypatch):
    monkeypatch.delenv("STIGMER_LLMCONFIG_INSECURE", raising=False)
    with pytest.raises(ValueError, match="refusing to send the llmconfig token in cleartext"):
        llmconfig.Client(target, token="llmc_cleartext-test")


def test_insecure_true_sends_a_token_in_cleartext_anyway():
    with llmconfig.Client("10.11.12.13:50061", token="llmc_x", insecure=True) as client:
        assert client.target == "10.11.12.13:50061"


@pytest.mark.parametrize("target", ["127.0.0.1:50061", "localhost:50061", "[::1]:50061",
                                    "unix:/run/stigmer/llmconfig.sock", "127.1:50061"])
def test_a_token_to_this_machine_needs_no_tls(target):
    with llmconfig.Client(target, token="llmc_x") as client:
        assert client.target == target


def test_a_token_over_tls_goes_anywhere(workspace):
    ca = workspace.write("ca.pem", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    with llmconfig.Client("llmconfig.example:50061", token="llmc_x", ca_file=str(ca)):
        pass


def test_the_cli_refuses_a_cleartext_token_and_says_how_to_allow_it(workspace):
    token = workspace.write("runner.token", "llmc_cli-cleartext\n")
    env = {k: v for k, v in base_env(workspace).items() if not k.startswith("STIGMER_")}
    args = [sys.executable, "-m", "llmconfig", "resolve", "--target", "10.11.12.13:50061",
            "--token-file", str(token), "--timeout", "0.5"]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)
    assert refused.returncode == 2
    assert "--insecure" in refused.stderr and "--ca-file" in refused.stderr
    tried = subprocess.run([*args, "--insecure"], capture_output=True, text=True, timeout=30,
                           env=env)
    assert tried.returncode == 3  # sent, and nobody answers there


# -- the revision cannot test a key guess ----------------------------------------------------

def old_revision(config: tuple[object, ...]) -> str:
    """The revision as main computed it: the key as a plain SHA-256, so anyone who saw a
    revision could recompute it for a guessed key."""
    *head, key, max_tokens, temperature = config
    key_digest = hashlib.sha256(str(key).encode()).hexdigest()
    text = "\x1f".join(map(str, (*head, key_digest, max_tokens, temperature)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tokens_file(workspace, name: str, token: str) -> str:
    return str(workspace.write(name, f"tokens:\n  - name: runner\n    sha256: "
                                     f"{digest_of(token)}\n    scopes: [resolve]\n"))


def test_a_guessed_key_cannot_be_checked_against_the_revision(serve, workspace):
    tokens = tokens_file(workspace, "tokens.yaml", "llmc_revision-test")
    answer = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--tokens-file", tokens],
                   client_options={"token": "llmc_revision-test"}).resolve()
    config = answer.config
    guess = (config.mode, config.provider, config.model, config.base_url,
             config.openai_base_url, ANTHROPIC_KEY, config.max_tokens, config.temperature)
    assert answer.revision != old_revision(guess)  # the right guess is not confirmed


def test_replicas_with_the_same_tokens_file_agree_on_revisions(serve, workspace):
    tokens = tokens_file(workspace, "tokens.yaml", "llmc_revision-test")
    answers = [serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--tokens-file", tokens],
                     client_options={"token": "llmc_revision-test"}).resolve()
               for _ in range(2)]
    assert answers[0].revision == answers[1].revision


def test_the_revision_of_a_key_depends_on_a_secret_of_the_server(serve, workspace):
    first = tokens_file(workspace, "a.yaml", "llmc_revision-a")
    second = tokens_file(workspace, "b.yaml", "llmc_revision-b")
    a = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--tokens-file", first],
              client_options={"token": "llmc_revision-a"}).resolve()
    b = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--tokens-file", second],
              client_options={"token": "llmc_revision-b"}).resolve()
    assert a.config == b.config and a.revision != b.revision


def test_a_config_without_a_secret_has_the_same_revision_everywhere(serve, workspace):
    tokens = tokens_file(workspace, "tokens.yaml", "llmc_revision-test")
    plain = serve().resolve()
    guarded = serve(args=["--tokens-file", tokens],
                    client_options={"token": "llmc_revision-test"}).resolve()
    assert plain.revision == guarded.revision
