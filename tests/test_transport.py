"""Listeners, TLS and the exposure policy: Unix sockets (mode, stale and live sockets), TLS and
mTLS, refusing to serve keys beyond loopback without tokens and TLS, and `token new`."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import llmconfig
from llmconfig_server.access.tokens import digest_of

import pki
from conftest import ANTHROPIC_KEY, base_env, startup_refusal

TOKEN = "llmc_transport-test-token"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pki.Pki:
    return pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tokens_file(workspace) -> Path:
    return workspace.write("tokens.yaml", f"tokens:\n  - name: runner\n    sha256: "
                                          f"{digest_of(TOKEN)}\n    scopes: [resolve, secrets]\n")


def tls_args(certs: pki.Pki) -> list[str]:
    return ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]


# -- Unix sockets ---------------------------------------------------------------------------

def test_unix_socket_serves_the_client(serve, socket_dir):
    client = serve(args=["--listen", f"unix:{socket_dir}/llmc.sock"])
    assert client.target == f"unix:{socket_dir}/llmc.sock"
    assert client.resolve().config.provider == "ollama"


def test_unix_socket_is_created_with_mode_0660(serve, socket_dir):
    serve(args=["--listen", f"unix:{socket_dir}/llmc.sock"])
    info = (socket_dir / "llmc.sock").stat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660


def test_a_stale_socket_of_a_dead_server_is_replaced(serve, socket_dir):
    path = socket_dir / "llmc.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening, then closed: the file stays behind
    assert path.exists()
    assert serve(args=["--listen", f"unix:{path}"]).resolve().config.provider == "ollama"


def test_a_live_socket_is_refused_with_exit_1(serve, server_process, socket_dir):
    path = socket_dir / "llmc.sock"
    live = serve(args=["--listen", f"unix:{path}"])
    handle = server_process(["--listen", f"unix:{path}"], wait_ready=False)
    assert handle.finish() == 1
    assert "another server is serving on it" in handle.log
    assert live.resolve().config.provider == "ollama"  # the first server was not disturbed


def test_a_file_in_the_way_of_the_socket_is_refused_with_exit_1(server_process, socket_dir):
    (socket_dir / "llmc.sock").write_text("not a socket")
    handle = server_process(["--listen", f"unix:{socket_dir}/llmc.sock"], wait_ready=False)
    assert handle.finish() == 1
    assert "exists and is not a socket" in handle.log


def test_listen_variable_takes_a_comma_separated_list(serve, socket_dir):
    path = socket_dir / "llmc.sock"
    first = serve(env={"STIGMER_LLMCONFIG_LISTEN": f"unix:{path}, 127.0.0.1:0"})
    assert first.target == f"unix:{path}"
    with llmconfig.Client(f"unix:{path}") as client:
        assert client.resolve().config.provider == "ollama"


def test_unix_socket_needs_no_tokens(server_process, socket_dir):
    handle = server_process(["--listen", f"unix:{socket_dir}/llmc.sock"])
    handle.wait_for("access: no tokens: every caller is trusted")


# -- the exposure policy ----------------------------------------------------------------------

def refused(workspace, args: list[str]) -> str:
    """What the command prints refusing to start (exit 2), from its own rules in-process."""
    handle = startup_refusal(workspace, args)
    assert "Traceback" not in handle.log
    return handle.log


def test_beyond_loopback_without_tokens_is_refused_naming_tokens_file(workspace):
    log = refused(workspace, ["--listen", "0.0.0.0:0"])
    assert "--listen 0.0.0.0:0 is reachable from other machines and there is no --tokens-file" \
        in log
    assert "--insecure" in log


def test_beyond_loopback_with_tokens_but_no_tls_is_refused_naming_tls_cert(workspace, tokens_file):
    log = refused(workspace, ["--listen", "0.0.0.0:0", "--tokens-file", str(tokens_file)])
    assert "without TLS" in log and "--tls-cert FILE --tls-key FILE" in log


def test_insecure_serves_beyond_loopback_with_a_warning(server_process):
    handle = server_process(["--listen", "0.0.0.0:0", "--insecure"])
    handle.wait_for(r"WARNING .*--insecure: serving anyway although --listen 0\.0\.0\.0:0")


def test_beyond_loopback_with_tokens_and_tls_starts(server_process, tokens_file, certs):
    handle = server_process(["--listen", "0.0.0.0:0", "--tokens-file", str(tokens_file),
                             *tls_args(certs)])
    handle.wait_for(r"access: tokens from .*tokens\.yaml \(1 entries\); TCP transport security: "
                    r"TLS")


def test_loopback_with_tokens_needs_no_tls(serve, tokens_file):
    client = serve(args=["--tokens-file", str(tokens_file)], client_options={"token": TOKEN})
    assert client.resolve().config.provider == "ollama"


# -- TLS and mTLS ---------------------------------------------------------------------------

def test_tls_call_verified_against_the_ca_is_served(serve, certs, tokens_file):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   args=[*tls_args(certs), "--tokens-file", str(tokens_file)],
                   client_options={"token": TOKEN, "ca_file": str(certs.ca)})
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY


def test_a_plaintext_client_cannot_talk_to_a_tls_listener(serve, certs):
    target = serve(args=tls_args(certs)).target
    with llmconfig.Client(target, timeout=1) as plain, \
            pytest.raises(llmconfig.ServiceUnavailable):
        plain.resolve()


def test_a_server_certificate_from_another_ca_is_refused(serve, certs):
    target = serve(args=tls_args(certs)).target
    with llmconfig.Client(target, timeout=1, ca_file=str(certs.other_ca)) as client, \
            pytest.raises(llmconfig.ServiceUnavailable):
        client.resolve()


def test_mtls_refuses_a_client_without_a_certificate(serve, certs):
    target = serve(args=[*tls_args(certs), "--tls-client-ca", str(certs.ca)]).target
    with llmconfig.Client(target, timeout=1, ca_file=str(certs.ca)) as client, \
            pytest.raises(llmconfig.ServiceUnavailable):
        client.resolve()


def test_mtls_serves_a_client_with_a_certificate_from_the_ca(serve, certs):
    target = serve(args=[*tls_args(certs), "--tls-client-ca", str(certs.ca)]).target
    with llmconfig.Client(target, ca_file=str(certs.ca), cert_file=str(certs.client_cert),
                          key_file=str(certs.client_key)) as client:
        assert client.resolve().config.provider == "ollama"


def test_tls_key_without_cert_is_refused(workspace, certs):
    log = refused(workspace, ["--tls-key", str(certs.server_key)])
    assert "TLS needs both --tls-cert and --tls-key; --tls-cert is missing" in log


def test_a_tls_cert_that_is_not_pem_is_refused(workspace, certs):
    junk = workspace.write("cert.pem", "hello")
    log = refused(workspace, ["--tls-cert", str(junk), "--tls-key", str(certs.server_key)])
    assert f"--tls-cert: {junk} holds no PEM certificate" in log


# -- tokens file and `token new` ------------------------------------------------------------

def test_token_new_prints_the_token_once_and_an_entry_that_works(serve, workspace):
    done = subprocess.run([sys.executable, "-m", "llmconfig_server", "token", "new", "--name",
                           "runner", "--scopes", "resolve,secrets"], capture_output=True,
                          text=True, timeout=30, env=base_env(workspace))
    assert done.returncode == 0
    token = done.stdout.strip()
    assert token.startswith("llmc_") and len(token) > 40
    assert token not in done.stderr  # shown once
    assert f"sha256: {digest_of(token)}" in done.stderr
    entry = done.stderr[done.stderr.index("  - name: runner"):]
    path = workspace.write("tokens.yaml", "tokens:\n" + entry)
    client = serve(args=["--tokens-file", str(path)], client_options={"token": token})
    assert client.resolve().config.provider == "ollama"


def test_token_new_refuses_an_unknown_scope(workspace):
    done = subprocess.run([sys.executable, "-m", "llmconfig_server", "token", "new", "--name",
                           "x", "--scopes", "resolve,admin"], capture_output=True, text=True,
                          timeout=30, env=base_env(workspace))
    assert done.returncode == 2
    assert "unknown scope 'admin'" in done.stderr
    assert done.stdout == ""


def test_a_token_pasted_where_its_digest_belongs_is_refused_without_echoing_it(workspace):
    path = workspace.write("tokens.yaml", f"tokens:\n  - name: runner\n    sha256: {TOKEN}\n"
                                          "    scopes: [resolve]\n")
    log = refused(workspace, ["--tokens-file", str(path)])
    assert "tokens[0].sha256: must be the 64 hex characters" in log
    assert TOKEN not in log


def test_a_missing_tokens_file_is_refused(workspace):
    log = refused(workspace, ["--tokens-file", str(workspace.cwd / "nope.yaml")])
    assert "tokens file: cannot read" in log


def test_a_tokens_file_alias_bomb_is_refused_at_once(workspace):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n"
        for i in range(8))
    path = workspace.write("tokens.yaml", bomb)
    log = refused(workspace, ["--tokens-file", str(path)])
    assert f"tokens file {path}: its aliases (*name) expand to more than 10000 values" in log


def test_tokens_file_from_the_environment(server_process, tokens_file):
    handle = server_process(env={"STIGMER_LLMCONFIG_TOKENS_FILE": str(tokens_file)})
    handle.wait_for(r"access: tokens from .*tokens\.yaml")


# -- the CLI ----------------------------------------------------------------------------------

def test_cli_sends_the_token_file_over_tls(serve, workspace, certs, tokens_file):
    target = serve(args=[*tls_args(certs), "--tokens-file", str(tokens_file)]).target
    token_path = workspace.write("runner.token", TOKEN + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "llmconfig", "resolve", "--target", target, "--token-file",
         str(token_path), "--ca-file", str(certs.ca)],
        capture_output=True, text=True, timeout=30, env=base_env(workspace))
    assert done.returncode == 0, done.stderr
    assert "qwen2.5-coder:7b" in done.stdout


def test_cli_without_a_token_says_how_to_give_one(serve, workspace, tokens_file):
    target = serve(args=["--tokens-file", str(tokens_file)]).target
    env = {k: v for k, v in base_env(workspace).items() if not k.startswith("STIGMER_")}
    done = subprocess.run([sys.executable, "-m", "llmconfig", "resolve", "--target", target],
                          capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 2
    assert "UNAUTHENTICATED" in done.stderr and "STIGMER_LLMCONFIG_TOKEN_FILE" in done.stderr


def test_cli_with_an_unreadable_token_file_exits_2(workspace):
    done = subprocess.run([sys.executable, "-m", "llmconfig", "resolve", "--token-file",
                           str(workspace.cwd / "none")], capture_output=True, text=True,
                          timeout=30, env=base_env(workspace))
    assert done.returncode == 2
    assert "cannot read the llmconfig token file" in done.stderr
    assert "Traceback" not in done.stderr
