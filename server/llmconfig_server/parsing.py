"""Turning one raw value (a string from env/flags, a typed value from YAML or the request) into a
`Value`, or a `Violation` that says what is wrong. Range checks that depend on the provider
happen later, in the cascade, once the provider is known."""

from __future__ import annotations

import ipaddress
import math
from typing import Any
from urllib.parse import urlsplit

from .catalog import MODES, PROVIDERS, known_providers_text
from .domain import Reason, Source, Value, Violation
from .redact import redact_url


class ParseError(Exception):
    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.message)
        self.violation = violation


def _fail(name: str, reason: Reason, message: str, source: Source, subject: str) -> ParseError:
    return ParseError(Violation(name, reason, message, source, subject))


def parse_value(name: str, raw: Any, source: Source, detail: str, subject: str) -> Value:
    """Parse `raw` for field `name`; raise ParseError with a precise message."""
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "":
            raise _fail(
                name, Reason.EMPTY_VALUE, f"{subject} is empty; set a value or leave it out",
                source, subject,
            )
    parsed: Any
    if name == "provider":
        parsed = _parse_provider(raw, source, subject)
    elif name in ("model", "api_key"):
        parsed = str(raw)
    elif name == "base_url":
        parsed = parse_http_url(str(raw), source, subject)
    elif name == "max_tokens":
        parsed = _parse_int(raw, source, subject)
    elif name == "temperature":
        parsed = _parse_float(raw, source, subject)
    else:  # pragma: no cover - a programming error, not an input error
        raise KeyError(name)
    return Value(parsed, source, detail, subject)


def parse_mode(raw: str, source: Source, subject: str) -> str:
    mode = raw.strip().lower()
    if mode not in MODES:
        raise _fail(
            "mode", Reason.UNKNOWN_MODE,
            f"{subject}: mode {raw!r} is not known; use one of: "
            f"{', '.join(MODES)}",
            source, subject,
        )
    return mode


def _parse_provider(raw: Any, source: Source, subject: str) -> str:
    name = str(raw).strip().lower()
    if name not in PROVIDERS:
        raise _fail(
            "provider", Reason.UNKNOWN_PROVIDER,
            f"{subject}: provider {raw!r} is not known; use one of: "
            f"{known_providers_text()}",
            source, subject,
        )
    return name


def _parse_int(raw: Any, source: Source, subject: str) -> int:
    if isinstance(raw, bool):
        raw = repr(raw)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _fail(
            "max_tokens", Reason.INVALID_NUMBER,
            f"{subject}: {raw!r} is not an integer; max_tokens must be a "
            "positive integer such as 8192",
            source, subject,
        ) from None


def _parse_float(raw: Any, source: Source, subject: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value):
        raise _fail(
            "temperature", Reason.INVALID_NUMBER,
            f"{subject}: {raw!r} is not a number; temperature must be a "
            "number such as 0.0 or 0.7",
            source, subject,
        )
    return value


def parse_http_url(raw: str, source: Source, subject: str) -> str:
    """An absolute http(s) URL with a host, without a trailing slash. Credentials in it
    (`user:pass@`) are the operator's to configure, never a request's, and never shown."""
    url = raw.strip()
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        problem = "its port is not a number between 0 and 65535"
    else:
        if parts.scheme not in ("http", "https"):
            problem = "it does not start with http:// or https://"
        elif not parts.hostname:
            problem = "it has no host"
        elif parts.query or parts.fragment:
            problem = "it has a query or fragment"
        elif source is Source.REQUEST and "@" in parts.netloc:
            problem = ("it has credentials in it (user:password@); a request may not send "
                       "them, configure them on the server")
    if problem:
        raise _fail(
            "base_url", Reason.INVALID_URL,
            f"{subject}: base_url {redact_url(raw)!r} is not usable: {problem}; "
            "use a URL like http://localhost:11434 or https://api.anthropic.com",
            source, subject,
        )
    return url.rstrip("/")


def parse_ollama_host(raw: str, source: Source, subject: str) -> tuple[str, tuple[str, ...]]:
    """OLLAMA_HOST as Ollama's own clients read it (ollama/envconfig.Host, ollama-python).

    No scheme means http; a bare host means port 11434, but `http://host` means port 80 and
    `https://host` 443 (a trap worth a warning); a path is kept; 0.0.0.0 and :: (what the server
    binds to) mean loopback for a client.
    """
    text = raw.strip()
    scheme, sep, hostport = text.partition("://")
    port = 11434
    if not sep:
        scheme, hostport = "http", text
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    else:
        raise _fail(
            "base_url", Reason.INVALID_URL,
            f"{subject}: {raw!r} has scheme {scheme!r}; use http or https",
            source, subject,
        )
    hostport, _, path = hostport.partition("/")
    explicit_port: int | None
    try:
        # A bare IP (Ollama's Go client accepts "::1" and "[::1]" without a port).
        host = str(ipaddress.ip_address(hostport.strip("[]")))
        explicit_port = None
    except ValueError:
        try:
            parts = urlsplit(f"{scheme}://{hostport}")
            explicit_port = parts.port
        except ValueError:
            raise _fail(
                "base_url", Reason.INVALID_URL,
                f"{subject}: {raw!r} has a port that is not a number between 0 "
                "and 65535",
                source, subject,
            ) from None
        host = parts.hostname or "127.0.0.1"
    notes: list[str] = []
    if explicit_port is None and sep:
        notes.append(
            f"{subject}={raw!r} has a scheme but no port, so it means port {port} (Ollama's own "
            f"rule), not 11434; write {scheme}://{host}:11434 if that is what you meant"
        )
    if host in ("0.0.0.0", "::"):
        notes.append(f"{subject}={raw!r} is a listen address; using loopback to reach it")
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    url = f"{scheme}://{host}:{explicit_port or port}"
    if path.strip("/"):
        url += "/" + path.strip("/")
    return url, tuple(notes)
