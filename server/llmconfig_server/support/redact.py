"""Credentials inside URLs (`https://user:pass@proxy/`) are secrets like API keys: shown as
`https://***@proxy/` everywhere a server input is displayed, and in every log line (logs.py)
— with or without a scheme (`default:pw@redis:6379`)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# The userinfo of any URL inside free text (a warning, an error, a provider's message): from
# `scheme://` to the last `@` of the authority (a password may hold an `@` of its own), which
# ends at `/`, `?`, `#`, white space or a quote.
_USERINFO_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s'\"]*@")
# `user:password@host` without a scheme (a host:port setting given a URL's userinfo); an
# address without a colon before the `@` (user@example.com) is left alone.
_BARE_USERINFO = re.compile(r"(?<![\w.~%+:/@-])[\w.~%+-]+:[^/?#\s'\"]*@(?=[\w\[])")


def has_credentials(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """`url` with any userinfo replaced by `***`; unchanged when it has none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced by `***`."""
    if "@" not in text:
        return text  # the common case, without a regex
    return _BARE_USERINFO.sub("***@", _USERINFO_IN_TEXT.sub(r"\1***@", text))
