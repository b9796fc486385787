"""Revocation holds: an open WatchLLMConfig stream is authorized again at every reload (a removed
or descoped token's stream ends then), and a tokens file that is empty, missing or unloadable
refuses every token until it is fixed — fail closed — while health stays open, said once in the
log, in `llmconfig doctor` and in the metrics (issue 15, rows 3 and 4)."""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import llmconfig
from llmconfig_server.access.tokens import digest_of

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK, startup_refusal

KEEPER, RUNNER = "llmc_keeper-token", "llmc_runner-token"
WITHIN = 5.0  # seconds: a hang guard, never the thing asserted


def tokens_yaml(*entries: tuple[str, str, str]) -> str:
    return "tokens:\n" + "".join(f"  - name: {name}\n    sha256: {digest_of(token)}\n"
                                 f"    scopes: [{scopes}]\n" for name, token, scopes in entries)


BOTH = tokens_yaml(("keeper", KEEPER, "resolve, secrets"), ("runner", RUNNER, "resolve, secrets"))


class Stream:
    """client.watch() on a thread: its changes in a queue, and the error that ended it."""

    def __init__(self, client: llmconfig.Client, **kwargs: object) -> None:
        self.changes: queue.Queue[llmconfig.Change] = queue.Queue()
        self.ended: queue.Queue[BaseException] = queue.Queue()
        self._iterator = client.watch(**kwargs)  # type: ignore[arg-type]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for change in self._iterator:
                self.changes.put(change)
        except BaseException as exc:
            self.ended.put(exc)

    def next(self) -> llmconfig.Change:
        return self.changes.get(timeout=WITHIN)

    def end(self) -> BaseException:
        return self.ended.get(timeout=WITHIN)


@pytest.fixture
def guarded(serve, servers, workspace):
    """(tokens file, reload(), client(token)) for a server with a key and two tokens."""
    path = workspace.write("tokens.yaml", BOTH)
    config = workspace.write("config.yaml", "local:\n  llm:\n    model: claude-sonnet-5.5\n")
    first = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                  args=["--tokens-file", str(path), "--config", str(config),
                        "--reload-interval", "0"])
    made: list[llmconfig.Client] = []

    def client(token: str) -> llmconfig.Client:
        made.append(llmconfig.Client(first.target, token=token))
        return made[-1]

    yield path, servers[0].reload, client
    for each in made:
        each.close()


# -- row 3: streams are authorized at every event ---------------------------------------------

def test_a_removed_tokens_watch_stream_ends_unauthenticated_at_the_reload(guarded):
    path, reload, client = guarded
    stream = Stream(client(RUNNER), include_secrets=True)
    assert stream.next().resolved.config.api_key == ANTHROPIC_KEY
    path.write_text(tokens_yaml(("keeper", KEEPER, "resolve, secrets")))
    reload()  # the configuration is the same: no event would be sent
    assert isinstance(stream.end(), llmconfig.Unauthenticated)


def test_a_token_descoped_of_secrets_ends_its_keyed_stream_permission_denied(guarded):
    path, reload, client = guarded
    stream = Stream(client(RUNNER), include_secrets=True)
    stream.next()
    path.write_text(tokens_yaml(("keeper", KEEPER, "resolve, secrets"),
                                ("runner", RUNNER, "resolve")))
    reload()
    ended = stream.end()
    assert isinstance(ended, llmconfig.PermissionDenied)
    assert "'secrets'" in ended.message


def test_a_token_descoped_of_resolve_ends_its_stream_permission_denied(guarded):
    path, reload, client = guarded
    stream = Stream(client(RUNNER))
    stream.next()
    path.write_text(tokens_yaml(("keeper", KEEPER, "resolve, secrets"),
                                ("runner", RUNNER, "health")))
    reload()
    assert isinstance(stream.end(), llmconfig.PermissionDenied)


def test_a_token_still_in_the_file_keeps_its_stream_and_its_events(guarded, workspace):
    path, reload, client = guarded
    stream = Stream(client(KEEPER), include_secrets=True)
    stream.next()
    path.write_text(tokens_yaml(("keeper", KEEPER, "resolve, secrets")))
    reload()
    workspace.write("config.yaml", "local:\n  llm:\n    model: claude-opus-4.6\n")
    reload()
    assert stream.next().resolved.config.model == "claude-opus-4-6"
    assert stream.ended.empty()


# -- row 4: revocation fails closed -----------------------------------------------------------

BROKEN = {
    "an empty list": lambda path: path.write_text("tokens: []\n"),
    "a deleted file": lambda path: path.unlink(),
    "a YAML error": lambda path: path.write_text(
        tokens_yaml(("keeper", KEEPER, "resolve, secrets")) + "  - name: [unclosed\n"),
    "a typo in an entry": lambda path: path.write_text(
        tokens_yaml(("keeper", KEEPER, "resolve, secrets")).replace("scopes", "scoeps")),
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_a_tokens_file_that_cannot_be_used_refuses_every_token(guarded, how):
    path, reload, client = guarded
    assert client(RUNNER).resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY
    BROKEN[how](path)
    reload()
    for token in (RUNNER, KEEPER):
        with pytest.raises(llmconfig.Unauthenticated) as caught:
            client(token).resolve(include_secrets=True)
        assert caught.value.reason == "TOKENS_FILE_UNUSABLE"


def test_an_unusable_tokens_file_ends_the_open_streams(guarded):
    path, reload, client = guarded
    stream = Stream(client(KEEPER), include_secrets=True)
    stream.next()
    path.write_text("tokens: [\n")
    reload()
    assert isinstance(stream.end(), llmconfig.Unauthenticated)


def test_health_stays_open_while_the_tokens_file_is_unusable(guarded):
    path, reload, client = guarded
    path.unlink()
    reload()
    with grpc.insecure_channel(client(KEEPER).target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=WITHIN)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_a_fixed_tokens_file_accepts_its_tokens_again(guarded):
    path, reload, client = guarded
    path.write_text("tokens: [\n")
    reload()
    path.write_text(BOTH)
    reload()
    assert client(KEEPER).resolve().config.provider == "anthropic"


def test_a_token_removed_beside_a_broken_config_file_is_refused(guarded, workspace):
    path, reload, client = guarded
    workspace.write("config.yaml", "local:\n  llm:\n    model: [unclosed\n")
    path.write_text(tokens_yaml(("keeper", KEEPER, "resolve, secrets")))
    assert reload() == "failed"  # the last good configuration is served…
    assert client(KEEPER).resolve().config.model == "claude-sonnet-5-5"
    with pytest.raises(llmconfig.Unauthenticated):  # …but not to the removed token
        client(RUNNER).resolve()


def test_an_unusable_tokens_file_is_logged_once(guarded, caplog):
    path, reload, _ = guarded
    caplog.set_level(logging.INFO, logger="llmconfig_server")
    path.write_text("tokens: [\n")
    for _ in range(3):
        reload()
    said = [r for r in caplog.records if "every token is refused" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.ERROR and str(path) in said[0].getMessage()


def test_doctor_says_the_tokens_file_is_unusable(guarded, workspace, capsys):
    from llmconfig._cli import main

    path, reload, client = guarded
    path.write_text("tokens: []\n")
    reload()
    token_file = workspace.write("keeper.token", KEEPER + "\n")
    code = main(["doctor", "--target", client(KEEPER).target, "--token-file", str(token_file),
                 "--color", "never"])
    assert code == 2
    assert "tokens file lists none" in capsys.readouterr().out


def test_metrics_say_whether_the_tokens_file_accepts_tokens(serve, servers, workspace):
    import urllib.request

    path = workspace.write("tokens.yaml", BOTH)
    serve(args=["--tokens-file", str(path), "--metrics-listen", "127.0.0.1:0",
                "--reload-interval", "0"])

    def gauge() -> str:
        url = f"http://{servers[0].running.metrics_address}/metrics"
        with urllib.request.urlopen(url, timeout=WITHIN) as answer:
            text = answer.read().decode()
        return next(line for line in text.splitlines()
                    if line.startswith("llmconfig_tokens_file_ok "))

    assert gauge() == "llmconfig_tokens_file_ok 1.0"
    path.write_text("tokens: [\n")
    servers[0].reload()
    # /metrics renders at most every 0.25 s (metrics_http.py): the next rendering says it.
    deadline = time.monotonic() + WITHIN
    while gauge() != "llmconfig_tokens_file_ok 0.0" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gauge() == "llmconfig_tokens_file_ok 0.0"


def test_an_empty_tokens_list_at_startup_serves_and_refuses_every_token(server_process,
                                                                        workspace):
    path = workspace.write("tokens.yaml", "tokens: []\n")
    handle = server_process(["--tokens-file", str(path)])
    handle.wait_for(r"ERROR .*tokens file .*tokens\.yaml lists no tokens, so every token is "
                    r"refused")
    with llmconfig.Client(handle.target, token=KEEPER) as client, \
            pytest.raises(llmconfig.Unauthenticated):
        client.resolve()
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0


def test_a_tokens_file_with_a_typo_at_startup_is_refused(workspace):
    path = workspace.write("tokens.yaml", BOTH.replace("scopes", "scoeps"))
    handle = startup_refusal(workspace, ["--tokens-file", str(path)])
    assert "tokens[0]: unknown key scoeps" in handle.log
    assert "every token is refused" not in handle.log  # at startup nothing is served yet


def test_a_keyed_stream_of_a_trusted_unix_caller_is_not_cut_by_reloads(serve, servers,
                                                                       socket_dir, workspace):
    # Without tokens there is nothing to revoke: a reload leaves a keyed stream alone.
    config = workspace.write("config.yaml", "local:\n  llm:\n    model: claude-sonnet-5.5\n")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   args=["--listen", f"unix:{socket_dir}/llmc.sock", "--config", str(config),
                         TRUST_LOOPBACK])
    stream = Stream(client, include_secrets=True)
    stream.next()
    config.write_text("local:\n  llm:\n    model: claude-opus-4.6\n")
    servers[0].reload()
    assert stream.next().resolved.config.api_key == ANTHROPIC_KEY
    time.sleep(0.1)
    assert stream.ended.empty()
