"""Invisible characters are control characters: Unicode format characters (category Cf: the
zero-width characters U+200B–U+200F, the bidi controls U+202A–U+202E and U+2066–U+2069, the
BOM U+FEFF, …) are refused in every request string, like C0/C1 controls, with INVALID_ARGUMENT
and a field violation naming the field — whichever RPC and field. A value that looks like
`claude-sonnet-4.5` but is not, or a session id that renders backwards, never gets through.

Server inputs (environment, config file) follow the same rule: one definition of a control
character (`llmconfig_server.resolve.parsing.control_character`) for everything the server takes.
"""

from __future__ import annotations

import unicodedata

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmconfig

INVISIBLE = {"zero-width space": "\u200b", "bidi override": "\u202e", "BOM": "\ufeff"}


def refused(call, *args, **kwargs) -> llmconfig.ConfigInvalid:
    with pytest.raises(llmconfig.ConfigInvalid) as caught:
        call(*args, **kwargs)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def the_violation(error: llmconfig.ConfigInvalid) -> tuple[str, str]:
    (violation,) = error.violations
    return violation.subject, violation.reason


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_character_in_a_model_name_is_refused(serve, char):
    error = refused(serve().resolve, model="claude-sonnet" + char + "-4.5")
    assert the_violation(error) == ("overrides.model", "CONTROL_CHARACTER")
    assert f"U+{ord(char):04X}" in error.message
    assert char not in error.message


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_character_in_a_session_id_is_refused(serve, char):
    error = refused(serve().resolve_runner, session_id="abc" + char + "def")
    assert the_violation(error) == ("session_id", "CONTROL_CHARACTER")


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_character_in_a_runner_llm_override_is_refused(serve, char):
    error = refused(serve().resolve_runner, model=char + "qwen2.5-coder:7b")
    assert the_violation(error) == ("llm_overrides.model", "CONTROL_CHARACTER")


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_character_in_a_health_request_is_refused(serve, char):
    error = refused(serve().check_health, provider="ollama", model="llama3.2" + char)
    assert the_violation(error) == ("model", "CONTROL_CHARACTER")


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_character_in_a_models_request_is_refused(serve, char):
    error = refused(serve().list_models, "ollama" + char)
    assert the_violation(error) == ("provider", "CONTROL_CHARACTER")


def test_an_invisible_character_in_a_watch_request_is_refused(serve):
    error = refused(lambda: next(iter(serve().watch(model="qwen\u200b"))))
    assert the_violation(error) == ("overrides.model", "CONTROL_CHARACTER")


def test_an_invisible_character_in_the_mode_is_refused(serve):
    error = refused(serve().resolve, "local\ufeff")
    assert the_violation(error) == ("mode", "CONTROL_CHARACTER")


def test_a_bom_in_an_api_key_is_a_control_character(serve):
    error = refused(serve().resolve, provider="anthropic", api_key="\ufeffsk-ant-x")
    assert the_violation(error) == ("overrides.api_key", "CONTROL_CHARACTER")


def test_printable_non_ascii_model_names_still_pass(serve):
    assert serve().resolve(provider="ollama", model="qwen-é-中文").config.model == "qwen-é-中文"


# Every format character Unicode knows (this Python's database), anywhere in the value.
FORMAT_CHARACTERS = st.characters(categories=["Cf"])
NAME_PARTS = st.text(st.sampled_from("abcxyz0129.:-"), min_size=1, max_size=12)


def test_every_format_character_in_a_model_name_is_refused(serve):
    client = serve()

    @settings(deadline=None, max_examples=150, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(before=NAME_PARTS, char=FORMAT_CHARACTERS, after=NAME_PARTS)
    def check(before: str, char: str, after: str) -> None:
        assert unicodedata.category(char) == "Cf"
        error = refused(client.resolve, provider="ollama", model=before + char + after)
        assert the_violation(error) == ("overrides.model", "CONTROL_CHARACTER")
        assert f"U+{ord(char):04X}" in error.message

    check()


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_character_in_a_server_variable_stops_the_server(server_process, char):
    handle = server_process(env={"STIGMER_LLM_MODEL": "qwen" + char}, wait_ready=False)
    assert handle.finish() == 2
    _header, line = handle.lines
    assert line.startswith("  - STIGMER_LLM_MODEL")
    assert f"control character (U+{ord(char):04X}" in line
    assert char not in handle.log


def test_an_invisible_character_in_the_config_file_stops_the_server(server_process, workspace):
    workspace.write("~/.stigmer/llmconfig.yaml", 'llm:\n  model: "qwen\\u202e"\n')
    handle = server_process(wait_ready=False)
    assert handle.finish() == 2
    assert "llm.model: model contains a control character (U+202E" in handle.log
    assert "\u202e" not in handle.log

