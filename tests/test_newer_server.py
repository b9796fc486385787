"""The client and the CLI against a newer (or broken, or hostile) server: forward compatible and
safe to print.

- An enum number this client does not know is the UNKNOWN member (`Source.UNKNOWN`,
  `HealthStatus.UNKNOWN`, `ModelStatus.UNKNOWN`), never a KeyError or ValueError.
- `grpc-status-details-bin` that cannot be read falls back to the status code and message.
- A timestamp Python cannot hold is None.
- The CLI escapes control and format characters (ESC, OSC, U+202E, …) in everything it prints,
  text and JSON: a provider's string can neither clear the screen nor fake a verdict.

The server is a real gRPC server (tests/newer_server.py) implementing the generated servicer;
the client is the real `llmconfig.Client`, the CLI the installed `llmconfig` command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from newer_server import (
    HOSTILE_MESSAGE,
    HOSTILE_MODEL,
    HOSTILE_VERSION,
    HOSTILE_WARNING,
    MESSAGE,
    NewerServer,
    garbage_status_details,
    status_of_another_code,
    status_with_an_unreadable_detail,
)

import llmconfig

from conftest import base_env

LLMCONFIG = Path(sys.executable).parent / "llmconfig"
RAW = ("\x1b", "\u202e", "\x07")  # ESC (CSI and OSC), the bidi override, BEL


@pytest.fixture
def newer() -> Iterator[NewerServer]:
    with NewerServer() as server:
        yield server


@pytest.fixture
def client(newer: NewerServer) -> Iterator[llmconfig.Client]:
    with llmconfig.Client(newer.target) as made:
        yield made


def cli(workspace, target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LLMCONFIG), *args, "--target", target, "--timeout", "10"],
                          capture_output=True, text=True, timeout=60, env=base_env(workspace))


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    """No traceback, and no raw control or format character in anything printed."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    for char in RAW:
        assert char not in output, (char, output)


# -- forward compatible: enums ------------------------------------------------------------------

def test_an_unknown_source_number_is_source_unknown(client):
    resolved = client.resolve()
    assert {origin.source for origin in resolved.origins} == {llmconfig.Source.UNKNOWN}
    assert resolved.config.model == HOSTILE_MODEL  # the client keeps data as sent


def test_an_unknown_source_in_a_runner_answer_is_source_unknown(client):
    runner = client.resolve_runner()
    assert runner.origin("temporal.address").source is llmconfig.Source.UNKNOWN


def test_an_unknown_health_status_is_health_status_unknown(client):
    health = client.check_health()
    assert health.status is llmconfig.HealthStatus.UNKNOWN
    assert health.healthy is False  # the server's own verdict still decides


def test_an_unknown_model_status_is_model_status_unknown(client):
    (model,) = client.list_models()
    assert model.status is llmconfig.ModelStatus.UNKNOWN
    assert model.known_from == ""


def test_a_watch_event_with_unknown_enums_is_read(client):
    change = next(iter(client.watch()))
    assert change.resolved is not None
    assert change.resolved.origins[0].source is llmconfig.Source.UNKNOWN


# -- forward compatible: timestamps -------------------------------------------------------------

def test_a_timestamp_beyond_pythons_range_is_none(client):
    health = client.check_health()
    assert health.checked_at is None
    assert health.latency == pytest.approx(0.005)


# -- forward compatible: status details ---------------------------------------------------------

@pytest.mark.parametrize("details", [garbage_status_details(), status_of_another_code()],
                         ids=["not a Status", "a Status of another code"])
def test_unreadable_status_details_fall_back_to_the_status_message(details):
    with NewerServer(error_details=details) as server, \
            llmconfig.Client(server.target) as client, \
            pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.resolve()
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == MESSAGE
    assert caught.value.violations == ()


def test_a_detail_that_does_not_parse_is_skipped_and_the_others_read():
    details = status_with_an_unreadable_detail()
    with NewerServer(error_details=details) as server, \
            llmconfig.Client(server.target) as client, \
            pytest.raises(llmconfig.ConfigInvalid) as caught:
        client.check_health()
    assert caught.value.reason == "NEWER_REASON"
    assert caught.value.violations == ()


def test_a_watch_error_event_with_an_unknown_code_and_bad_details_is_read(client):
    changes = iter(client.watch())
    next(changes)
    change = next(changes)
    assert change.error is not None
    assert change.error.code is grpc.StatusCode.UNKNOWN
    assert change.error.message.startswith("newer error")


# -- the CLI: no traceback, nothing raw ----------------------------------------------------------

@pytest.mark.parametrize("command", ["resolve", "runner", "health", "doctor", "models"])
def test_cli_against_a_newer_server_prints_no_traceback_and_nothing_raw(newer, workspace,
                                                                         command):
    done = cli(workspace, newer.target, command, "--color", "never")
    assert done.returncode in (0, 1), done.stderr  # 1: health/doctor, the verdict is unhealthy
    assert_clean(done)


@pytest.mark.parametrize("command", ["resolve", "runner", "health", "doctor", "models"])
def test_cli_with_colour_on_still_prints_nothing_raw_from_the_server(newer, workspace, command):
    done = cli(workspace, newer.target, command, "--color", "always")
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert "\x1b[2J" not in output and "\x1b]" not in output and "\u202e" not in output
    assert "\x1b[" in output  # the CLI's own colours are still there


def test_cli_health_shows_the_hostile_message_escaped(newer, workspace):
    done = cli(workspace, newer.target, "health", "--color", "never")
    assert done.returncode == 1
    assert "UNKNOWN" in done.stdout
    assert "\\x1b[2J\\x1b[H✓ HEALTHY all good\\x1b]0;pwned\\x07" in done.stdout
    assert "llama3.2\\u202etxt.exe" in done.stdout


def test_cli_models_shows_hostile_model_names_escaped(newer, workspace):
    done = cli(workspace, newer.target, "models", "--color", "never")
    assert done.returncode == 0
    assert "llama3.2\\u202etxt.exe" in done.stdout
    assert "unknown" in done.stdout
    assert "note\\x1b[2J\\x1b[Hnothing to see" in done.stderr  # the warning


def test_cli_doctor_cannot_be_made_to_look_ready(newer, workspace):
    done = cli(workspace, newer.target, "doctor", "--color", "never")
    assert done.returncode == 1
    assert "Not ready." in done.stdout
    assert_clean(done)


@pytest.mark.parametrize("command", ["resolve", "runner", "health", "doctor", "models"])
def test_cli_json_escapes_as_json_and_keeps_the_value(newer, workspace, command):
    done = cli(workspace, newer.target, command, "--json")
    assert_clean(done)
    data = json.loads(done.stdout)  # still valid JSON, and the value is exactly what was sent
    text = json.dumps(data, ensure_ascii=False)
    assert HOSTILE_MODEL in text or HOSTILE_MESSAGE in text or HOSTILE_WARNING in text


def test_cli_json_health_keeps_the_version_and_has_no_time(newer, workspace):
    done = cli(workspace, newer.target, "health", "--json")
    data = json.loads(done.stdout)
    assert data["server_version"] == HOSTILE_VERSION
    assert data["status"] == "unknown"
    assert data["checked_at"] is None


@pytest.mark.parametrize("details", [garbage_status_details(), status_of_another_code(),
                                     status_with_an_unreadable_detail()],
                         ids=["not a Status", "a Status of another code", "a bad detail"])
def test_cli_with_unreadable_status_details_prints_the_message(workspace, details):
    with NewerServer(error_details=details) as server:
        done = cli(workspace, server.target, "resolve", "--color", "never")
    assert done.returncode == 2
    assert f"error (INVALID_ARGUMENT): {MESSAGE}" in done.stderr
    assert_clean(done)


def test_cli_watch_against_a_newer_server_prints_nothing_raw(newer, workspace):
    done = cli(workspace, newer.target, "watch", "--color", "never")
    assert done.returncode == 2  # the newer server ends the stream PERMISSION_DENIED
    assert "llama3.2\\u202etxt.exe" in done.stdout
    assert "error (UNKNOWN): newer error\\x1b[2J\\x1b[H" in done.stdout
    assert_clean(done)
