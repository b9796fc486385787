"""CheckProviderHealth without gRPC: which target to probe, whether we may, and probing it at
most once at a time and at most once per cache period, within the caller's budget.

- The target is the resolved configuration for the mode, with the request's provider, model
  and base URL as overrides (a missing key is resolved as "no key": NOT_CONFIGURED).
- A base URL the server's own configuration does not name is refused unless the server was
  started with --allow-any-probe-target: otherwise this service could reach any host.
- A key goes only where the server's own configuration would send it: to a base URL resolved
  for that key's provider (configured for it, or its default). Any other target (the base URL
  of another provider, or anything --allow-any-probe-target lets in) is answered NOT_CONFIGURED
  without a request, saying why, so a caller cannot make the server hand its key to a host.
- Concurrent identical checks share one upstream probe (single flight); results are cached,
  healthy ones longer than unhealthy ones; `refresh` skips the cache (but still joins a probe
  already in flight, which is as fresh as a new one).
- A cached verdict is also remembered as the answer's bytes, by the request's exact bytes
  (`answer(raw)`), the way ResolveLLMConfig's answers are: a fleet polling health costs a
  dictionary lookup per call. Such an answer lives exactly as long as the verdict it shows
  (its expiry, or until a refresh replaces it); errors and verdicts given without probing are
  never remembered. Who may ask is checked before the handler runs (access.py), cached or not.
- A probe never outlives its timeout, and a caller gets its verdict before its own deadline:
  the answer is due a margin before it (a share of the time left, with a floor), and at most
  _MAX_PROBES probes run at once (the others wait their turn inside their own budget), so a
  burst of distinct checks cannot keep the event loop from answering on time.
- Whatever a probe meets, the answer is a verdict, never an RPC failure; the caches are bounded
  in bytes as well as entries; log lines escape control characters, and only the server's own
  targets log their status changes at INFO (any other target logs at DEBUG), so callers can
  neither forge nor flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from llmconfig_server.health.model_lists import resolve_provider
from llmconfig_server.health.origin_limits import DEFAULT_RATE, OriginLimits
from llmconfig_server.resolve.catalog import MODES
from llmconfig_server.resolve.domain import (
    ConfigError,
    HealthStatus,
    ProbeTarget,
    Resolution,
    Source,
    Verdict,
)
from llmconfig_server.resolve.parsing import control_character, escape_controls
from llmconfig_server.resolve.rules import key_fix
from llmconfig_server.sources.resolver import Resolver
from llmconfig_server.support.bounded import BoundedCache
from llmconfig_server.support.redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx

    from llmconfig_server.health.probes.registry import Probe, Upstream

log = logging.getLogger(__name__)

_MIN_MARGIN: Final = 0.15  # time to send our answer before the caller's deadline, at least…
_MARGIN_SHARE: Final = 0.25  # …or this share of the time the caller gave us, whichever is more
_SLACK: Final = 0.05  # the probe caps itself at its timeout; let its own TIMEOUT verdict win
# Concurrent upstream probes. Hundreds at once make httpx's pool bookkeeping (quadratic in its
# queue) hold the event loop long enough that callers miss their deadlines; the ollama probe
# makes two requests, so this keeps within the pool's 64 connections.
_MAX_PROBES: Final = 32
_CACHE_ENTRIES: Final = 1024
_CACHE_BYTES: Final = 8 * 1024 * 1024
_INFLIGHT_ENTRIES: Final = 1024
_INFLIGHT_BYTES: Final = 4 * 1024 * 1024
MODEL_LIMIT: Final = 256  # the contract's limit on a model id
_LOG_TEXT_LIMIT: Final = 500
_CRASH_LOG_INTERVAL: Final = 10.0  # seconds between two WARNING lines about failing probes


@dataclass(frozen=True, slots=True)
class HealthOptions:
    probe_timeout: float = 2.0
    allow_any_target: bool = False
    in_container: bool = False
    healthy_ttl: float = 10.0
    unhealthy_ttl: float = 2.0
    # Upstream requests a second to one provider origin (--probe-rate); see origin_limits.
    probe_rate: float = DEFAULT_RATE


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: HealthStatus
    message: str
    provider: str
    base_url: str  # credentials redacted: this is shown
    model: str
    model_available: bool
    available_models: tuple[str, ...]
    server_version: str
    latency: float  # seconds
    checked_at: datetime
    cached: bool

    @property
    def healthy(self) -> bool:
        return self.status is HealthStatus.HEALTHY


class ProbeTargetDenied(Exception):
    """The request names a base URL this server is not configured to probe."""


class ProbeRequestInvalid(Exception):
    """A request field this server cannot probe with (INVALID_ARGUMENT)."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


class ProbesBusy(Exception):
    """Too many distinct checks are in flight to start another (RESOURCE_EXHAUSTED)."""


_Key = tuple[str, str, str, str]
_ANSWER_ENTRIES: Final = 1024
_ANSWER_BYTES: Final = 4 * 1024 * 1024


class _Cached:
    """A probe's report while it may be served: until `expiry` (monotonic), or until a newer
    report for the same target replaces it."""

    __slots__ = ("data", "expiry", "replaced", "report", "shown")

    def __init__(self, expiry: float, report: HealthReport) -> None:
        self.expiry = expiry
        self.report = report
        self.shown = replace(report, cached=True)  # what every cache hit answers
        self.data: bytes | None = None  # `shown` as the serialised answer, once asked
        self.replaced = False


class HttpPool:
    """One connection pool for every probe, shared by the health checkers of successive
    snapshots. httpx (~30–100 ms to import, ~30 ms for its TLS context) and the probes load on
    first use — or earlier, off the event loop, with `warm()`, which the server's process runs
    once it is SERVING, so neither its cold start nor its first health check pays for them. The
    origins' limits are shared the same way: a reload does not reset how often a provider was
    asked, nor its 429 pause."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._upstream: Upstream | None = None
        self._making = threading.Lock()  # `warm` builds the client on a thread of its own

    def upstream(self, rate: float) -> Upstream:
        """The bounded reader every probe and listing uses (`rate`: on first use only)."""
        if self._upstream is None:
            from llmconfig_server.health.probes.registry import Upstream

            self._upstream = Upstream(self.client, OriginLimits(rate))
        return self._upstream

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            with self._making:
                if self._client is None:
                    import httpx

                    self._client = httpx.AsyncClient(
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                        follow_redirects=False,
                    )
        return self._client

    def warm(self) -> None:
        """Import httpx and the probes and build the pool (its TLS context included). Blocking:
        for a thread. Building the client touches no event loop (httpcore makes its locks on
        first use), so the loop's first probe finds it ready."""
        from llmconfig_server.health.probes import registry  # noqa: F401  (imports only: the probes' own code is not run)

        _ = self.client
        # httpcore reaches asyncio through anyio, whose backend (~45 ms) loads on the first
        # request otherwise. anyio is httpx's dependency, not ours: loaded by name, and
        # skipped should a later httpx do without it.
        for name in ("anyio._backends._asyncio", "anyio.streams.tls"):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class ProviderHealth:
    def __init__(self, resolver: Resolver, options: HealthOptions,
                 http: HttpPool | None = None,
                 probes: Mapping[str, Probe] | None = None,
                 observer: Callable[[HealthReport, bool], None] | None = None) -> None:
        self.resolver = resolver
        # Told of each upstream probe's report and whether it is one of the server's own
        # targets (metrics keep a series only for those: callers cannot mint label values).
        self.observer = observer
        self.options = options
        # The probes load on the first check, like the pool.
        self.pool = http or HttpPool()
        self._probes = probes
        self.key_targets = _key_targets(resolver)
        self.allowed_targets = frozenset(_configured_base_urls(resolver).union(
            *self.key_targets.values()))
        self._own_targets = _own_targets(resolver)
        self._cache: BoundedCache[_Key, _Cached] = BoundedCache(
            _CACHE_ENTRIES, _CACHE_BYTES, _cached_size)
        # Serialises a report as the RPC's answer (set by state.build: this module has no
        # protobuf); without it no answer bytes are remembered.
        self.encode: Callable[[HealthReport], bytes] | None = None
        self._answers: BoundedCache[bytes, _Cached] = BoundedCache(
            _ANSWER_ENTRIES, _ANSWER_BYTES,
            lambda raw, cached: len(raw) + len(cached.data or b""))
        self._inflight: dict[_Key, asyncio.Task[HealthReport]] = {}
        self._inflight_bytes = 0
        self._slots = asyncio.Semaphore(_MAX_PROBES)
        self._crash_logged_at = -_CRASH_LOG_INTERVAL

    @property
    def probes(self) -> Mapping[str, Probe]:
        if self._probes is None:
            from llmconfig_server.health.probes.registry import PROBES

            self._probes = PROBES
        return self._probes

    @property
    def http(self) -> Upstream:
        return self.pool.upstream(self.options.probe_rate)

    def answer(self, raw: bytes) -> bytes | None:
        """The serialised answer to the request bytes `raw` while the cached verdict it
        showed is current, else None (then ask `check`)."""
        cached = self._answers.get(raw)
        if cached is None:
            return None
        if cached.replaced or cached.expiry <= time.monotonic():
            self._answers.pop(raw)
            return None
        return cached.data

    async def check(self, *, provider: str = "", base_url: str = "", model: str = "",
                    mode: str = "", refresh: bool = False,
                    time_remaining: float | None = None,
                    answer_key: bytes | None = None) -> HealthReport:
        """Check the provider; raises ConfigError or ProbeRequestInvalid for bad input,
        ProbeTargetDenied for a base URL the server may not probe, ProbesBusy at capacity.
        A cached verdict served to request bytes `answer_key` is remembered for `answer`."""
        # When the answer is due is fixed now, on arrival, whatever the work below costs.
        due = None if time_remaining is None else \
            time.monotonic() + time_remaining - max(_MIN_MARGIN, _MARGIN_SHARE * time_remaining)
        if model and (problem := _model_problem(model)):
            # Before resolving: a huge model would otherwise fill the catalog's lookup caches.
            reason, why = problem
            raise ProbeRequestInvalid("model", reason, _model_text(model, why))
        overrides = {k: v for k, v in
                     (("provider", provider), ("model", model), ("base_url", base_url)) if v}
        resolution = self.resolver.resolve(mode, overrides, require_key=False)
        if base_url and not self._may_probe(resolution.base_url):
            # The server's own targets are not listed: they are its business, not the caller's.
            raise ProbeTargetDenied(
                f"base_url {redact_url(resolution.base_url)} is not one this server is "
                "configured to probe; start the server with --allow-any-probe-target to probe "
                "other addresses"
            )
        target = self._target(resolution)
        if (refusal := self._refusal(resolution, target)) is not None:
            return _report(target, refusal, 0.0, datetime.now(UTC))
        key = (target.provider, target.base_url, target.model,
               hashlib.sha256(target.api_key.encode("utf-8", "surrogatepass")).hexdigest())
        if not refresh and (hit := self._cache.get(key)) and hit.expiry > time.monotonic():
            if answer_key is not None and self.encode is not None:
                if hit.data is None:
                    hit.data = self.encode(hit.shown)
                self._answers.put(answer_key, hit)
            return hit.shown
        task = self._inflight.get(key) or self._start(key, target)
        wait = self.options.probe_timeout + _SLACK
        if due is not None:
            wait = min(wait, max(due - time.monotonic(), 0.0))
        # asyncio.wait leaves the task running when we stop waiting: others may share it, and
        # its result is cached for the next caller.
        done, _ = await asyncio.wait((task,), timeout=wait)
        if done:
            return task.result()
        return self._caller_timeout(target, wait)

    def _may_probe(self, base_url: str) -> bool:
        return self.options.allow_any_target or base_url in self.allowed_targets

    def _target(self, resolution: Resolution) -> ProbeTarget:
        keyed = resolution.base_url in self.key_targets[resolution.provider]
        return ProbeTarget(
            provider=resolution.provider, base_url=resolution.base_url,
            model=resolution.model, api_key=resolution.api_key if keyed else "",
            key_hint=resolution.api_key_hint, key_origin=resolution.origin_of("api_key").detail,
            timeout=self.options.probe_timeout, in_container=self.options.in_container,
            display_name=self._name(resolution),
        )

    def _refusal(self, resolution: Resolution, target: ProbeTarget) -> Verdict | None:
        """A verdict given without probing, or an error for the caller; None: go and probe."""
        if problem := _model_problem(resolution.model):
            reason, why = problem
            text = _model_text(resolution.model, why)
            origin = resolution.origin_of("model")
            if origin.source is Source.REQUEST:
                raise ProbeRequestInvalid("model", reason, text)
            return Verdict(HealthStatus.MODEL_NOT_FOUND, f"{text} — fix {origin.detail}")
        spec = self.resolver.catalog.providers[resolution.provider]
        if spec.openai_compatible and spec.needs_key and not resolution.api_key:
            return Verdict(HealthStatus.NOT_CONFIGURED, (
                f"No {spec.display_name} API key is configured — {key_fix(spec.key_env)}"))
        if spec.needs_key and resolution.api_key and not target.api_key:
            where = " or ".join(spec.base_url_envs) or "the server's configuration"
            return Verdict(HealthStatus.NOT_CONFIGURED, (
                f"{spec.display_name} at {redact_url(resolution.base_url)} was not probed: this "
                f"server sends its {spec.display_name} key ({resolution.api_key_hint}) only to "
                f"the base URLs configured for {spec.display_name}, and this is not one — to "
                f"check it with the key, configure it for {spec.display_name} ({where})"))
        return None

    def _start(self, key: _Key, target: ProbeTarget) -> asyncio.Task[HealthReport]:
        size = _key_size(key)
        if (len(self._inflight) >= _INFLIGHT_ENTRIES
                or self._inflight_bytes + size > _INFLIGHT_BYTES):
            raise ProbesBusy(f"this server already has {len(self._inflight)} different provider "
                             "checks in flight; retry shortly")
        task = asyncio.create_task(self._probe(key, target))
        self._inflight[key] = task
        self._inflight_bytes += size
        return task

    async def _probe(self, key: _Key, target: ProbeTarget) -> HealthReport:
        checked_at = datetime.now(UTC)
        started: float | None = None
        try:
            # One budget for waiting for a turn and for the probe: a probe task never outlives
            # its timeout, however many others are ahead of it.
            async with asyncio.timeout(target.timeout), self._slots:
                started = time.perf_counter()
                kind = self.resolver.catalog.providers[target.provider].kind
                verdict = await self.probes[kind](self.http, target)
        except TimeoutError:
            verdict = self._timed_out(target, started is not None)
        except Exception as exc:  # whatever a probe meets, the caller gets a verdict
            verdict = self._crashed(target, exc)
        finally:
            self._inflight.pop(key, None)
            self._inflight_bytes -= _key_size(key)
        latency = 0.0 if started is None else time.perf_counter() - started
        report = _report(target, verdict, latency, checked_at)
        if started is not None:  # a check that never got a turn says nothing about the provider
            self._remember(key, report)
            if self.observer is not None:
                self.observer(report, key[:3] in self._own_targets)
        return report

    def _timed_out(self, target: ProbeTarget, ran: bool) -> Verdict:
        name = self._name(target)
        if ran:
            return Verdict(HealthStatus.TIMEOUT, f"{name} at {target.base_url} did not answer "
                           f"within {target.timeout:g} s")
        return Verdict(HealthStatus.TIMEOUT, (
            f"{name} at {target.base_url} was not checked: {_MAX_PROBES} other probes kept this "
            f"server busy for {target.timeout:g} s — retry shortly"))

    def _crashed(self, target: ProbeTarget, exc: Exception) -> Verdict:
        name = self._name(target)
        now = time.monotonic()
        level = logging.DEBUG
        if now - self._crash_logged_at >= _CRASH_LOG_INTERVAL:  # visible, but never a flood
            self._crash_logged_at, level = now, logging.WARNING
        log.log(level, "the probe of %s at %s failed unexpectedly: %s", target.provider,
                redact_url(target.base_url), _loggable(f"{type(exc).__name__}: {exc}"))
        return Verdict(HealthStatus.BAD_RESPONSE, (
            f"the check of {name} at {target.base_url} failed unexpectedly "
            f"({type(exc).__name__}) — this is a bug in llmconfig; the server log says more"))

    def _remember(self, key: _Key, report: HealthReport) -> None:
        # The entry being replaced (expired or not) holds the previous status, for the log.
        previous = None
        if (hit := self._cache.pop(key)) is not None:
            previous, hit.replaced = hit.report.status, True  # its remembered answers go too
        ttl = self.options.healthy_ttl if report.healthy else self.options.unhealthy_ttl
        now = time.monotonic()
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache.evict(lambda cached: cached.expiry <= now)
        self._cache.put(key, _Cached(now + ttl, report))
        if previous is not report.status:
            own = key[:3] in self._own_targets
            log.log(logging.INFO if own else logging.DEBUG, "%s at %s: %s → %s (%s)",
                    report.provider, _loggable(report.base_url),
                    previous.name if previous else "first check", report.status.name,
                    _loggable(report.message))

    def _name(self, target: ProbeTarget | Resolution) -> str:
        return self.resolver.catalog.providers[target.provider].display_name

    def _caller_timeout(self, target: ProbeTarget, budget: float) -> HealthReport:
        verdict = Verdict(
            HealthStatus.TIMEOUT,
            f"{self._name(target)} at {target.base_url} did not "
            f"answer within {budget:.2f} s (the caller's deadline); the probe goes on and its "
            "result will be cached",
        )
        return _report(target, verdict, budget, datetime.now(UTC))


def _report(target: ProbeTarget, verdict: Verdict, latency: float, checked_at: datetime,
            ) -> HealthReport:
    """What the caller sees: URL credentials hidden, in the base URL and in any message."""
    return HealthReport(
        status=verdict.status, message=redact_text(verdict.message), provider=target.provider,
        base_url=redact_url(target.base_url), model=target.model,
        model_available=verdict.model_available, available_models=verdict.available_models,
        server_version=verdict.server_version, latency=latency, checked_at=checked_at,
        cached=False,
    )


def _model_problem(model: str) -> tuple[str, str] | None:
    """(reason, why) `model` cannot go into a probe, or None; the reasons are the ones parsing
    gives the same values. Probes percent-encode it anyway; this refuses what is no model id
    at all."""
    if len(model) > MODEL_LIMIT:
        return "VALUE_TOO_LONG", f"it is {len(model)} characters long (at most {MODEL_LIMIT})"
    if control_character(model):
        return "CONTROL_CHARACTER", "it contains a control character"
    if model in (".", ".."):
        return "INVALID_MODEL", "a path step is not a model id"
    return None


def _model_text(model: str, problem: str) -> str:
    return f"model {escape_controls(model[:80])!r} cannot be probed: {problem}"


def _loggable(text: str) -> str:
    """For a log line: one line, bounded, credentials hidden."""
    text = escape_controls(redact_text(text))
    return text if len(text) <= _LOG_TEXT_LIMIT else text[:_LOG_TEXT_LIMIT] + "…"


def _key_size(key: _Key) -> int:
    return sum(len(part) for part in key)


def _cached_size(key: _Key, cached: _Cached) -> int:
    report = cached.report
    return (_key_size(key) + len(report.message) + len(report.base_url) + len(report.model)
            + len(report.server_version) + sum(len(m) + 64 for m in report.available_models))


def _configured_base_urls(resolver: Resolver) -> set[str]:
    """Every base URL the server's own configuration names, and each provider's default."""
    sources = resolver.sources
    layers = (sources.flags, sources.env, sources.file_common, *sources.file_modes.values())
    urls = {spec.default_base_url for spec in resolver.catalog.providers.values()}
    for layer in layers:
        values = [layer.generic.get("base_url"),
                  *(own.get("base_url") for own in layer.scoped.values())]
        urls.update(str(v.value) for v in values if v is not None)
    # Resolution strips a trailing /v1 from native roots; accept both spellings.
    return urls | {url.removesuffix("/v1") for url in urls}


def _key_targets(resolver: Resolver) -> dict[str, frozenset[str]]:
    """For each provider, the base URLs its key may be sent to: its default, the base URLs the
    server's configuration scopes to it (ANTHROPIC_BASE_URL, a file's anthropic section, …),
    and whatever the server's cascade resolves for it in each mode (a generic STIGMER_LLM_BASE_URL
    that no other provider claims) — exactly where a runner asking ResolveLLMConfig for that
    provider would be told to send the key."""
    sources = resolver.sources
    layers = (sources.flags, sources.env, sources.file_common, *sources.file_modes.values())
    targets = {}
    for name, spec in resolver.catalog.providers.items():
        urls = {spec.default_base_url}
        for layer in layers:
            if (scoped := layer.scoped.get(name, {}).get("base_url")) is not None:
                urls.add(str(scoped.value))
        for mode in MODES:
            # A mode that cannot resolve the provider at all adds nothing.
            with contextlib.suppress(ConfigError):
                urls.add(resolve_provider(resolver, mode, name).base_url)
        # Resolution strips the native root's suffix (Ollama's and Anthropic's /v1) as here.
        suffix = spec.strip_suffix
        targets[name] = frozenset(
            urls | {url.removesuffix(suffix) for url in urls if suffix and url.endswith(suffix)})
    return targets


def _own_targets(resolver: Resolver) -> frozenset[tuple[str, str, str]]:
    """(provider, base URL, model) of each mode's own configuration: the targets whose status
    changes are worth an INFO line."""
    own = set()
    for mode in MODES:
        try:
            resolution = resolver.resolve(mode, {}, require_key=False)
        except ConfigError:
            continue
        own.add((resolution.provider, resolution.base_url, resolution.model))
    return frozenset(own)
