"""CheckProviderHealth without gRPC: which target to probe, whether we may, and probing it at
most once at a time and at most once per cache period, within the caller's budget.

- The target is the resolved configuration for the mode, with the request's provider, model
  and base URL as overrides (a missing key is resolved as "no key": NOT_CONFIGURED).
- A base URL the server's own configuration does not name is refused unless the server was
  started with --allow-any-probe-target: otherwise this service could reach any host.
- Concurrent identical checks share one upstream probe (single flight); results are cached,
  healthy ones longer than unhealthy ones; `refresh` skips the cache (but still joins a probe
  already in flight, which is as fresh as a new one).
- A probe never outlives its timeout, and a caller never waits past its own deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from .catalog import PROVIDERS
from .domain import HealthStatus, ProbeTarget, Resolution, Verdict
from .resolver import Resolver

if TYPE_CHECKING:
    import httpx

    from .probes import Probe

log = logging.getLogger(__name__)

_ANSWER_MARGIN: Final = 0.1  # time to send our answer before the caller's deadline
_SLACK: Final = 0.05  # the probe caps itself at its timeout; let its own TIMEOUT verdict win
_CACHE_LIMIT: Final = 1024


@dataclass(frozen=True, slots=True)
class HealthOptions:
    probe_timeout: float = 2.0
    allow_any_target: bool = False
    in_container: bool = False
    healthy_ttl: float = 10.0
    unhealthy_ttl: float = 2.0


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: HealthStatus
    message: str
    provider: str
    base_url: str
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


_Key = tuple[str, str, str, str]


class HttpPool:
    """One connection pool for every probe, shared by the health checkers of successive
    snapshots; httpx (~30 ms to import, ~30 ms for its TLS context) loads on first use, so a
    server never asked about health never pays for it."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class ProviderHealth:
    def __init__(self, resolver: Resolver, options: HealthOptions,
                 http: HttpPool | None = None,
                 probes: Mapping[str, Probe] | None = None) -> None:
        self.resolver = resolver
        self.options = options
        # The probes load on the first check, like the pool.
        self.pool = http or HttpPool()
        self._probes = probes
        self.allowed_targets = frozenset(_configured_base_urls(resolver))
        self._cache: dict[_Key, tuple[float, HealthReport]] = {}
        self._inflight: dict[_Key, asyncio.Task[HealthReport]] = {}

    @property
    def probes(self) -> Mapping[str, Probe]:
        if self._probes is None:
            from .probes import PROBES

            self._probes = PROBES
        return self._probes

    @property
    def http(self) -> httpx.AsyncClient:
        return self.pool.client

    async def check(self, *, provider: str = "", base_url: str = "", model: str = "",
                    mode: str = "", refresh: bool = False,
                    time_remaining: float | None = None) -> HealthReport:
        """Check the provider; raises ConfigError for bad input, ProbeTargetDenied for a base URL
        the server may not probe."""
        overrides = {k: v for k, v in
                     (("provider", provider), ("model", model), ("base_url", base_url)) if v}
        resolution = self.resolver.resolve(mode, overrides, require_key=False)
        if base_url and not self._may_probe(resolution.base_url):
            raise ProbeTargetDenied(
                f"base_url {resolution.base_url} is not one this server is configured for "
                f"(configured: {', '.join(sorted(self.allowed_targets))}); start the server "
                "with --allow-any-probe-target to probe other addresses"
            )
        key = (resolution.provider, resolution.base_url, resolution.model,
               hashlib.sha256(resolution.api_key.encode()).hexdigest())
        now = time.monotonic()
        if not refresh and (hit := self._cache.get(key)) and hit[0] > now:
            return replace(hit[1], cached=True)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._probe(key, self._target(resolution)))
            self._inflight[key] = task
        wait = self.options.probe_timeout + _SLACK
        if time_remaining is not None:
            wait = min(wait, max(time_remaining - _ANSWER_MARGIN, 0.0))
        try:
            # shield: a caller that gives up must not cancel the probe others are waiting for.
            return await asyncio.wait_for(asyncio.shield(task), timeout=wait)
        except TimeoutError:
            return self._caller_timeout(resolution, wait)

    def _may_probe(self, base_url: str) -> bool:
        return self.options.allow_any_target or base_url in self.allowed_targets

    def _target(self, resolution: Resolution) -> ProbeTarget:
        key_origin = resolution.origin_of("api_key").detail
        return ProbeTarget(
            provider=resolution.provider, base_url=resolution.base_url,
            model=resolution.model, api_key=resolution.api_key,
            key_hint=resolution.api_key_hint, key_origin=key_origin,
            timeout=self.options.probe_timeout, in_container=self.options.in_container,
        )

    async def _probe(self, key: _Key, target: ProbeTarget) -> HealthReport:
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                verdict = await self.probes[target.provider](self.http, target)
        except TimeoutError:
            verdict = Verdict(
                HealthStatus.TIMEOUT,
                f"{PROVIDERS[target.provider].display_name} at {target.base_url} did not answer "
                f"within {target.timeout:g} s",
            )
        finally:
            self._inflight.pop(key, None)
        report = _report(target, verdict, time.perf_counter() - started, checked_at)
        self._remember(key, report)
        return report

    def _remember(self, key: _Key, report: HealthReport) -> None:
        # The entry being replaced (expired or not) holds the previous status, for the log.
        previous = hit[1].status if (hit := self._cache.pop(key, None)) else None
        ttl = self.options.healthy_ttl if report.healthy else self.options.unhealthy_ttl
        if len(self._cache) >= _CACHE_LIMIT:
            now = time.monotonic()
            for stale in [k for k, (expiry, _) in self._cache.items() if expiry <= now]:
                del self._cache[stale]
            while len(self._cache) >= _CACHE_LIMIT:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (time.monotonic() + ttl, report)
        if previous is not report.status:
            log.info("%s at %s: %s → %s (%s)", report.provider, report.base_url,
                     previous.name if previous else "first check", report.status.name,
                     report.message)

    def _caller_timeout(self, resolution: Resolution, budget: float) -> HealthReport:
        verdict = Verdict(
            HealthStatus.TIMEOUT,
            f"{PROVIDERS[resolution.provider].display_name} at {resolution.base_url} did not "
            f"answer within {budget:.2f} s (the caller's deadline); the probe goes on and its "
            "result will be cached",
        )
        return _report(self._target(resolution), verdict, budget, datetime.now(UTC))


def _report(target: ProbeTarget, verdict: Verdict, latency: float, checked_at: datetime,
            ) -> HealthReport:
    return HealthReport(
        status=verdict.status, message=verdict.message, provider=target.provider,
        base_url=target.base_url, model=target.model,
        model_available=verdict.model_available, available_models=verdict.available_models,
        server_version=verdict.server_version, latency=latency, checked_at=checked_at,
        cached=False,
    )


def _configured_base_urls(resolver: Resolver) -> set[str]:
    """Every base URL the server's own configuration names, and each provider's default."""
    sources = resolver.sources
    layers = (sources.flags, sources.env, sources.file_common, *sources.file_modes.values())
    urls = {spec.default_base_url for spec in PROVIDERS.values()}
    for layer in layers:
        values = [layer.generic.get("base_url"),
                  *(own.get("base_url") for own in layer.scoped.values())]
        urls.update(str(v.value) for v in values if v is not None)
    # Resolution strips a trailing /v1 from native roots; accept both spellings.
    return urls | {url.removesuffix("/v1") for url in urls}
