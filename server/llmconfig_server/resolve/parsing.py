"""Turning one raw value (a string from env/flags, a typed value from YAML or the request) into a
`Value`, or a `Violation` that says what is wrong. Range checks that depend on the provider
happen later, in the cascade, once the provider is known.

Values are taken exactly, wherever they come from: no surrounding whitespace, no case folding
(`LOCAL` is not a mode), numbers as plain ASCII decimals (Python's int() and float() also take
`1_000`, Arabic-Indic digits and `inf`; we do not). Every string is bounded and free of control
characters, so nothing that reaches a log line or an error can forge or flood it. An error never
shows a secret, nor more than a short excerpt of what it refuses.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from llmconfig_server.resolve.catalog import MODES
from llmconfig_server.resolve.domain import Reason, Source, Value, Violation
from llmconfig_server.support.redact import redact_url

# The contract's limits (characters); other strings are bounded by the request size cap and,
# being names from a closed list, refused as unknown.
MAX_LENGTH: Final = {"model": 256, "base_url": 2048, "api_key": 4096}
_WHAT: Final = {"api_key": "the API key"}  # how a message names a field, when not by its name
_INT: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# What a secret looks like when it shows up where it should not (a typo in a YAML file, a key
# pasted into the provider variable): a key prefix anywhere, `key: …`/`token=…`, or a long run
# of mixed-case letters and digits (base64) or of hex digits. A false positive only hides a value
# from an error message.
_SECRET_SHAPE: Final = re.compile(
    r"sk-|(?i:key|token|passw|secret|credential)\w*\s*[:=]|[0-9a-fA-F]{32,}")
_RANDOM_RUN: Final = re.compile(r"[A-Za-z0-9+/_=-]{20,}")
_EXCERPT: Final = 64
# What counts as a control character, everywhere the server checks or escapes text (request
# strings, config files, environment values, file names, log lines): Unicode Cc (C0, DEL, C1),
# Cf (format characters: zero-width U+200B–U+200F, bidi controls U+202A–U+202E and
# U+2066–U+2069, the BOM U+FEFF, soft hyphen, tags, …), and the line and paragraph separators
# (Zl, Zp) that some terminals and log viewers treat as newlines. Invisible or reordering
# characters let a value look like another one (a model name, a session id, a log line).
CONTROL_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
_NOT_KEY_CHARACTER: Final = re.compile("[^!-~]")  # printable ASCII, no space
# A DNS name (labels of letters, digits, `-` and `_`, dot-separated), as resolvers take them.
_HOST_NAME: Final = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                               r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")


class ParseError(Exception):
    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.message)
        self.violation = violation


def _fail(name: str, reason: Reason, message: str, source: Source, subject: str) -> ParseError:
    return ParseError(Violation(name, reason, message, source, subject))


def looks_like_secret(text: str) -> bool:
    if _SECRET_SHAPE.search(text):
        return True
    # Model ids are long too (claude-3-5-sonnet-20241022) but not mixed-case.
    return any(not run.islower() and not run.isupper() and any(c.isdigit() for c in run)
               for run in _RANDOM_RUN.findall(text))


def shown(raw: Any) -> str:
    """`raw` as an error message may show it: quoted and escaped (repr: no raw newline can forge
    a log line), cut short, and never when it looks like a secret."""
    if isinstance(raw, str) and looks_like_secret(raw):
        return "<a value that looks like a secret>"
    text = repr(raw)
    if len(text) > _EXCERPT:
        length = f"{len(raw)} characters" if isinstance(raw, str) else "long"
        text = f"{text[:_EXCERPT]}… ({length})"
    return text


def shorten_path(path: str) -> str:
    """A file name fit for one line of an error (a path is not a secret, but may be huge)."""
    return path if len(path) <= 256 else f"{path[:256]}… ({len(path)} characters)"


def is_control(character: str) -> bool:
    """Whether one character is a control character (see CONTROL_CATEGORIES)."""
    return unicodedata.category(character) in CONTROL_CATEGORIES


def control_character(text: str) -> tuple[int, str] | None:
    """The first control character and its position, if any, as (position, "U+200B ZERO WIDTH
    SPACE"): the one rule for every string the server takes (see CONTROL_CATEGORIES)."""
    if text.isprintable():  # fast path: printable text has no Cc, Cf, Zl or Zp character
        return None
    for position, character in enumerate(text):
        if is_control(character):
            name = unicodedata.name(character, "")
            return position, f"U+{ord(character):04X}" + (f" {name}" if name else "")
    return None


# What text from elsewhere (a provider's answer) must not show raw: the control characters and
# the code points with no glyph of their own (surrogates, private use, unassigned).
UNSHOWN_CATEGORIES: Final = CONTROL_CATEGORIES | {"Cs", "Co", "Cn"}


def escape_controls(text: str, categories: frozenset[str] = CONTROL_CATEGORIES) -> str:
    """`text` with every control character (line breaks included) — or every character of
    `categories` — escaped as Python would (`\\x1b`, `\\u202e`): fit for one line of a log or
    a terminal."""
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in categories else c
                   for c in text)


def request_control_character(message: Any, prefix: str = "") -> Violation | None:
    """The first string anywhere in a request message (nested messages and repeated fields
    included) holding a control character, as a violation naming its field path
    (`overrides.model`, `session_id`): the rule holds for every request string, present and
    future, before any field is read."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        items = value if _is_repeated(field) else (value,)
        if field.type == field.TYPE_STRING:
            for item in items:
                if found := control_character(item):
                    position, code = found
                    return Violation(path, Reason.CONTROL_CHARACTER,
                                     f"{path} contains a control character ({code} at position "
                                     f"{position}); remove it", Source.REQUEST, path)
        elif field.type == field.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            for item in items:
                if (violation := request_control_character(item, f"{path}.")) is not None:
                    return violation
    return None


def _is_repeated(field: Any) -> bool:
    # protobuf ≥ 5.26 has `is_repeated`; older versions only `label`.
    repeated = getattr(field, "is_repeated", None)
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED


def check_text(name: str, raw: str, source: Source, subject: str, *, limit: int | None = None,
               what: str | None = None) -> None:
    """The rules every string value obeys, whichever field and source: bounded, no control
    characters, no surrounding whitespace. Messages describe the value, never echo it."""
    what = what or _WHAT.get(name, name)
    limit = limit or MAX_LENGTH.get(name)
    if limit is not None and len(raw) > limit:
        raise _fail(name, Reason.VALUE_TOO_LONG,
                    f"{subject}: {what} is {len(raw)} characters long; at most {limit} are "
                    "allowed", source, subject)
    if found := control_character(raw):
        position, code = found
        where = "at its end" if position == len(raw) - 1 else f"at position {position}"
        raise _fail(name, Reason.CONTROL_CHARACTER,
                    f"{subject}: {what} contains a control character ({code} {where}); "
                    "remove it", source, subject)
    if raw != raw.strip():
        raise _fail(name, Reason.UNEXPECTED_WHITESPACE,
                    f"{subject}: {what} has leading or trailing whitespace; values are taken "
                    "exactly, remove it", source, subject)


def parse_value(name: str, raw: Any, source: Source, detail: str, subject: str,
                providers: Sequence[str] | None = None) -> Value:
    """Parse `raw` for field `name`; raise ParseError with a precise message. A provider must
    be one of `providers` (default: the shipped catalog's)."""
    if isinstance(raw, str):
        if raw.strip() == "":
            raise _fail(
                name, Reason.EMPTY_VALUE, f"{subject} is empty; set a value or leave it out",
                source, subject,
            )
        check_text(name, raw, source, subject)
    parsed: Any
    if name == "provider":
        parsed = _parse_provider(raw, source, subject, providers)
    elif name == "model":
        parsed = str(raw)
    elif name == "api_key":
        parsed = _parse_api_key(str(raw), source, subject)
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
    check_text("mode", raw, source, subject)
    if raw not in MODES:
        raise _fail(
            "mode", Reason.UNKNOWN_MODE,
            f"{subject}: mode {shown(raw)} is not known; use one of: "
            f"{', '.join(MODES)}{_exact_hint(raw, MODES)}",
            source, subject,
        )
    return raw


def _exact_hint(raw: str, names: Any) -> str:
    return " (names are lower case)" if raw.lower() in names else ""


def _parse_provider(raw: Any, source: Source, subject: str,
                    providers: Sequence[str] | None) -> str:
    if providers is None:
        from llmconfig_server.resolve.catalog import shipped

        providers = shipped().names
    if not isinstance(raw, str) or raw not in providers:
        raise _fail(
            "provider", Reason.UNKNOWN_PROVIDER,
            f"{subject}: provider {shown(raw)} is not known; use one of: "
            f"{', '.join(sorted(providers))}{_exact_hint(str(raw), providers)}",
            source, subject,
        )
    return raw


def _parse_api_key(raw: str, source: Source, subject: str) -> str:
    """Keys travel in HTTP headers: printable ASCII, nothing that a header would split on."""
    return parse_secret(raw, source, subject, name="api_key", what="the API key")


def _parse_int(raw: Any, source: Source, subject: str) -> int:
    return parse_integer(raw, source, subject, name="max_tokens",
                         rule="a positive integer written in decimal digits, such as 8192")


def parse_integer(raw: Any, source: Source, subject: str, *, name: str, rule: str,
                  minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number: a typed integer (proto, YAML) or a string of plain ASCII decimal digits,
    optionally signed. `rule` says what is allowed (`a port between 1 and 65535`)."""
    # A bool is an int to Python, and proto/YAML integers arrive typed; strings must be plain
    # ASCII decimals. (int() refuses more than 4300 digits with a ValueError; 100 is already
    # far out of range.)
    number: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str) and len(raw) <= 100 and _INT.fullmatch(raw):
        number = int(raw)
    if number is None:
        raise _fail(name, Reason.INVALID_NUMBER,
                    f"{subject}: {shown(raw)} is not an integer; {name} must be {rule}",
                    source, subject)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _fail(name, Reason.OUT_OF_RANGE,
                    f"{subject}: {number} is out of range; {name} must be {rule}",
                    source, subject)
    return number


def parse_boolean(raw: Any, source: Source, subject: str, *, name: str) -> bool:
    """`true` or `false`: a typed YAML boolean, or exactly those words (not `yes`, `1` or
    `True`, which other readers of the same variable take differently)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw in ("true", "false"):
        return raw == "true"
    raise _fail(name, Reason.INVALID_VALUE,
                f"{subject}: {shown(raw)} is not a boolean; {name} must be true or false",
                source, subject)


def parse_choice(raw: Any, choices: tuple[str, ...], source: Source, subject: str, *,
                 name: str) -> str:
    if isinstance(raw, str) and raw in choices:
        return raw
    raise _fail(name, Reason.INVALID_VALUE,
                f"{subject}: {shown(raw)} is not a known {name}; use one of: "
                f"{', '.join(choices)}{_exact_hint(str(raw), choices)}", source, subject)


def parse_host(raw: Any, source: Source, subject: str, *, name: str) -> str:
    """A host name or an IP address (an IPv6 address bare or in brackets); returned without
    brackets."""
    text = _string(raw, source, subject, name)
    if _HOST_NAME.fullmatch(text):
        return text
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        raise _fail(name, Reason.INVALID_VALUE,
                    f"{subject}: {shown(raw)} is not a host name or an IP address", source,
                    subject) from None


def parse_hostport(raw: Any, source: Source, subject: str, *, name: str, example: str) -> str:
    """`host:port` (`[v6]:port` for an IPv6 address), the port between 1 and 65535; returned
    as given."""
    text = _string(raw, source, subject, name)
    host, sep, port = text.rpartition(":")
    problem = None
    if not sep or not host or (":" in host.strip("[]") and not host.startswith("[")):
        problem = f"is not HOST:PORT, e.g. {example}"
    elif not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        problem = "has a port that is not a number between 1 and 65535"
    if problem is None:
        try:
            parse_host(host, source, subject, name=name)
        except ParseError:
            problem = "has a host that is not a host name or an IP address"
    if problem:
        raise _fail(name, Reason.INVALID_VALUE, f"{subject}: {shown(raw)} {problem}", source,
                    subject)
    return text


def parse_word(raw: Any, source: Source, subject: str, *, name: str, allowed: str,
               limit: int = 255) -> str:
    """A name from a small alphabet (a namespace, a task queue, an image reference): `allowed`
    is a regex character class body such as `A-Za-z0-9._-`."""
    text = _string(raw, source, subject, name)
    if len(text) > limit or not re.fullmatch(f"[{allowed}]+", text):
        described = allowed.replace("A-Za-z0-9", "letters, digits and ")
        raise _fail(name, Reason.INVALID_VALUE,
                    f"{subject}: {shown(raw)} is not a valid {name}: 1–{limit} of {described}",
                    source, subject)
    return text


def parse_path(raw: Any, source: Source, subject: str, *, name: str) -> str:
    """A folder path; a trailing slash is dropped (`/` stays `/`)."""
    text = _string(raw, source, subject, name)
    if len(text) > 4096:
        raise _fail(name, Reason.VALUE_TOO_LONG,
                    f"{subject}: {name} is {len(text)} characters long; at most 4096 are "
                    "allowed", source, subject)
    return text.rstrip("/") or "/"


def parse_secret(raw: Any, source: Source, subject: str, *, name: str, what: str) -> str:
    """A key, token or password: it travels in headers and connection strings, so printable
    ASCII without spaces, at most 4096 characters."""
    text = _string(raw, source, subject, name, limit=MAX_LENGTH["api_key"], what=what)
    if found := _NOT_KEY_CHARACTER.search(text):
        kind = "a space" if found.group().isspace() else "a non-ASCII character"
        raise _fail(name, Reason.INVALID_API_KEY,
                    f"{subject}: {what} contains {kind} at position {found.start()}; keys and "
                    "passwords are printable ASCII without spaces", source, subject)
    return text


def _string(raw: Any, source: Source, subject: str, name: str, *, limit: int | None = None,
            what: str | None = None) -> str:
    """`raw` as a string obeying the rules every string obeys (check_text)."""
    if not isinstance(raw, str):
        kind = "a mapping" if isinstance(raw, dict) else "a list" if isinstance(raw, list) \
            else type(raw).__name__
        raise _fail(name, Reason.INVALID_VALUE,
                    f"{subject}: {what or name} must be a string, not {kind}", source, subject)
    if raw.strip() == "":
        raise _fail(name, Reason.EMPTY_VALUE, f"{subject} is empty; set a value or leave it out",
                    source, subject)
    check_text(name, raw, source, subject, limit=limit, what=what)
    return raw


def _parse_float(raw: Any, source: Source, subject: str) -> float:
    number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    decimal = isinstance(raw, str) and _FLOAT.fullmatch(raw) is not None
    value = float(raw) if number or decimal else math.nan
    if not math.isfinite(value):
        raise _fail(
            "temperature", Reason.INVALID_NUMBER,
            f"{subject}: {shown(raw)} is not a number; temperature must be a "
            "finite decimal number such as 0.0 or 0.7",
            source, subject,
        )
    return value


def parse_http_url(raw: str, source: Source, subject: str) -> str:
    """An absolute http(s) URL with a host, without a trailing slash. Credentials in it
    (`user:pass@`) are the operator's to configure, never a request's, and never shown."""
    check_text("base_url", raw, source, subject)
    url = raw
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
            f"{subject}: base_url {shown(redact_url(raw))} is not usable: {problem}; "
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
    check_text("base_url", raw, source, subject)
    text, quoted = raw, shown(redact_url(raw))
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
            f"{subject}: {quoted} has scheme {shown(scheme)}; use http or https",
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
                f"{subject}: {quoted} has a port that is not a number between 0 "
                "and 65535",
                source, subject,
            ) from None
        host = parts.hostname or "127.0.0.1"
    notes: list[str] = []
    if explicit_port is None and sep:
        notes.append(
            f"{subject}={quoted} has a scheme but no port, so it means port {port} (Ollama's own "
            f"rule), not 11434; write {scheme}://{host}:11434 if that is what you meant"
        )
    if host in ("0.0.0.0", "::"):
        notes.append(f"{subject}={quoted} is a listen address; using loopback to reach it")
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
