"""`--log-format json`: one JSON object a line, with structured fields."""

from __future__ import annotations

import json
import signal

import llmconfig

from conftest import ANTHROPIC_KEY, TRUST_LOOPBACK


def test_json_logs_are_one_object_a_line_with_fields(server_process):
    handle = server_process([TRUST_LOOPBACK, "--log-format", "json"],
                            env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    with llmconfig.Client(handle.target) as client:
        client.resolve(include_secrets=True)
    handle.wait_for("secret served")
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    records = [json.loads(line) for line in handle.lines]  # every line is one object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert records[0]["message"].startswith("serving on ")
    audit = next(r for r in records if r["message"].startswith("secret served"))
    assert audit["level"] == "info" and audit["logger"] == "llmconfig_server.audit"
    assert audit["token"] == "trusted" and audit["rpc"] == "ResolveLLMConfig"
    assert audit["provider"] == "anthropic" and audit["key_hint"] == "sk-ant-…f2c9"
    assert ANTHROPIC_KEY not in handle.log


def test_text_logs_stay_the_default(server_process):
    handle = server_process()
    assert " INFO llmconfig_server: serving on " in handle.log
