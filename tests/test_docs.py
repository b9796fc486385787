"""The docs are run, so they cannot rot.

Every fenced block in README.md and docs/*.md follows a marker saying how the suite runs or
checks it, and `test_every_block_is_run_or_says_why_not` fails on a block without one:

  <!-- session: NAME -->   `$ ` lines, run by bash with the venv's bin first on PATH (as the
                           README tells readers to do) against the server NAME; the output of
                           each command is compared with the lines under it
  <!-- python: NAME -->    Python run against the server NAME (STIGMER_LLMCONFIG_TARGET): a
                           doctest when it has `>>>`, else a script that must exit 0
  <!-- startup: NAME -->   `$ ` lines that start a real server process; its first lines are
                           compared (`…` alone stands for lines left out, a line ending in
                           ` …` for a line that starts so)
  <!-- file: PATH -->      a file written for the sessions that read it (SESSION_FILES)
  <!-- shell: NAME -->     commands bash runs for the test or session that names them (SHELLS)
  <!-- checked: NAME -->   compared with the code by a test here (CHECKED)
  <!-- go: NAME -->        compared by a Go test, whose source names the marker
  <!-- not run: WHY -->    not run, for the reason given

The servers (`session_server`): `defaults` is `make run` on a machine without Ollama; `ollama`
has OLLAMA_HOST=127.0.0.1:11435, an Ollama with qwen2.5-coder:14b and llama3.2:3b pulled;
`tls` serves with the certificates of the docs' openssl recipe and the docs' tokens file;
`unix` listens on /run/stigmer/llmconfig.sock; `stigmer` reads the two config files the deploy
page shows. Sessions of one name, across files (README.md first, then docs/ by name), run in
order against one server. Output is compared after normalising what changes from run to run
(latencies, timestamps, the emulator's port, a minted token's digest).

Tables marked `<!-- table: NAME -->` are checked against the code too (variables, flags,
error reasons, health statuses, provider limits).

`python tests/test_docs.py [--write] [SESSION…]` prints the sessions' real output, or writes it
into the pages.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from llmconfig_server.access.tokens import digest_of
from llmconfig_server.access.tokens import load as load_tokens
from llmconfig_server.flags import build_parser

import pki
import providers
from conftest import ServerThread, Workspace, inputs_for

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
TARGET = "127.0.0.1:50061"
OLLAMA_PORT = "11435"
SOCKET = "/run/stigmer/llmconfig.sock"
KEY = "sk-ant-api03-README-example-not-a-real-key-f2c9"
SHOWN_HOME = "/home/you"
SHOWN_CONFIG = "/etc/llmconfig"


# -- the blocks --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    kind: str  # the marker's kind ("" without a marker)
    name: str
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!-- ([a-z][a-z ]*): (.+?) -->\s*$")


def blocks(paths: list[Path] | None = None) -> list[Block]:
    """Every fenced block, with the marker on the last non-blank line before it."""
    found = []
    for path in paths or DOCS:
        lines = path.read_text().splitlines()
        index = 0
        while index < len(lines):
            opening = FENCE.match(lines[index])
            if not opening:
                index += 1
                continue
            indent, language = opening.groups()
            end = index + 1
            while not re.match(r"^\s*```\s*$", lines[end]):
                end += 1
            text = "".join(line[len(indent):] + "\n" for line in lines[index + 1:end])
            before = [line for line in lines[:index] if line.strip()][-1:]
            marker = MARKER.match(before[0]) if before else None
            kind, name = marker.groups() if marker else ("", "")
            found.append(Block(path, index + 1, kind, name, language, text))
            index = end + 1
    return found


def the_block(kind: str, name: str) -> Block:
    matching = [b for b in blocks() if (b.kind, b.name) == (kind, name)]
    assert len(matching) == 1, f"one block marked <!-- {kind}: {name} -->, found {len(matching)}"
    return matching[0]


def table(name: str) -> list[list[str]]:
    """The rows (cells) of every table marked `<!-- table: NAME -->`, headers left out."""
    rows: list[list[str]] = []
    for path in DOCS:
        for text in re.findall(rf"<!-- table: {name} -->\s*\n((?:\|.*\n)+)", path.read_text()):
            for line in text.splitlines()[2:]:
                rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert rows, f"no table marked <!-- table: {name} -->"
    return rows


def session_steps(name: str) -> list[tuple[Block, str, str]]:
    """(block, command, expected output) for `$ ` lines, (block, "", code) for Python."""
    steps: list[tuple[Block, str, str]] = []
    for block in blocks():
        if block.name != name:
            continue
        if block.kind == "python":
            steps.append((block, "", block.text))
        elif block.kind == "session":
            for command, output in commands_of(block.text):
                steps.append((block, command, output))
    return steps


def commands_of(text: str) -> list[tuple[str, str]]:
    found = []
    for chunk in re.split(r"^(?=\$ )", text, flags=re.M):
        if chunk.startswith("$ "):
            command, _, output = chunk.partition("\n")
            found.append((command[2:], output.rstrip("\n")))
    return found


# What each marker may name. A name here without a block, or a block naming something not
# here, fails test_every_block_is_run_or_says_why_not.
SESSIONS = {"defaults", "ollama", "tls", "unix", "stigmer", "tokens"}
STARTUPS = {"defaults", "cloud", "stigmer"}
SESSION_FILES = {"stigmer": ("~/.stigmer/config.yaml", "~/.stigmer/llmconfig.yaml"),
                 "tls": ("tokens.yaml",)}
SHELLS = {"path", "pki"}
CHECKED = {"make-targets", "cli-usage", "config-file", "stigmer-file", "catalog-file",
           "python-retry-policy", "layout", "kubectl-secrets", "prometheus-pods",
           "install-from-path", "install-from-git", "image-key-file", "health-probes"}


def go_markers() -> str:
    return "".join(path.read_text() for path in (ROOT / "go").rglob("*_test.go"))


def test_every_block_is_run_or_says_why_not():
    files = {path for paths in SESSION_FILES.values() for path in paths}
    known = {"session": SESSIONS, "python": SESSIONS, "startup": STARTUPS, "file": files,
             "shell": SHELLS, "checked": CHECKED}
    go_tests = go_markers()
    problems = []
    for block in blocks():
        if block.kind in known:
            if block.name not in known[block.kind]:
                problems.append(f"{block.where}: nothing runs <!-- {block.kind}: {block.name} -->")
        elif block.kind == "go":
            if f"<!-- go: {block.name} -->" not in go_tests:
                problems.append(f"{block.where}: no Go test names <!-- go: {block.name} -->")
        elif block.kind == "not run":
            if len(block.name.split()) < 3:
                problems.append(f"{block.where}: say why it is not run")
        else:
            problems.append(f"{block.where}: a block the suite neither runs nor checks; mark it "
                            "(see tests/test_docs.py), or <!-- not run: WHY -->")
    assert not problems, "\n".join(problems)


def test_every_name_the_suite_runs_has_its_block():
    marked = {(block.kind, block.name) for block in blocks()}
    wanted = {*(("checked", n) for n in CHECKED), *(("shell", n) for n in SHELLS),
              *(("startup", n) for n in STARTUPS),
              *(("file", f) for files in SESSION_FILES.values() for f in files)}
    assert wanted - marked == set()
    for name in SESSIONS:
        assert session_steps(name), f"no block of session {name}"


# -- sessions ----------------------------------------------------------------------------------

def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a reader's shell: the venv's bin first on PATH, a home of its own,
    nothing of the machine's llmconfig settings or of an enclosing make."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STIGMER_LLMCONFIG_", "MAKE", "MFLAGS"))}
    env.update({"PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}", "HOME": str(home),
                "NO_COLOR": "1", "LANG": "C.UTF-8", **extra})
    return env


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=60, env=env, cwd=cwd)


def run_pki(folder: Path) -> None:
    """The docs' certificate recipe, as written, in `folder`."""
    pki.openssl()  # installs openssl from Debian when the machine lacks it
    done = run_shell("set -e\n" + the_block("shell", "pki").text, folder, clean_env(folder))
    assert done.returncode == 0, done.stderr


@contextmanager
def session_server(name: str, home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(target, replacements of this run's values by the docs') for a session. Commands run
    in `home`, where the `tls` session finds ca.pem, runner.token and daemon.token."""
    emulator = None
    env: dict[str, str] = {}
    replacements: dict[str, str] = {}
    args: list[str] = []
    socket_dir = None
    workspace = Workspace(home, home)
    for path in SESSION_FILES.get(name, ()):
        workspace.write(path, the_block("file", path).text)
    if name in ("tls", "unix"):
        key_file = workspace.write("anthropic-api-key", KEY + "\n")
        key_file.chmod(0o600)
        env["ANTHROPIC_API_KEY_FILE"] = str(key_file)
        replacements[str(key_file)] = f"{SHOWN_CONFIG}/anthropic-api-key"
    if name == "tls":
        run_pki(home)
        tokens = yaml.safe_load((home / "tokens.yaml").read_text())["tokens"]
        for entry, token in zip(tokens, re.findall(r"`(llmc_[\w-]+)`", tls_tokens_text()),
                                strict=True):
            assert entry["sha256"] == digest_of(token), f"tokens.yaml: {entry['name']}"
            (home / f"{entry['name']}.token").write_text(token + "\n")
        args += ["--tokens-file", str(home / "tokens.yaml"), "--tls-cert", str(home / "tls.crt"),
                 "--tls-key", str(home / "tls.key")]
    if name == "unix":  # the daemon's socket, beside loopback TCP, and a key to hand out
        socket_dir = Path(tempfile.mkdtemp(prefix="llmc-", dir="/tmp"))
        args += ["--listen", f"unix:{socket_dir}/llmconfig.sock", "--listen", "127.0.0.1:0"]
        replacements[str(socket_dir / "llmconfig.sock")] = SOCKET
    if name == "ollama":
        emulator = providers.ollama(["qwen2.5-coder:14b", "llama3.2:3b"], version="0.6.2")
        port = emulator.url.rsplit(":", 1)[1]
        env["OLLAMA_HOST"] = f"127.0.0.1:{port}"
        replacements[f"127.0.0.1:{port}"] = f"127.0.0.1:{OLLAMA_PORT}"
    server = ServerThread(inputs_for(workspace, env, args))
    for address in server.running.addresses:
        if not address.startswith("unix:"):
            replacements[address] = TARGET
    try:
        yield server.target, replacements
    finally:
        server.stop()
        if emulator:
            emulator.stop()
        if socket_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)


def tls_tokens_text() -> str:
    """The sentence before the tokens file, which names the example tokens in its order."""
    text = (ROOT / "docs" / "access.md").read_text()
    return text[:text.index("<!-- file: tokens.yaml -->")].rstrip().rsplit("\n\n", 1)[-1]


def shown_to_real(text: str, replacements: dict[str, str]) -> str:
    for real, shown in replacements.items():
        text = text.replace(shown, real)
    return text


def run(command: str, target: str, replacements: dict[str, str], home: Path) -> str:
    done = run_shell(shown_to_real(command, replacements), home,
                     clean_env(home, STIGMER_LLMCONFIG_TARGET=target))
    return (done.stdout + done.stderr).rstrip("\n")


DOCTEST = """\
import doctest, sys
text = open(sys.argv[1]).read()
test = doctest.DocTestParser().get_doctest(text, {}, sys.argv[2], sys.argv[2], 0)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
runner.run(test)
sys.exit(1 if runner.failures else 0)
"""


def run_python(block: Block, target: str, replacements: dict[str, str], home: Path) -> str:
    """'' when the block ran as it says, else what went wrong."""
    source = home / f"example_{block.line}.py"
    source.write_text(shown_to_real(block.text, replacements))
    args = [sys.executable, "-c", DOCTEST, str(source), block.where] if ">>> " in block.text \
        else [sys.executable, str(source)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=home,
                          env=clean_env(home, STIGMER_LLMCONFIG_TARGET=target))
    return "" if done.returncode == 0 else normalise(done.stdout + done.stderr, replacements)


def normalise(text: str, replacements: dict[str, str] | None = None) -> str:
    for real, shown in (replacements or {}).items():
        text = text.replace(real, shown)
    text = re.sub(r'"latency": "[0-9.]+s"', '"latency": "…s"', text)
    text = re.sub(r'"checked_at": "[^"]+"', '"checked_at": "…"', text)
    # A check answered from the server's short cache says so; whether it was depends on time.
    text = re.sub(r',\n\s*"cached": true', "", text)
    text = re.sub(r"revision [0-9a-f]{12}\)", "revision …)", text)  # hashes the emulator's port
    text = re.sub(r"\(\d+ ms(, cached)?\)", "(… ms)", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", "…T…", text)  # llmconfig watch
    text = re.sub(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "… ", text)  # log lines
    return re.sub(r"sha256: [0-9a-f]{64}", "sha256: …", text)  # a minted token's digest


def ollama_is_running_here() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", 11434)) == 0


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_session_is_true(name, tmp_path):
    if name == "defaults" and ollama_is_running_here():
        pytest.skip("something listens on localhost:11434; the docs show a machine without")
    with session_server(name, tmp_path) as (target, replacements):
        for block, command, expected in session_steps(name):
            if not command:
                failure = run_python(block, target, replacements, tmp_path)
                assert not failure, f"{block.where}:\n{failure}"
                continue
            actual = normalise(run(command, target, replacements, tmp_path), replacements)
            if command.startswith("llmconfig runner"):
                # The runner's answer holds a secret (the local backend key), which enters its
                # revision keyed with this process's own random key when there are no tokens.
                actual, expected = (re.sub(r"(?m)^revision( +)[0-9a-f]{12}$", r"revision\1…", t)
                                    for t in (actual, expected))
            assert actual == normalise(expected), f"{block.where}: $ {command}"


def test_the_operator_sessions_cover_every_rpc():
    commands = [c for name in SESSIONS for _, c, _ in session_steps(name)]
    for needed in ("grpcurl -plaintext 127.0.0.1:50061 list", "describe", "/ResolveLLMConfig",
                   "/CheckProviderHealth", "grpc.health.v1.Health/Check", "llmconfig doctor",
                   "llmconfig health", "llmconfig runner", "llmconfig models", "llmconfig watch",
                   "llmconfig resolve"):
        assert any(needed in command for command in commands), needed


# -- startups ----------------------------------------------------------------------------------

def startup_setup(name: str, home: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """(working directory, environment, replacements) for a startup block."""
    env = clean_env(home, PYTHONUNBUFFERED="1")
    replacements: dict[str, str] = {}
    cwd = home
    if name in ("defaults", "cloud"):  # `make run` in the checkout, on a free port
        if subprocess.run(["make", "-q", "install"], cwd=ROOT, env=env,
                          capture_output=True).returncode != 0:
            pytest.skip("`make run` would install first: run `make install` (make test does)")
        cwd = ROOT
        env["STIGMER_LLMCONFIG_LISTEN"] = "127.0.0.1:0"
    if name == "cloud":  # the key in a file only its owner reads, as the README says
        key = Workspace(home, home).write("~/.stigmer/anthropic-api-key", KEY + "\n")
        key.chmod(0o600)
        replacements[str(home)] = SHOWN_HOME
    if name == "stigmer":
        for path in SESSION_FILES["stigmer"]:
            Workspace(home, home).write(path, the_block("file", path).text)
        # A short folder of /tmp for /run/stigmer: a socket's path has at most ~107 bytes.
        socket_dir = Path(tempfile.mkdtemp(prefix="llmc-", dir="/tmp"))
        replacements[f"{socket_dir}/stigmer"] = "/run/stigmer"
    return cwd, env, replacements


def scratch_folders(replacements: dict[str, str]) -> list[Path]:
    return [Path(real).parent for real, shown in replacements.items() if shown == "/run/stigmer"]


def matches(expected: list[str], actual: list[str]) -> int | None:
    """None when `actual` begins as `expected` says (`…`: any lines; `text …`: a line that
    starts with text), else the index of the first expected line not found."""
    position, skipping = 0, False
    for index, line in enumerate(expected):
        if line.strip() == "…":
            skipping = True
            continue

        def fits(candidate: str, line: str = line) -> bool:
            return candidate.startswith(line[:-2]) if line.endswith(" …") else candidate == line

        while position < len(actual) and not fits(actual[position]):
            if not skipping:
                return index
            position += 1
        if position == len(actual):
            return index
        position, skipping = position + 1, False
    return None


@pytest.mark.parametrize("name", sorted(STARTUPS))
def test_startup_is_true(name, tmp_path):
    block = the_block("startup", name)
    commands = [c for c, _ in commands_of(block.text)]
    expected = [normalise(line.rstrip()) for line in block.text.splitlines()
                if not line.startswith("$ ")]
    cwd, env, replacements = startup_setup(name, tmp_path)
    for command in commands[:-1]:
        done = run_shell(shown_to_real(command, replacements), cwd, env)
        assert done.returncode == 0, f"{block.where}: $ {command}\n{done.stderr}"
    proc = subprocess.Popen(["bash", "-c", shown_to_real(commands[-1], replacements)], cwd=cwd,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = re.sub(r"serving on 127\.0\.0\.1:\d+", f"serving on {TARGET}", line)
            lines.append(normalise(line.rstrip(), replacements))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30  # a hang guard: the lines come at once
        while matches(expected, list(lines)) is not None and time.monotonic() < deadline \
                and (reader.is_alive() or proc.poll() is None):
            time.sleep(0.05)
    finally:  # only its first lines matter: no drain to wait for
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=5)
        for folder in scratch_folders(replacements):
            shutil.rmtree(folder, ignore_errors=True)
    missing = matches(expected, lines)
    assert missing is None, (f"{block.where}: {expected[missing]!r} is not where the block "
                             "shows it; the server printed:\n" + "\n".join(lines))


# -- the commands of the README and the shell recipes ----------------------------------------

def test_make_targets_set_themselves_up():
    """`make run` and `make test` each install first (a fresh clone needs nothing else)."""
    block = the_block("checked", "make-targets")
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^make (\w+)", block.text, re.M)
    assert targets == ["run", "test"]
    for target in targets:
        assert re.search(rf"^{target}: install$", makefile, re.M), target


def test_the_path_step_puts_the_commands_on_path():
    env = clean_env(ROOT)
    env["PATH"] = "/usr/bin:/bin"
    script = the_block("shell", "path").text + "command -v grpcurl llmconfig llmconfig-server\n"
    done = run_shell(script, ROOT, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(ROOT / ".venv" / "bin" / c)
                                   for c in ("grpcurl", "llmconfig", "llmconfig-server")]


def test_the_certificate_recipe_names_what_clients_dial(tmp_path):
    """Clients check the server's name against the certificate's subjectAltName (Go ignores
    the CN): the recipe's certificate must carry the names the docs dial."""
    run_pki(tmp_path)
    done = subprocess.run(["openssl", "x509", "-in", "tls.crt", "-noout", "-ext",
                           "subjectAltName,extendedKeyUsage"], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    for name in ("DNS:llmconfig.internal", "DNS:localhost", "IP Address:127.0.0.1",
                 "TLS Web Server Authentication"):
        assert name in done.stdout
    for made in ("ca.pem", "tls.crt", "tls.key", "client.crt", "client.key"):
        assert (tmp_path / made).exists(), made


def test_the_recipes_client_certificate_passes_mtls(tmp_path, serve):
    run_pki(tmp_path)
    client = serve(args=["--tls-cert", str(tmp_path / "tls.crt"), "--tls-key",
                         str(tmp_path / "tls.key"), "--tls-client-ca", str(tmp_path / "ca.pem")],
                   client_options={"ca_file": str(tmp_path / "ca.pem"),
                                   "cert_file": str(tmp_path / "client.crt"),
                                   "key_file": str(tmp_path / "client.key")})
    assert client.resolve().config.provider == "ollama"


def test_the_tokens_file_example_is_read_by_the_servers_loader(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(the_block("file", "tokens.yaml").text)
    table = load_tokens(path)
    assert table.problem is None
    tokens = re.findall(r"`(llmc_[\w-]+)`", tls_tokens_text())
    assert [(t.name, t.digest) for t in table.tokens] == [
        ("runner", bytes.fromhex(digest_of(tokens[0]))),
        ("daemon", bytes.fromhex(digest_of(tokens[1])))]
    assert [sorted(t.scopes) for t in table.tokens] == [["resolve", "secrets"], ["health"]]


def test_a_minted_token_works_once_its_entry_is_in_the_tokens_file(tmp_path, serve):
    """The docs' `token new` line: the token to a file, its entry (on stderr) into the tokens
    file, and the file's token gets what its scopes say."""
    (command,) = [c for _, c, _ in session_steps("tokens") if "token new" in c]
    done = run_shell(command, tmp_path, clean_env(tmp_path))
    assert done.returncode == 0, done.stderr
    entry = done.stderr[done.stderr.index("  - name:"):]
    token_file = re.search(r"> (\S+)", command)
    assert token_file
    client = serve(args=["--tokens-file", str(tmp_path / "tokens.yaml")],
                   files={str(tmp_path / "tokens.yaml"): "tokens:\n" + entry},
                   env={"ANTHROPIC_API_KEY": KEY},
                   client_options={"token_file": str(tmp_path / token_file.group(1))})
    assert client.resolve(include_secrets=True).config.api_key == KEY


# -- examples compared with the code -------------------------------------------------------

def test_the_cli_usage_lists_every_command_and_flag():
    from llmconfig._cli import build_parser as cli_parser

    parser = cli_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    common = {"--target", "--token-file", "--ca-file", "--insecure", "--timeout", "--json",
              "--color", "--mode", "--network"}
    shown: dict[str, set[str]] = {}
    text = the_block("checked", "cli-usage").text
    for line in text.splitlines():
        if line.startswith("llmconfig "):
            name = line.split()[1]
            shown[name] = set(re.findall(r"\[(--[a-z-]+)", line))
    assert set(shown) == set(commands)
    for name, flags in shown.items():
        own = {o for a in commands[name]._actions for o in a.option_strings
               if o.startswith("--") and o != "--help"}
        assert flags == own - common, name
    every = re.search(r"every command takes (.*)", text)
    assert every
    assert set(re.findall(r"--[a-z-]+", every.group(1))) == common


def test_the_config_file_example_is_accepted(serve):
    example = the_block("checked", "config-file").text
    client = serve(files={"~/.stigmer/llmconfig.yaml": example}, env={"ANTHROPIC_API_KEY": KEY})
    assert client.resolve().config.model == "qwen2.5-coder:14b"
    assert client.resolve().warnings == ()
    runner = client.resolve_runner()
    assert runner.config.sandbox.root_dir == "/srv/stigmer/workspace"
    assert runner.config.temporal.max_concurrency == 20
    assert runner.config.execution.mode == "sandbox"


def test_the_stigmer_file_example_is_what_the_cli_writes_and_is_read_silently(serve):
    from test_stigmer import DEFAULT_FILE

    example = the_block("checked", "stigmer-file").text
    assert example == DEFAULT_FILE
    client = serve(files={"~/.stigmer/config.yaml": example})
    assert client.resolve().warnings == ()
    assert client.resolve_runner().warnings == ()


def test_the_operator_catalog_example_declares_what_it_says(serve, workspace):
    example = the_block("checked", "catalog-file").text
    client = serve(files={"~/catalog.yaml": example},
                   env={"STIGMER_LLMCONFIG_CATALOG": str(workspace.home / "catalog.yaml"),
                        "GROQ_API_KEY": "gsk_README-example-not-a-real-key"})
    config = client.resolve(provider="groq").config
    assert (config.model, config.base_url) == ("llama-3.3-70b-versatile",
                                               "https://api.groq.com/openai/v1")
    opus = {m.id: m for m in client.list_models("anthropic")}["claude-opus-4-7"]
    assert (opus.status.name, opus.retires_on, opus.replacement) == (
        "DEPRECATED", "2027-04-16", "claude-opus-5-5")


def test_the_python_retry_policy_is_the_clients():
    from llmconfig._channel import CHANNEL_OPTIONS

    shown = json.loads(the_block("checked", "python-retry-policy").text)
    assert shown == json.loads(dict(CHANNEL_OPTIONS)["grpc.service_config"])


def rendered_manifests() -> str:
    return "".join(path.read_text() for path in (ROOT / "deploy" / "kustomize").rglob("*.yaml"))


def test_the_kubectl_secrets_are_the_ones_the_manifests_mount():
    text = the_block("checked", "kubectl-secrets").text
    manifests = rendered_manifests()
    secrets = re.findall(r"kubectl create secret (\w+) ([\w-]+) ([^#\n]*)", text)
    assert secrets
    for kind, name, arguments in secrets:
        assert f"secretName: {name}" in manifests, name
        # `secret tls` stores tls.crt and tls.key whatever the files are called
        files = ["tls.crt", "tls.key"] if kind == "tls" else re.findall(r"--from-file=(\S+)",
                                                                         arguments)
        for file in files:
            assert f"/{file}\n" in manifests, file
    for overlay in re.findall(r"kubectl apply -k (\S+)", text):
        assert (ROOT / overlay / "kustomization.yaml").exists(), overlay


def test_the_pod_scrape_config_keeps_the_annotated_pods():
    config = yaml.safe_load(the_block("checked", "prometheus-pods").text)
    labels = {label for rule in config["scrape_configs"][0]["relabel_configs"]
              for label in rule["source_labels"]}
    annotations = {f"prometheus.io/{label.rsplit('prometheus_io_', 1)[1]}" for label in labels
                   if "_annotation_prometheus_io_" in label}
    base = yaml.safe_load((ROOT / "deploy/kustomize/base/deployment.yaml").read_text())
    assert annotations == set(base["spec"]["template"]["metadata"]["annotations"])


def test_the_probes_shown_are_the_bases():
    shown = yaml.safe_load(the_block("checked", "health-probes").text)
    base = yaml.safe_load((ROOT / "deploy/kustomize/base/deployment.yaml").read_text())
    container = base["spec"]["template"]["spec"]["containers"][0]
    assert shown == {probe: {"grpc": container[probe]["grpc"]} for probe in shown}
    assert set(shown) == {"readinessProbe", "livenessProbe"}


def test_the_docs_index_and_the_readme_link_every_page():
    pages = {path.name for path in (ROOT / "docs").glob("*.md")} - {"index.md"}
    index = set(re.findall(r"\]\(([\w-]+\.md)\)", (ROOT / "docs" / "index.md").read_text()))
    readme = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", (ROOT / "README.md").read_text()))
    assert index == pages
    assert readme == pages | {"index.md"}


LINK = re.compile(r"\]\(([^)#\s:]*\.md)?(?:#([^)\s]+))?\)")


def test_every_link_between_pages_lands():
    for path in DOCS:
        for target, anchor in LINK.findall(path.read_text()):
            page = (path.parent / target).resolve() if target else path
            assert page.exists(), f"{path.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", page.read_text(), re.M)
                assert anchor in {slug(h) for h in headings}, f"{path.name}: #{anchor}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


# -- first-hour advice --------------------------------------------------------------------

def test_no_example_puts_a_key_on_a_command_line():
    """A key given as a flag shows in `ps` (and `docker inspect`) to others: the examples
    read keys from files (`*_FILE`)."""
    for block in blocks():
        assert not re.search(r"--(anthropic-key|llm-api-key)[ =]\S", block.text), block.where


def test_the_first_cloud_example_reads_the_key_from_a_file():
    first = next(b for b in blocks()
                 if re.search(r"^\$ .*(--mode cloud|MODE=cloud)", b.text, re.M))
    assert first.path.name == "README.md"
    assert "ANTHROPIC_API_KEY_FILE=" in first.text


def test_the_langchain_extra_is_installed_from_a_path_or_git():
    """`llmconfig` is not on the package index: `pip install 'llmconfig[langchain]'` fails."""
    for block in blocks():
        assert not re.search(r"pip install ['\"]?llmconfig\[[\w,]+\](?! @)", block.text), \
            block.where


def test_installing_from_a_path_asks_for_the_extra():
    line = next(line for line in the_block("checked", "install-from-path").text.splitlines()
                if line.startswith("pip install"))
    path = re.search(r"'(\S+)\[(\w+)\]'", line)
    assert path
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
         "--no-build-isolation", "--quiet", "--report", "-", f"{ROOT}[{path.group(2)}]"],
        capture_output=True, text=True, timeout=120, check=True)
    (install,) = json.loads(done.stdout)["install"]
    assert install["metadata"]["name"] == "llmconfig"
    assert install["requested_extras"] == [path.group(2)]
    assert path.group(2) in install["metadata"]["provides_extra"]


def test_installing_from_git_names_this_repository():
    from packaging.requirements import Requirement

    line = next(line for line in the_block("checked", "install-from-git").text.splitlines()
                if line.startswith("pip install"))
    requirement = Requirement(re.search(r"'(.*)'", line).group(1))  # type: ignore[union-attr]
    module = re.search(r"^module (\S+)/go$", (ROOT / "go/go.mod").read_text(), re.M)
    assert module
    assert (requirement.name, requirement.extras) == ("llmconfig", {"langchain"})
    assert requirement.url == f"git+https://{module.group(1)}.git"


def test_the_image_key_file_advice_names_the_images_uid():
    """A 0600 key file on the host is unreadable to the image's user: the docs name its uid."""
    uid = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert uid
    text = the_block("checked", "image-key-file").text
    assert f"chown {uid.group(1)} " in text
    assert "--user" in text


# -- tables compared with the code -----------------------------------------------------------

ENV_LIKE = re.compile(
    r"^((STIGMER|LLM|ANTHROPIC|OPENAI|OLLAMA|TEMPORAL|SANDBOX|DAYTONA|REDIS)_[A-Z0-9_]*[A-Z0-9]"
    r"|MODE)$")


def server_sources() -> list[Path]:
    return [*ROOT.glob("server/llmconfig_server/**/*.py")]


def string_constants(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def names_in_code() -> set[str]:
    """Every env-like string constant in the client and server sources."""
    paths = [*server_sources(), *ROOT.glob("client/llmconfig/*.py")]
    return {name for name in string_constants(paths) if ENV_LIKE.match(name)}


def documented_variables() -> set[str]:
    cells = " ".join(" ".join(row) for row in table("variables"))
    return {t for t in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells) if ENV_LIKE.match(t)}


def read_variables() -> set[str]:
    from llmconfig_server.resolve import runner
    from llmconfig_server.sources import layers as sources

    return {*sources.environment_variables(), *runner.environment_variables()}


def test_every_variable_the_code_reads_is_documented():
    assert read_variables() | names_in_code() <= documented_variables()


def test_every_documented_variable_is_read_by_the_code():
    assert documented_variables() <= read_variables() | names_in_code()


def test_every_server_flag_is_documented_and_every_documented_flag_exists():
    server_rows = [row for row in table("variables") if not row[0].startswith("client")]
    documented = set(re.findall(r"`(--[a-z-]+)", " ".join(" ".join(r) for r in server_rows)))
    flags = {option for action in build_parser()._actions for option in action.option_strings
             if option.startswith("--") and option not in ("--help", "--version")}
    assert documented == flags


def test_every_client_flag_in_the_table_is_the_clis():
    from llmconfig._cli import build_parser as cli_parser

    commands = next(a for a in cli_parser()._actions if a.dest == "command").choices
    cli = {o for command in commands.values() for a in command._actions
           for o in a.option_strings}
    client_rows = [row for row in table("variables") if row[0].startswith("client")]
    documented = set(re.findall(r"`(--[a-z-]+)", " ".join(" ".join(r) for r in client_rows)))
    assert documented and documented <= cli


# ErrorInfo reasons the server gives, beside the ones of domain.Reason.
NOT_REASONS = {"KEY_VALUES_MISMATCH",  # OpenSSL's, read from an ssl.SSLError
               "KUBERNETES_SERVICE_HOST"}  # a variable: is the server in a pod?


def reasons_in_code() -> set[str]:
    from llmconfig_server.resolve.domain import Reason

    strings = {s for s in string_constants(server_sources())
               if re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", s) and not ENV_LIKE.match(s)}
    return {*(r.value for r in Reason), *strings} - NOT_REASONS


def test_every_error_reason_is_documented_and_exists():
    documented = {reason for row in table("reasons")
                  for reason in re.findall(r"`([A-Z][A-Z0-9_]+)`", row[0])}
    assert documented == reasons_in_code()


def test_the_provider_limits_are_the_catalogs():
    from llmconfig_server.resolve.catalog import shipped

    for name, limit, temperature, *_ in table("limits"):
        spec = shipped().providers[name.strip("`")]
        assert int(limit.replace(",", "")) == spec.max_tokens_limit, name
        low, high = (float(x) for x in temperature.split("–"))
        assert (low, high) == spec.temperature_range, name


def test_every_health_status_is_documented():
    import llmconfig

    documented = {row[0].strip("`") for row in table("health-statuses")}
    assert documented == {status.name for status in llmconfig.HealthStatus}


# -- the layout map -----------------------------------------------------------------------

def layout_entries() -> set[str]:
    """Paths the layout map names: a top-level line `dir/` (or `file`), then its entries
    indented two spaces per level, several per line when separated by `, `."""
    entries: set[str] = set()
    parents: list[str] = []
    for line in the_block("checked", "layout").text.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        names = re.split(r"  +", line.strip(), maxsplit=1)[0]
        parents = parents[:depth]
        for name in names.split(", "):
            path = "".join(parents) + name
            entries.add(path.rstrip("/"))
        if names.endswith("/"):
            parents.append(names.split(", ")[-1])
    return entries


MAPPED = ("server/llmconfig_server", "client/llmconfig", "tests", "bench", "go/llmconfig",
          "deploy")


def test_the_layout_map_names_every_module_and_only_those():
    entries = layout_entries()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    modules = {path for path in tracked if path.endswith(".py") and path.startswith(MAPPED)
               and not path.startswith("client/llmconfig/v1/")
               and not re.match(r"tests/test_\w+\.py$", path)}
    top = {path.split("/")[0] for path in tracked if not path.startswith(".")}
    assert modules - entries == set(), "modules the map leaves out"
    assert {e for e in entries if e.endswith(".py")} - modules == set(), "modules gone"
    assert top - entries == set(), "top-level entries the map leaves out"


def rewrite_sessions(names: list[str], write: bool) -> None:
    """Run the sessions and print their real output, or (`write`) put it into the pages: the
    lines under each `$ ` command become what the command printed now."""
    for name in names:
        outputs: dict[Block, list[tuple[str, str]]] = {}
        with tempfile.TemporaryDirectory() as tmp, session_server(name, Path(tmp)) \
                as (target, replacements):
            for block, command, _ in session_steps(name):
                if not command:
                    failure = run_python(block, target, replacements, Path(tmp))
                    print(f"{block.where}: python", failure or "ok", file=sys.stderr)
                    continue
                output = run(command, target, replacements, Path(tmp))
                for real, shown in replacements.items():
                    output = output.replace(real, shown)
                output = re.sub(r"\(\d+ ms(, cached)?\)", "(4 ms)", output)  # as fast as idle
                output = re.sub(r'"latency": "[0-9.]+s"', '"latency": "0.004s"', output)
                outputs.setdefault(block, []).append((command, output))
        # From the end of each page: a block rewritten moves the lines below it.
        for block, commands in sorted(outputs.items(), key=lambda o: (o[0].path, -o[0].line)):
            text = "\n\n".join(f"$ {c}\n{o}".rstrip("\n") for c, o in commands) + "\n"
            if not write:
                print(f"<!-- session: {name} --> {block.where}\n{text}")
                continue
            lines = block.path.read_text().splitlines(keepends=True)
            end = block.line
            while lines[end].strip() != "```":
                end += 1
            block.path.write_text("".join([*lines[:block.line], text, *lines[end:]]))


if __name__ == "__main__":
    # python tests/test_docs.py [--write] [SESSION…]: print (or write into the pages) what the
    # sessions' commands print today. Rewrite one session at a time when blocks move lines.
    arguments = sys.argv[1:]
    write_pages = "--write" in arguments
    rewrite_sessions([a for a in arguments if a != "--write"] or sorted(SESSIONS), write_pages)
