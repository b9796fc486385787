"""Config and secret files that are special, huge, hostile or mistyped: each one is refused
(exit 2) at once, in one line that names the file and what named it, with no traceback and
without the key; the harmless variations (a byte-order mark, CRLF line endings, one final
newline) simply work. The refusals are checked in-process through the command's own rules and
message (`refusal_lines`); a few run the real `llmconfig-server` for exit 2 and its timing.

Before these rules a FIFO hung the server forever, /dev/zero grew it until MemoryError, a
350-byte alias bomb took minutes and gigabytes, and `api_key:sk-…` put the key in the error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from llmconfig_server.__main__ import first_state
from llmconfig_server.flags import parse
from llmconfig_server.live.state import Inputs
from llmconfig_server.observe.report import startup_report

from conftest import ServerProcess, Workspace, base_env, refusal_lines, with_quiet_model_lists

# A canary key: it must never appear in the output, nor its tail (a hint shows at most 4).
CANARY = "sk-ant-api03-CANARYcanaryCANARYcanary-k3y9Zq7Wx2Vb"
HEADER = "llmconfig-server: refusing to start: the configuration is invalid:"

Start = Callable[..., ServerProcess]


def alias_bomb() -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) strings from 350 bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
    return "\n".join([*lines, "llm: *i", ""])


def refusal(workspace: Workspace, args: list[str] | None = None,
            env: dict[str, str] | None = None) -> str:
    """The one explanatory line of a refusal (the command's own rules and message, checked
    in-process; the tests at the end run the command for exit 2), after checking secrecy."""
    lines = refusal_lines(workspace, args or [], env)
    log = "\n".join(lines)
    assert "Traceback" not in log
    assert CANARY not in log and CANARY[-12:] not in log
    header, *rest = lines
    assert header == HEADER
    assert len(rest) == 1, log
    assert rest[0].startswith("  - ")
    return rest[0]


def process_refusal(server_process: Start, args: list[str] | None = None,
                    env: dict[str, str] | None = None) -> str:
    """The same, from the real command: exit 2 (no hang: a FIFO once blocked it forever; the
    20 s is a guard, not a speed — the suite shares a loaded machine), no traceback, no key."""
    handle = server_process(args, env, wait_ready=False)
    code = handle.finish(timeout=20)
    assert code == 2, handle.log
    assert "Traceback" not in handle.log
    assert CANARY not in handle.log and CANARY[-12:] not in handle.log
    header, *rest = handle.lines
    assert header == HEADER
    assert len(rest) == 1, handle.log
    return rest[0]


def special_file(kind: str, workspace: Workspace) -> str:
    if kind == "fifo":
        path = workspace.cwd / "fifo"
        os.mkfifo(path)
    elif kind == "char device":
        return "/dev/zero"
    elif kind == "directory":
        path = workspace.cwd / "a-directory"
        path.mkdir()
    else:  # 50 MB, sparse: costs no disk
        path = workspace.cwd / "huge"
        with path.open("wb") as handle:
            handle.truncate(50 * 1024 * 1024)
    return str(path)


SPECIAL = {"fifo": "is not a regular file (a FIFO)",
           "char device": "is not a regular file (a character device)",
           "directory": "is not a regular file (a directory)",
           "huge": "is 52428800 bytes, more than the"}


@pytest.mark.parametrize("kind", SPECIAL)
def test_special_or_huge_config_file_is_refused_at_once(workspace, kind):
    path = special_file(kind, workspace)
    line = refusal(workspace, ["--config", path])
    assert "named by --config" in line
    assert f"{path} {SPECIAL[kind]}" in line


@pytest.mark.parametrize("kind", SPECIAL)
def test_special_or_huge_key_file_is_refused_at_once(workspace, kind):
    path = special_file(kind, workspace)
    line = refusal(workspace, env={"ANTHROPIC_API_KEY_FILE": path,
                                        "STIGMER_LLM_PROVIDER": "anthropic"})
    assert line == f"  - ANTHROPIC_API_KEY_FILE: {path} {SPECIAL[kind]}" + (
        " 64 KiB allowed" if kind == "huge" else "")


def test_special_file_at_the_default_config_path_is_reported_not_skipped(workspace):
    (workspace.home / ".stigmer").mkdir()
    os.mkfifo(workspace.home / ".stigmer" / "llmconfig.yaml")
    line = refusal(workspace)
    assert "~/.stigmer/llmconfig.yaml is not a regular file (a FIFO)" in line


@pytest.mark.parametrize("variable", ["STIGMER_LLMCONFIG_CONFIG", "STIGMER_CONFIG"])
def test_config_file_named_by_variable_says_so(workspace, variable):
    path = special_file("fifo", workspace)
    line = refusal(workspace, env={variable: path})
    assert f"(named by {variable})" in line


def test_yaml_alias_bomb_is_refused_at_once(workspace):
    path = workspace.write("bomb.yaml", alias_bomb())
    assert len(path.read_bytes()) < 400
    line = refusal(workspace, ["--config", str(path)])
    assert "aliases (*name) expand to more than 10000 values" in line


def test_config_file_of_a_megabyte_of_values_is_refused_at_once(workspace):
    path = workspace.write("wide.yaml", "llm: [" + "1," * 500_000 + "1]\n")
    line = refusal(workspace, ["--config", str(path)])
    assert "it has more than 10000 values" in line


def test_yaml_alias_to_itself_is_refused(workspace):
    path = workspace.write("loop.yaml", "llm: &loop\n  model: [*loop]\n")
    assert "an alias (*name) refers to itself" in refusal(workspace, ["--config", str(path)])


def test_key_given_twice_is_refused_not_silently_overridden(workspace):
    path = workspace.write("twice.yaml", f"llm:\n  api_key: {CANARY}\n  api_key: other\n")
    line = refusal(workspace, ["--config", str(path)])
    assert line == f"  - {path}:3:3 (named by --config): api_key appears twice in the same " \
        "mapping; keep one"


def test_deeply_nested_yaml_is_refused(workspace):
    path = workspace.write("deep.yaml", "llm: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "invalid YAML" in refusal(workspace, ["--config", str(path)])


# Typos around a key. Each used to be (or could be) echoed by the YAML or schema error.
TYPOS = {
    "no space after the colon": f"llm:\n  api_key:{CANARY}\n",
    "no space, after another key": f"llm:\n  provider: anthropic\n  api_key:{CANARY}\n",
    "a tab for indentation": f"llm:\n  provider: anthropic\n\tapi_key: {CANARY}\n",
    "an unclosed quote": f'llm:\n  provider: anthropic\n  api_key: "{CANARY}\n',
    "an unclosed bracket": f"llm:\n  provider: anthropic\n  api_key: [{CANARY}\n",
    "a list for a key": f"llm:\n  api_key: [{CANARY}]\n",
    "the key as a tag": f"llm:\n  api_key: !{CANARY}\n",
    "the key as an alias": f"llm:\n  api_key: *{CANARY}\n",
    "the key as a key": f"llm:\n  {CANARY}: 1\n",
    "a misspelt key name": f"llm:\n  api-key: {CANARY}\n",
    "the key under mode": f"mode: {CANARY}\n",
    "the key as the whole file": f"{CANARY}\n",
    "a control character in the key": f'llm:\n  api_key: "{CANARY}\\u0007"\n',
}


@pytest.mark.parametrize("text", TYPOS.values(), ids=TYPOS.keys())
def test_config_file_typo_around_a_key_never_shows_the_key(workspace, text):
    path = workspace.write("config.yaml", text)
    assert str(path) in refusal(workspace, ["--config", str(path)])


def test_yaml_error_says_where_without_quoting_the_line(workspace):
    path = workspace.write("config.yaml", f"llm:\n  provider: anthropic\n  api_key:{CANARY}\n")
    line = refusal(workspace, ["--config", str(path)])
    assert line == f"  - {path}:4:1 (named by --config): invalid YAML: could not find " \
        "expected ':' (a key needs a space after its colon: `key: value`)"


def test_yaml_numbers_are_plain_decimals(workspace):
    # YAML 1.1 reads 1_000 as 1000 and 0x400 as 1024; here they are strings the schema refuses.
    path = workspace.write("config.yaml", "llm:\n  max_tokens: 1_000\n")
    line = refusal(workspace, ["--config", str(path)])
    assert f"{path}:2:15 (named by --config): llm.max_tokens: input should be a valid " \
        "integer, got text" in line


@pytest.mark.parametrize(("content", "why"), [
    (f"{CANARY}\nsecond line\n", "has more than one line"),
    (f"{CANARY}\n\n", "has more than one line"),
    (f"{CANARY[:20]} {CANARY[20:]}\n", "contains a space at position 20"),
    (f"{CANARY}é\n", "contains a non-ASCII character at position"),
    (f"{CANARY}\t\n", "control character (U+0009"),
    ("\n", "is empty"),
])
def test_bad_key_file_is_refused_naming_the_variable(workspace, content, why):
    path = workspace.write("secrets/anthropic", content)
    line = refusal(workspace, env={"ANTHROPIC_API_KEY_FILE": str(path),
                                        "STIGMER_LLM_PROVIDER": "anthropic"})
    assert line.startswith("  - ANTHROPIC_API_KEY_FILE")
    assert why in line


def test_key_file_that_is_not_utf8_is_refused(workspace):
    path = workspace.cwd / "key"
    path.write_bytes(CANARY.encode() + b"\xff\n")
    line = refusal(workspace, env={"ANTHROPIC_API_KEY_FILE": str(path),
                                        "STIGMER_LLM_PROVIDER": "anthropic"})
    assert "is not UTF-8 text" in line


def served(workspace: Workspace, args: list[str] | None = None,
           env: dict[str, str] | None = None) -> str:
    """The startup block of a server that starts, from the command's own first state and
    report, in-process (test_server_process runs the command for its startup block)."""
    environ = base_env(workspace, env)
    options = parse(["--listen", "127.0.0.1:0", *with_quiet_model_lists(args or [])], environ)
    snapshot = first_state(Inputs(options, environ, workspace.cwd, workspace.home))
    log = startup_report(snapshot.resolver, ["127.0.0.1:0"])
    assert CANARY not in log and CANARY[-12:] not in log
    assert "sk-ant-…x2Vb" in log  # the hint, and only the hint
    return log


@pytest.mark.parametrize("content", [
    f"{CANARY}\n", f"{CANARY}\r\n", f"\ufeff{CANARY}\r\n", CANARY,
], ids=["newline", "crlf", "bom and crlf", "no newline"])
def test_key_file_with_bom_crlf_or_final_newline_works(workspace, content):
    path = workspace.cwd / "key"
    path.write_bytes(content.encode())
    served(workspace, env={"ANTHROPIC_API_KEY_FILE": str(path),
                           "STIGMER_LLM_PROVIDER": "anthropic"})


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("bom", ["", "\ufeff"], ids=["", "bom"])
def test_config_file_with_bom_or_crlf_works(workspace: Workspace, newline, bom):
    text = bom + newline.join(["llm:", "  provider: anthropic", f"  api_key: {CANARY}", ""])
    path: Path = workspace.cwd / "config.yaml"
    path.write_bytes(text.encode())
    assert "config.yaml: llm.api_key" in served(workspace, ["--config", str(path)])



# -- the real command: exit 2, at once -------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "char device"])
def test_a_config_file_that_would_block_stops_the_command_with_exit_2(server_process, workspace,
                                                                       kind):
    path = special_file(kind, workspace)
    line = process_refusal(server_process, ["--config", path])
    assert f"{path} {SPECIAL[kind]}" in line


def test_a_typo_around_a_key_stops_the_command_with_exit_2_without_the_key(server_process,
                                                                            workspace):
    path = workspace.write("config.yaml", TYPOS["no space after the colon"])
    assert str(path) in process_refusal(server_process, ["--config", str(path)])
