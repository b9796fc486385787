"""The README's examples are run, so the docs cannot rot.

Blocks marked `<!-- session: NAME -->` hold `$ grpcurl …` and `$ llmconfig …` lines with their
output. Each session runs against a live server configured as the README says (`defaults`: as
`make run`, nothing at localhost:11434; `ollama`: OLLAMA_HOST=127.0.0.1:11435, an Ollama with
qwen2.5-coder:14b and llama3.2:3b pulled). Output is compared after normalising what changes
from run to run (latencies, timestamps, the emulator's real port).

`python tests/test_readme.py` prints the sessions' real output, to paste into the README.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llmconfig_server.flags import build_parser
from llmconfig_server.tokens import digest_of

import pki
import providers
from conftest import GRPCURL, ServerThread, Workspace, inputs_for

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
README_TARGET = "127.0.0.1:50061"
README_OLLAMA_PORT = "11435"
README_SOCKET = "/run/stigmer/llmconfig.sock"
README_KEY = "sk-ant-api03-README-example-not-a-real-key-f2c9"
README_TOKENS = {"runner": ("llmc_readme-example-token", "resolve, secrets"),
                 "daemon": ("llmc_readme-health-token", "health")}


def readme_sessions() -> dict[str, list[tuple[str, str]]]:
    text = README.read_text()
    found: dict[str, list[tuple[str, str]]] = {}
    for name, block in re.findall(r"<!-- session: (\w+) -->\s*```\w*\n(.*?)```", text, re.S):
        for chunk in re.split(r"^(?=\$ )", block, flags=re.M):
            if chunk.startswith("$ "):
                command, _, output = chunk.partition("\n")
                found.setdefault(name, []).append((command[2:], output.rstrip("\n")))
    return found


def readme_files() -> dict[str, str]:
    """Files the README shows with `<!-- file: ~/PATH -->`, by path."""
    return dict(re.findall(r"<!-- file: (\S+) -->\s*```\w*\n(.*?)```", README.read_text(),
                           re.S))


@contextmanager
def session_server(name: str, home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(target, replacements of real values by the README's) for a session. Commands run in
    `home`, where the `tls` session finds ca.pem and runner.token."""
    emulator = None
    env: dict[str, str] = {}
    replacements: dict[str, str] = {}
    args: list[str] = []
    socket_dir = None
    if name == "tls":
        certs = pki.make(home / "pki")
        (home / "ca.pem").write_bytes(certs.ca.read_bytes())
        (home / "runner.token").write_text(README_TOKENS["runner"][0] + "\n")
        (home / "tokens.yaml").write_text("tokens:\n" + "".join(
            f"  - name: {who}\n    sha256: {digest_of(token)}\n    scopes: [{scopes}]\n"
            for who, (token, scopes) in README_TOKENS.items()))
        env["ANTHROPIC_API_KEY"] = README_KEY
        args += ["--tokens-file", str(home / "tokens.yaml"), "--tls-cert",
                 str(certs.server_cert), "--tls-key", str(certs.server_key)]
    if name == "unix":
        socket_dir = Path(tempfile.mkdtemp(prefix="llmc-", dir="/tmp"))
        args += ["--listen", f"unix:{socket_dir}/llmconfig.sock"]
        replacements[str(socket_dir / "llmconfig.sock")] = README_SOCKET
    if name == "stigmer":  # the daemon's start with Stigmer's file and llmconfig's own
        for path, text in readme_files().items():
            Workspace(home, home).write(path, text)
    if name == "ollama":
        emulator = providers.ollama(["qwen2.5-coder:14b", "llama3.2:3b"], version="0.6.2")
        port = emulator.url.rsplit(":", 1)[1]
        env["OLLAMA_HOST"] = f"127.0.0.1:{port}"
        replacements[f"127.0.0.1:{port}"] = f"127.0.0.1:{README_OLLAMA_PORT}"
    server = ServerThread(inputs_for(Workspace(home, home), env, args))
    if not server.target.startswith("unix:"):
        replacements[server.target] = README_TARGET
    try:
        yield server.target, replacements
    finally:
        server.stop()
        if emulator:
            emulator.stop()
        if socket_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)


def run(command: str, target: str, replacements: dict[str, str], cwd: Path) -> str:
    args = shlex.split(command)
    for real, shown in replacements.items():  # the README's addresses → this run's
        args = [a.replace(shown, real) for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_LLMCONFIG_")}
    env.update({"STIGMER_LLMCONFIG_TARGET": target, "NO_COLOR": "1"})
    if args[0] == "grpcurl":
        args = [str(GRPCURL), *args[1:]]
    elif args[0] == "llmconfig":
        args = [sys.executable, "-m", "llmconfig", *args[1:]]
    else:
        raise AssertionError(f"README session runs only grpcurl and llmconfig: {command}")
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)
    return (done.stdout + done.stderr).rstrip("\n")


def normalise(text: str, replacements: dict[str, str] | None = None) -> str:
    for real, shown in (replacements or {}).items():
        text = text.replace(real, shown)
    text = re.sub(r'"latency": "[0-9.]+s"', '"latency": "…s"', text)
    text = re.sub(r'"checked_at": "[^"]+"', '"checked_at": "…"', text)
    text = re.sub(r"revision [0-9a-f]{12}\)", "revision …)", text)  # hashes the emulator's port
    return re.sub(r"\(\d+ ms", "(… ms", text)


def ollama_is_running_here() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", 11434)) == 0


@pytest.mark.parametrize("name", sorted(readme_sessions()))
def test_readme_session_is_true(name, tmp_path):
    if name == "defaults" and ollama_is_running_here():
        pytest.skip("something listens on localhost:11434; the README shows a machine without")
    with session_server(name, tmp_path) as (target, replacements):
        for command, expected in readme_sessions()[name]:
            actual = normalise(run(command, target, replacements, tmp_path), replacements)
            if command.startswith("llmconfig runner"):
                # The runner's answer holds a secret (the local backend key), which enters its
                # revision keyed with this process's own random key when there are no tokens.
                actual, expected = (re.sub(r"(?m)^revision( +)[0-9a-f]{12}$", r"revision\1…", t)
                                    for t in (actual, expected))
            assert actual == normalise(expected), f"README: $ {command}"


def test_readme_has_the_operator_sessions():
    commands = [c for session in readme_sessions().values() for c, _ in session]
    for needed in ("list", "describe", "/ResolveLLMConfig", "/CheckProviderHealth",
                   "grpc.health.v1.Health/Check", "llmconfig doctor", "llmconfig health"):
        assert any(needed in command for command in commands), needed


# -- the flag and variable table, both ways --------------------------------------------------

ENV_LIKE = re.compile(
    r"^((STIGMER|LLM|ANTHROPIC|OPENAI|OLLAMA|TEMPORAL|SANDBOX|DAYTONA|REDIS)_[A-Z0-9_]*[A-Z0-9]"
    r"|MODE)$")


def readme_table_section() -> str:
    text = README.read_text()
    return text[text.index("## Flags and variables"):text.index("## The config file")]


def names_in_code() -> set[str]:
    """Every env-like string constant in the client and server sources."""
    names = set()
    for path in [*ROOT.glob("server/llmconfig_server/**/*.py"),
                 *ROOT.glob("client/llmconfig/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and ENV_LIKE.match(node.value):
                names.add(node.value)
    return names


def documented_variables() -> set[str]:
    return {t for t in re.findall(r"`([A-Z][A-Z0-9_]*)`", readme_table_section())
            if ENV_LIKE.match(t)}


def read_variables() -> set[str]:
    from llmconfig_server import runner, sources

    return {*sources.environment_variables(), *runner.environment_variables()}


def test_every_variable_the_code_reads_is_documented():
    assert read_variables() | names_in_code() <= documented_variables()


def test_every_documented_variable_is_read_by_the_code():
    assert documented_variables() <= read_variables() | names_in_code()


def server_flags() -> set[str]:
    return {option for action in build_parser()._actions for option in action.option_strings
            if option.startswith("--") and option not in ("--help", "--version")}


def test_every_server_flag_is_documented_and_every_documented_flag_exists():
    server_rows = [line for line in readme_table_section().splitlines()
                   if not line.startswith("| client")]  # client rows name the CLI's flags
    documented = set(re.findall(r"`(--[a-z-]+)", "\n".join(server_rows)))
    assert documented == server_flags()


if __name__ == "__main__":
    for session_name, commands in readme_sessions().items():
        print(f"<!-- session: {session_name} -->")
        with tempfile.TemporaryDirectory() as tmp, session_server(session_name, Path(tmp)) \
                as (session_target, session_replacements):
            for command, _ in commands:
                print(f"$ {command}")
                print(normalise(run(command, session_target, session_replacements, Path(tmp)),
                                session_replacements)
                      .replace('"…s"', '"0.004s"').replace("(… ms", "(4 ms")
                      .replace('"checked_at": "…"', '"checked_at": "2026-11-21T19:48:36.832677Z"'))
                print()


def test_the_config_file_example_is_accepted(serve):
    text = README.read_text()
    section = text[text.index("## The config file"):text.index("## Errors")]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example
    client = serve(files={"~/.stigmer/llmconfig.yaml": example.group(1)},
                   env={"ANTHROPIC_API_KEY": "sk-ant-api03-README-example-not-a-real-key-f2c9"})
    assert client.resolve().config.model == "qwen2.5-coder:14b"
    assert client.resolve().warnings == ()
    runner = client.resolve_runner()
    assert runner.config.sandbox.root_dir == "/srv/stigmer/workspace"
    assert runner.config.temporal.max_concurrency == 20
    assert runner.config.execution.mode == "sandbox"


def test_the_stigmer_file_example_is_what_the_cli_writes_and_is_read_silently(serve):
    text = README.read_text()
    section = text[text.index("### Stigmer's file"):text.index("### Bad files")]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example
    from test_stigmer import DEFAULT_FILE

    assert example.group(1) == DEFAULT_FILE
    client = serve(files={"~/.stigmer/config.yaml": example.group(1)})
    assert client.resolve().warnings == ()
    assert client.resolve_runner().warnings == ()


def test_the_daemons_start_in_the_readme_is_true(server_process, workspace):
    """The `<!-- startup: stigmer -->` block: the server started in a HOME holding the README's
    two files logs each line it shows (`…` stands for lines left out)."""
    for path, text in readme_files().items():
        workspace.write(path, text)
    block = re.search(r"<!-- startup: stigmer -->\s*```\n(.*?)```", README.read_text(), re.S)
    assert block
    lines = [line for line in block.group(1).splitlines() if not line.startswith("$ ")]
    handle = server_process()
    handle.wait_for(r"config files:")
    first, *rest = lines
    assert first.endswith("(mode local, from ~/.stigmer/config.yaml: backend.type)")
    assert first.split(" (mode")[1] in handle.lines[0]
    for line in rest:
        if line.strip() != "…":
            assert line in handle.lines, line
