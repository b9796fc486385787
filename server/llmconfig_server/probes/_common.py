"""What every probe shares: its input, its verdict, and turning HTTP failures into a status.

A probe is `async def probe(http, target) -> Verdict`. It makes at most a couple of GET
requests that cost no tokens, and it never raises for a network or provider failure.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..domain import HealthStatus, ProbeTarget, Verdict
from ..network import is_loopback


class ProbeFailed(Exception):
    """Raised inside a probe to stop with a verdict (e.g. a connection failure)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


_SECRETISH = re.compile(r"\b(sk-[A-Za-z0-9_\-*.]{3,}|[A-Za-z0-9_\-]{32,})")


def redact(text: str, key: str) -> str:
    """Remove anything key-like from a provider's message (OpenAI echoes part of a bad key)."""
    if key:
        text = text.replace(key, "[redacted]")
    return _SECRETISH.sub("[redacted]", text)


def host_of(url: str) -> str:
    return urlsplit(url).hostname or url


def is_loopback_url(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


async def get(http: httpx.AsyncClient, url: str, target: ProbeTarget, what: str,
              headers: dict[str, str] | None = None) -> httpx.Response:
    """GET with the probe's budget; network failures become ProbeFailed with a useful verdict."""
    try:
        return await http.get(url, headers=headers, timeout=target.timeout)
    except httpx.TimeoutException:
        raise ProbeFailed(Verdict(
            HealthStatus.TIMEOUT,
            f"{what} at {target.base_url} did not answer within {target.timeout:g} s — check "
            "that the address is right and that nothing between us drops the traffic",
        )) from None
    except httpx.ConnectError as exc:
        raise ProbeFailed(Verdict(HealthStatus.UNREACHABLE, _connect_message(exc, what, target))
                          ) from None
    except httpx.RemoteProtocolError:
        raise ProbeFailed(Verdict(
            HealthStatus.BAD_RESPONSE,
            f"{target.base_url} did not answer with valid HTTP — is it really {what}?",
        )) from None
    except httpx.InvalidURL as exc:
        raise ProbeFailed(Verdict(
            HealthStatus.UNREACHABLE,
            f"no request can be sent to {what} at {target.base_url}: the URL is not usable "
            f"({exc}) — check the base URL",
        )) from None
    except httpx.TransportError as exc:
        raise ProbeFailed(Verdict(
            HealthStatus.UNREACHABLE,
            f"the connection to {what} at {target.base_url} failed ({type(exc).__name__})",
        )) from None


def _connect_message(exc: httpx.ConnectError, what: str, target: ProbeTarget) -> str:
    text = str(exc).lower()
    if any(s in text for s in ("name or service not known", "nodename nor servname",
                               "name resolution", "no address associated", "getaddrinfo")):
        return (f"cannot resolve host {host_of(target.base_url)} of {what} at {target.base_url}"
                " — check the base URL's host name")
    return f"nothing is listening at {target.base_url} for {what}"


def json_or_fail(response: httpx.Response, target: ProbeTarget, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProbeFailed(Verdict(
            HealthStatus.BAD_RESPONSE,
            f"{response.request.url} answered {response.status_code} but not with JSON — "
            f"is {target.base_url} really {what}?",
        )) from None


def error_text(response: httpx.Response, key: str) -> str:
    """The provider's own error type and message, redacted; empty when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        # OpenAI's `code` (model_not_found) says more than its `type` (invalid_request_error).
        kind = error.get("code") or error.get("type") or ""
        message = str(error.get("message") or "")
        text = f"{kind}: {message}" if kind and message else (kind or message)
    elif isinstance(error, str):
        text = error
    else:
        return ""
    return redact(text.strip(), key)[:300]


def status_for_http_error(code: int) -> HealthStatus | None:
    """The contract's mapping of HTTP failures; None for codes a probe handles itself."""
    if code in (401, 403):
        return HealthStatus.UNAUTHENTICATED
    if code == 404:
        return HealthStatus.MODEL_NOT_FOUND
    if code == 429:
        return HealthStatus.RATE_LIMITED
    if code >= 500:  # includes Anthropic's 529 "overloaded"
        return HealthStatus.UNAVAILABLE
    return None


def retry_after(response: httpx.Response) -> str:
    value = response.headers.get("retry-after", "").strip()
    return f" (retry after {value} s)" if value.isdigit() else ""
