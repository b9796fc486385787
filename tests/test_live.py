"""Live configuration: reload on file changes (Kubernetes' `..data` swap included), SIGHUP and
the periodic check; the last good state kept through a broken update, with a warning; tokens
and TLS files reloaded; WatchLLMConfig's events; streams across restarts and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

import llmconfig
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc
from llmconfig_server.access.tokens import digest_of
from llmconfig_server.service import REVISION_HEADER

import pki
from conftest import (
    ANTHROPIC_KEY,
    TRUST_LOOPBACK,
    ServerThread,
    base_env,
    inputs_for,
    startup_refusal,
)

WITHIN = 3.0  # seconds: the promise for a changed file to be served


def eventually(check: Callable[[], object], within: float = WITHIN) -> object:
    deadline = time.monotonic() + within
    while True:
        try:
            if result := check():
                return result
        except (AssertionError, llmconfig.LLMConfigError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        time.sleep(0.05)


class Mounted:
    """A folder as Kubernetes mounts a ConfigMap or Secret: the files are symlinks through
    `..data`, which an update swaps atomically to a new timestamped folder."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.generation = 0
        self._write(files)
        for name in files:
            (root / name).symlink_to(f"..data/{name}")

    def _write(self, files: dict[str, str]) -> None:
        self.generation += 1
        folder = self.root / f"..2026_12_01_{self.generation:02d}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        (self.root / "..data_tmp").symlink_to(folder.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")

    def update(self, files: dict[str, str]) -> None:
        old = (self.root / "..data").resolve()
        self._write(files)
        shutil.rmtree(old)

    def path(self, name: str) -> Path:
        return self.root / name


def config(model: str) -> str:
    return f"local:\n  llm:\n    model: {model}\n"


# -- reload triggers --------------------------------------------------------------------------

def test_configmap_data_swap_of_the_config_file_is_served_within_3_s(serve, workspace):
    mount = Mounted(workspace.cwd / "config", {"config.yaml": config("llama3.2")})
    client = serve(args=["--config", str(mount.path("config.yaml"))])
    assert client.resolve().config.model == "llama3.2:3b"
    mount.update({"config.yaml": config("qwen2.5-coder:14b")})
    eventually(lambda: client.resolve().config.model == "qwen2.5-coder:14b")


def test_secret_file_data_swap_rotates_the_key_within_3_s(serve, workspace):
    mount = Mounted(workspace.cwd / "secrets", {"anthropic": ANTHROPIC_KEY + "\n"})
    client = serve(args=[TRUST_LOOPBACK],
                   env={"ANTHROPIC_API_KEY_FILE": str(mount.path("anthropic"))})
    assert client.resolve(include_secrets=True).config.api_key == ANTHROPIC_KEY
    rotated = ANTHROPIC_KEY.replace("f2c9", "77aa")
    mount.update({"anthropic": rotated + "\n"})
    eventually(lambda: client.resolve(include_secrets=True).config.api_key == rotated)


def test_a_plain_rewrite_of_the_config_file_is_served(serve, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    client = serve()
    path.write_text(config("qwen2.5-coder:14b"))
    eventually(lambda: client.resolve().config.model == "qwen2.5-coder:14b")


def test_a_config_file_created_after_start_is_found_by_the_periodic_check(serve, workspace):
    client = serve(args=["--reload-interval", "0.5"])
    assert client.resolve().config.model == "qwen2.5-coder:7b"
    workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    eventually(lambda: client.resolve().config.model == "llama3.2:3b")


def test_sighup_reloads_instead_of_killing_the_server(server_process, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    handle = server_process(["--reload-interval", "0"])
    path.write_text(config("qwen2.5-coder:14b"))
    handle.proc.send_signal(signal.SIGHUP)
    handle.wait_for(r"reload \((SIGHUP|file change)\) applied")
    with llmconfig.Client(handle.target) as client:
        assert client.resolve().config.model == "qwen2.5-coder:14b"
    assert handle.proc.poll() is None
    handle.proc.send_signal(signal.SIGHUP)  # nothing changed: nothing happens
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    assert handle.log.count("applied") == 1


def test_reload_interval_must_be_plain_seconds(workspace):
    handle = startup_refusal(workspace, ["--reload-interval", "soon"])
    assert "--reload-interval: 'soon' is not a number of seconds" in handle.log


# -- broken updates ----------------------------------------------------------------------------

def test_a_broken_update_keeps_the_last_good_state_with_a_warning(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    client = serve()
    path.write_text("local:\n  llm:\n    model: [unclosed\n")
    assert servers[0].reload() == "failed"
    resolved = client.resolve()
    assert resolved.config.model == "llama3.2:3b"
    warning = resolved.warnings[-1]
    assert "could not be reloaded (since 20" in warning
    assert ".stigmer/llmconfig.yaml:" in warning and "invalid YAML" in warning
    assert warning.endswith("serving the last good configuration")


def test_a_fixed_update_clears_the_warning_and_is_served(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    client = serve()
    path.write_text("local:\n  llm:\n    modle: x\n")
    servers[0].reload()
    path.write_text(config("qwen2.5-coder:14b"))
    assert servers[0].reload() == "applied"
    resolved = client.resolve()
    assert resolved.config.model == "qwen2.5-coder:14b"
    assert not any("could not be reloaded" in w for w in resolved.warnings)


def test_a_broken_update_is_logged_once(serve, servers, workspace, caplog):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    serve()
    path.write_text("local:\n  llm:\n    modle: x\n")
    for _ in range(3):
        servers[0].reload()
    failures = [r for r in caplog.records if "failed; still serving" in r.getMessage()]
    assert len(failures) == 1
    assert "local.llm.modle: unknown key" in failures[0].getMessage()


def test_an_update_that_breaks_the_servers_own_mode_is_refused(server_process, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    handle = server_process()
    path.write_text("local:\n  llm:\n    provider: anthropic\n")  # no key: local is invalid
    handle.proc.send_signal(signal.SIGHUP)
    handle.wait_for("failed; still serving the last good configuration: api_key is required")
    with llmconfig.Client(handle.target) as client:
        assert client.resolve().config.model == "llama3.2:3b"


def test_doctor_shows_the_broken_update(serve, servers, workspace, capsys):
    from llmconfig._cli import main

    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    client = serve()
    path.write_text("llm: [\n")
    servers[0].reload()
    main(["doctor", "--target", client.target, "--color", "never"])
    assert "could not be reloaded" in capsys.readouterr().out


# -- tokens and TLS files ------------------------------------------------------------------

def tokens(*entries: tuple[str, str]) -> str:
    return "tokens:\n" + "".join(f"  - name: {name}\n    sha256: {digest_of(token)}\n"
                                 "    scopes: [resolve]\n" for name, token in entries)


def test_a_rewritten_tokens_file_is_applied(serve, workspace):
    path = workspace.write("tokens.yaml", tokens(("old", "llmc_old-token")))
    target = serve(args=["--tokens-file", str(path)]).target
    with llmconfig.Client(target, token="llmc_old-token") as old, \
            llmconfig.Client(target, token="llmc_new-token") as new:
        assert old.resolve()
        path.write_text(tokens(("new", "llmc_new-token")))
        eventually(lambda: new.resolve())
        with pytest.raises(llmconfig.Unauthenticated):
            old.resolve()


def test_rotated_tls_files_are_used_for_new_connections(serve, workspace, tmp_path):
    certs = pki.make(tmp_path / "pki")
    mount = Mounted(workspace.cwd / "tls", {"tls.crt": certs.server_cert.read_text(),
                                            "tls.key": certs.server_key.read_text()})
    target = serve(args=["--tls-cert", str(mount.path("tls.crt")), "--tls-key",
                         str(mount.path("tls.key"))]).target
    with llmconfig.Client(target, ca_file=str(certs.ca)) as client:
        assert client.resolve()
    mount.update({"tls.crt": certs.other_server_cert.read_text(),
                  "tls.key": certs.other_server_key.read_text()})

    def other_ca_works() -> bool:
        with llmconfig.Client(target, ca_file=str(certs.other_ca), timeout=1) as fresh:
            try:
                return bool(fresh.resolve())
            except llmconfig.ServiceUnavailable:
                return False

    eventually(other_ca_works)
    with llmconfig.Client(target, ca_file=str(certs.ca), timeout=1) as stale, \
            pytest.raises(llmconfig.ServiceUnavailable):
        stale.resolve()


def test_the_health_cache_goes_with_the_old_snapshot(serve, workspace, emulators):
    import providers

    ollama = providers.ollama()
    emulators.append(ollama)
    path = workspace.write("~/.stigmer/llmconfig.yaml", f"llm:\n  base_url: {ollama.url}\n")
    client = serve()
    assert client.check_health().healthy
    assert client.check_health().cached
    path.write_text(f"llm:\n  base_url: {ollama.url}\n  model: llama3.2\n")
    eventually(lambda: client.resolve().config.model == "llama3.2:3b")
    assert not client.check_health(model="qwen2.5-coder:7b").cached


# -- WatchLLMConfig ----------------------------------------------------------------------------

class Watcher:
    """client.watch() on a thread of its own; its changes arrive in a queue."""

    def __init__(self, client: llmconfig.Client, **kwargs: object) -> None:
        self.changes: queue.Queue[llmconfig.Change] = queue.Queue()
        self.error: list[BaseException] = []
        self._stream = client.watch(**kwargs)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for change in self._stream:
                self.changes.put(change)
        except BaseException as exc:
            self.error.append(exc)

    def next(self, timeout: float = WITHIN) -> llmconfig.Change:
        return self.changes.get(timeout=timeout)

    def quiet(self, seconds: float = 0.5) -> bool:
        try:
            self.changes.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


def test_watch_sends_the_current_resolution_at_once(serve):
    change = Watcher(serve()).next()
    assert change.ok and change.resolved.config.model == "qwen2.5-coder:7b"


def test_watch_skips_the_first_event_when_the_revision_is_known(serve):
    client = serve()
    revision = client.resolve().revision
    assert Watcher(client, known_revision=revision).quiet()


def test_watch_says_its_starting_revision_in_a_header_before_any_event(serve):
    client = serve()
    revision = client.resolve().revision
    with grpc.insecure_channel(client.target) as channel:
        stub = pb_grpc.LLMConfigServiceStub(channel)
        known = stub.WatchLLMConfig(pb.WatchLLMConfigRequest(known_revision=revision))
        fresh = stub.WatchLLMConfig(pb.WatchLLMConfigRequest())
        try:
            # Known: no event follows, and the header alone says the stream is open and current.
            assert (REVISION_HEADER, revision) in known.initial_metadata()
            assert (REVISION_HEADER, revision) in fresh.initial_metadata()
            assert next(fresh).config.revision == revision
        finally:
            known.cancel()
            fresh.cancel()


def test_watch_sends_one_event_per_change_of_the_callers_resolution(serve, servers, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    watcher = Watcher(serve())
    assert watcher.next().resolved.config.model == "llama3.2:3b"
    path.write_text(config("qwen2.5-coder:14b"))
    assert watcher.next().resolved.config.model == "qwen2.5-coder:14b"
    path.write_text(config("qwen2.5-coder:14b") + "cloud:\n  llm:\n    max_tokens: 1000\n")
    servers[0].reload()  # the cloud section changed: not this caller's resolution
    assert watcher.quiet()


def test_watch_survives_a_config_that_turns_invalid_and_valid_again(serve, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", "cloud:\n  llm:\n    provider: anthropic\n")
    watcher = Watcher(serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}), mode="cloud")
    assert watcher.next().ok
    path.write_text("cloud:\n  llm:\n    provider: openai\n")  # cloud needs a key now
    change = watcher.next()
    assert not change.ok
    assert isinstance(change.error, llmconfig.PreconditionFailed)
    assert change.error.reason == "API_KEY_MISSING"
    path.write_text("cloud:\n  llm:\n    provider: anthropic\n")
    assert watcher.next().resolved.config.provider == "anthropic"


def test_watch_with_secrets_needs_the_scope(serve, workspace):
    path = workspace.write("tokens.yaml", tokens(("runner", "llmc_runner-token")))
    client = serve(args=["--tokens-file", str(path)], client_options={
        "token": "llmc_runner-token"})
    watcher = Watcher(client, include_secrets=True)
    watcher.thread.join(timeout=WITHIN)
    assert watcher.error and isinstance(watcher.error[0], llmconfig.PermissionDenied)


def test_watch_reconnects_across_a_server_restart(workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = ServerThread(inputs_for(workspace, args=["--listen", f"127.0.0.1:{port}"]))
    with llmconfig.Client(first.target) as client:
        watcher = Watcher(client)
        assert watcher.next().resolved.config.model == "llama3.2:3b"
        first.stop()
        path.write_text(config("qwen2.5-coder:14b"))
        second = ServerThread(inputs_for(workspace, args=["--listen", f"127.0.0.1:{port}"]))
        try:
            assert watcher.next(timeout=10).resolved.config.model == "qwen2.5-coder:14b"
            assert watcher.quiet()  # reconnected with its revision: nothing repeated
        finally:
            second.stop()


def test_sigterm_ends_open_watch_streams_with_unavailable(server_process):
    handle = server_process(["--drain-seconds", "0.2", "--shutdown-grace", "120"])
    request = pb.WatchLLMConfigRequest().SerializeToString()

    async def watch_then_stop() -> tuple[list[str], float]:
        # 500 streams over 6 connections: one carries at most --max-concurrent-streams (100).
        channels = [grpc.aio.insecure_channel(handle.target,
                                              options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(6)]
        async with contextlib.AsyncExitStack() as stack:
            for channel in channels:
                await stack.enter_async_context(channel)
            calls = [channel.unary_stream("/llmconfig.v1.LLMConfigService/WatchLLMConfig",
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
                     for channel in channels]
            streams = [calls[n % len(calls)](request) for n in range(500)]
            for stream in streams:
                await stream.read()  # the first event: every stream is open
            began = time.monotonic()
            handle.proc.send_signal(signal.SIGTERM)
            codes = []
            for stream in streams:
                try:
                    await stream.read()
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
                else:
                    codes.append(str(await stream.code()))
            return codes, time.monotonic() - began

    codes, took = asyncio.run(watch_then_stop())
    assert handle.finish() == 0
    assert set(codes) == {"UNAVAILABLE"}, set(codes)
    assert took < 60, took  # the grace is 120 s: streams did not hold the server up


def test_cli_watch_prints_a_line_per_change_and_exits_0_on_ctrl_c(serve, workspace):
    path = workspace.write("~/.stigmer/llmconfig.yaml", config("llama3.2"))
    target = serve().target
    proc = subprocess.Popen([sys.executable, "-m", "llmconfig", "watch", "--target", target,
                             "--json"], stdout=subprocess.PIPE, text=True,
                            env=base_env(workspace))
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["resolved"]["config"]["model"] == "llama3.2:3b"
        assert "api_key" not in first["resolved"]["config"]
        path.write_text(config("qwen2.5-coder:14b"))
        second = json.loads(proc.stdout.readline())
        assert second["resolved"]["config"]["model"] == "qwen2.5-coder:14b"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_file_events_are_not_logged_so_a_log_beside_a_key_cannot_loop(server_process,
                                                                       workspace):
    key = workspace.write("secrets/anthropic", ANTHROPIC_KEY + "\n")
    handle = server_process(env={"ANTHROPIC_API_KEY_FILE": str(key)})
    for n in range(5):
        (key.parent / "server.log").write_text(f"line {n}\n")
        time.sleep(0.15)
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    assert "change detected" not in handle.log
