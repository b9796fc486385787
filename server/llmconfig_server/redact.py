"""Credentials inside URLs (`https://user:pass@proxy/`) are secrets like API keys: shown as
`https://***@proxy/` everywhere a server input is displayed."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
