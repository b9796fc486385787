"""Logging set-up: text for people (the default), or `--log-format json`, one object a line for
cluster log pipelines, with the structured fields a line carries (rpc, token, peer, provider,
status, …) as keys of their own.

Every line, whoever wrote it (the startup report, a runner setting's error, a library), goes
out with the credentials of any URL in it hidden (`redis://***@host`): one redaction at the
one place every line passes, instead of one per message that might quote a URL."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final

from llmconfig_server.support.redact import redact_text

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        # Each value before encoding: a quote in a password must not end the match early.
        return json.dumps({key: _redacted(value) for key, value in data.items()},
                          ensure_ascii=False, default=str)


def _redacted(value: object) -> object:
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact_text(value if isinstance(value, str) else str(value))


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_chatty_libraries()


# Libraries that log at INFO what ours say better, once: httpx and httpcore every probe's URL
# (credentials included), watchfiles every change it sees (a log file beside a watched key file
# would log itself in a loop).
CHATTY_LIBRARIES: Final = ("httpx", "httpcore", "watchfiles")


def quiet_chatty_libraries() -> None:
    """The one place that quiets them: `configure` (the command) and `app.start` (a server
    embedded in another program, or in the test suite) call it."""
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
