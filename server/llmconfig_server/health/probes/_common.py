"""What every probe shares: its input, its verdict, and turning HTTP failures into a status.

A probe is `async def probe(http, target) -> Verdict`. It makes at most a couple of GET
requests that cost no tokens, and it never raises for a network or provider failure.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from llmconfig_server.health.origin_limits import Limited, OriginLimits
from llmconfig_server.resolve.domain import HealthStatus, ProbeTarget, Verdict
from llmconfig_server.resolve.network import is_loopback
from llmconfig_server.resolve.parsing import UNSHOWN_CATEGORIES, escape_controls


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


MAX_ANSWER: Final = 1024 * 1024  # bytes of an answer a probe reads, after decompression
# Compressed bytes read: compression rarely makes data bigger, never twice as big.
_MAX_RAW: Final = 2 * MAX_ANSWER
_MAX_ENCODINGS: Final = 3  # Content-Encoding: gzip, gzip, gzip is already odd
TEXT_LIMIT: Final = 120  # characters of a name or version from upstream put in a message


class TooBig(Exception):
    """The answer is bigger than MAX_ANSWER (after decompression)."""


class Undecodable(Exception):
    """The answer's Content-Encoding is not one we asked for, or its bytes do not inflate."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer, read whole but at most MAX_ANSWER bytes of it."""

    status_code: int
    headers: httpx.Headers
    url: str
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not (nesting too deep included)."""
        try:
            return json.loads(self.content)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None


class Upstream:
    """The one way probes and model listings reach a provider: every request goes through
    `get` (or `status`), which waits for the origin's turn (OriginLimits), holds one deadline
    around connect, headers, body and decompression (the probe's timeout), and reads at most
    MAX_ANSWER bytes after decompression, inflating gzip and deflate itself in bounded steps."""

    def __init__(self, client: httpx.AsyncClient, limits: OriginLimits) -> None:
        self.client = client
        self.limits = limits

    async def get(self, url: str, target: ProbeTarget, what: str,
                  headers: dict[str, str] | None = None) -> Answer:
        """GET within the probe's budget; every failure becomes ProbeFailed with a verdict."""
        return await self._request("GET", url, target, what, headers, read=True)

    async def status(self, method: str, url: str, target: ProbeTarget, what: str) -> int:
        """The status of `method url`, the body never read; ProbeFailed without one."""
        return (await self._request(method, url, target, what, None, read=False)).status_code

    async def _request(self, method: str, url: str, target: ProbeTarget, what: str,
                       headers: dict[str, str] | None, read: bool) -> Answer:
        try:
            async with asyncio.timeout(target.timeout):
                origin = origin_of(url)
                if wait := self.limits.admit(origin, target.timeout / 2):
                    await asyncio.sleep(wait)
                sent = {**(headers or {}), "Accept-Encoding": "gzip, deflate"}
                async with self.client.stream(method, url, headers=sent,
                                              timeout=target.timeout) as response:
                    if response.status_code == 429:
                        self.limits.pause(origin, response.headers.get("retry-after"))
                    content = await _read(response) if read else b""
                    return Answer(response.status_code, response.headers, str(response.url),
                                  content)
        except TimeoutError:
            raise ProbeFailed(_timeout(target, what)) from None
        except Limited as limited:
            raise ProbeFailed(Verdict(HealthStatus.RATE_LIMITED,
                                      f"{what} at {target.base_url} was not asked: "
                                      f"{limited.message}")) from None
        except TooBig:
            raise ProbeFailed(Verdict(
                HealthStatus.BAD_RESPONSE,
                f"{what} at {target.base_url} answered more than {MAX_ANSWER // 1024} KiB "
                f"(after decompression) to {clean_text(url, 300)} — too big an answer to read; "
                f"is it really {what}?",
            )) from None
        except Undecodable as exc:
            raise ProbeFailed(Verdict(
                HealthStatus.BAD_RESPONSE,
                f"{what} at {target.base_url} sent an answer that cannot be decoded ({exc})",
            )) from None
        except httpx.TimeoutException:
            raise ProbeFailed(_timeout(target, what)) from None
        except httpx.ConnectError as exc:
            raise ProbeFailed(Verdict(HealthStatus.UNREACHABLE,
                                      _connect_message(exc, what, target))) from None
        except (httpx.RemoteProtocolError, httpx.DecodingError):
            raise ProbeFailed(Verdict(
                HealthStatus.BAD_RESPONSE,
                f"{target.base_url} did not answer with valid HTTP — is it really {what}?",
            )) from None
        except httpx.InvalidURL as exc:
            raise ProbeFailed(Verdict(
                HealthStatus.UNREACHABLE,
                f"no request can be sent to {what} at {target.base_url}: the URL is not usable "
                f"({clean_text(str(exc), 200)}) — check the base URL",
            )) from None
        except httpx.TransportError as exc:
            raise ProbeFailed(Verdict(
                HealthStatus.UNREACHABLE,
                f"the connection to {what} at {target.base_url} failed ({type(exc).__name__})",
            )) from None


def _timeout(target: ProbeTarget, what: str) -> Verdict:
    return Verdict(
        HealthStatus.TIMEOUT,
        f"{what} at {target.base_url} did not answer within {target.timeout:g} s — check "
        "that the address is right and that nothing between us drops the traffic",
    )


def origin_of(url: str) -> str:
    """scheme://host:port of `url` (no credentials, no path); httpx.InvalidURL if unusable."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    except ValueError as exc:  # a host IDNA refuses (idna.IDNAError) is no usable URL either
        raise httpx.InvalidURL(f"{type(exc).__name__}: {exc}") from None
    return f"{parsed.scheme}://{host}:{port}"


async def _read(response: httpx.Response) -> bytes:
    """The body, inflated, at most MAX_ANSWER bytes; raises TooBig or Undecodable."""
    stages = _decoders(response.headers.get_list("content-encoding", split_commas=True))
    body = bytearray()
    raw = 0
    async for chunk in response.aiter_raw():
        raw += len(chunk)
        if raw > _MAX_RAW:
            raise TooBig
        for stage in stages:
            chunk = stage.feed(chunk)
        body += chunk
        if len(body) > MAX_ANSWER:
            raise TooBig
    return bytes(body)


class _Inflate:
    """One Content-Encoding undone in steps of at most MAX_ANSWER + 1 bytes of output."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # gzip: a gzip header; deflate: zlib-wrapped as the RFC says, raw as some servers send.
        self.wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
        self.inflater = zlib.decompressobj(self.wbits)
        self.produced = 0
        self.started = False

    def feed(self, data: bytes) -> bytes:
        if self.inflater.eof or not data:
            return b""  # whatever follows the end of the stream is not read
        try:
            out = self.inflater.decompress(data, MAX_ANSWER + 1 - self.produced)
        except zlib.error:
            if self.encoding != "deflate" or self.started:
                raise Undecodable(f"its {self.encoding} data is corrupt") from None
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
            return self.feed(data)
        self.started = True
        self.produced += len(out)
        if self.produced > MAX_ANSWER:
            raise TooBig
        return out


def _decoders(encodings: list[str]) -> list[_Inflate]:
    """The steps undoing `encodings` (as listed, the last applied last: undone first)."""
    names = [e.strip().lower() for e in encodings if e.strip()]
    if len(names) > _MAX_ENCODINGS:
        raise Undecodable(f"{len(names)} content encodings")
    stages = []
    for name in reversed(names):
        if name == "identity":
            continue
        if name not in ("gzip", "x-gzip", "deflate"):
            raise Undecodable(f"content encoding {clean_text(name, 40)!r}, not asked for")
        stages.append(_Inflate("deflate" if name == "deflate" else "gzip"))
    return stages


def clean_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """Text from upstream, fit for a message: control, format and other unshown characters
    (ESC, BEL, U+202E, U+200B, …) escaped as Python escapes them, at most `limit` characters."""
    if len(text) > 4 * limit:
        text = text[:4 * limit]
    shown = escape_controls(text, UNSHOWN_CATEGORIES)
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


async def get(http: Upstream, url: str, target: ProbeTarget, what: str,
              headers: dict[str, str] | None = None) -> Answer:
    """GET with the probe's budget; network failures become ProbeFailed with a useful verdict."""
    return await http.get(url, target, what, headers)


def _connect_message(exc: httpx.ConnectError, what: str, target: ProbeTarget) -> str:
    text = str(exc).lower()
    if any(s in text for s in ("name or service not known", "nodename nor servname",
                               "name resolution", "no address associated", "getaddrinfo")):
        return (f"cannot resolve host {host_of(target.base_url)} of {what} at {target.base_url}"
                " — check the base URL's host name")
    return f"nothing is listening at {target.base_url} for {what}"


def json_or_fail(response: Answer, target: ProbeTarget, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProbeFailed(Verdict(
            HealthStatus.BAD_RESPONSE,
            f"{response.url} answered {response.status_code} but not with JSON — "
            f"is {target.base_url} really {what}?",
        )) from None


def error_text(response: Answer, key: str) -> str:
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
    return clean_text(redact(text.strip(), key), 300)  # redacted whole, then cut


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


def retry_after(response: Answer) -> str:
    value = response.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit() and len(value) <= 7:
        return f" (retry after {value} s)"
    return f" (retry after {clean_text(value, 40)})" if value else ""
