"""What the providers list themselves, learned without spending a token: Anthropic's and
OpenAI's `GET /v1/models`, Ollama's `/api/tags`, an OpenAI-compatible server's `GET {base}/models`.

- `ModelLists` is the process's memory of the last good list per (provider, base URL); it
  outlives server states (each new state merges it into its catalog) and is bounded: at most
  `MAX_TARGETS` lists of at most `probes.listing.MAX_MODELS` ids each. A failed refresh keeps
  the last good list (or, before any, the shipped data) and remembers why.
- `Refresher` lists the server's own targets in the background, every
  `--models-refresh-interval` seconds and when a caller asks (`ListModels` with `refresh`), at
  most once per `MIN_INTERVAL` per target; a key goes only to a base URL resolved for its
  provider (the health checker's `key_targets`). A list that changed rebuilds the server state,
  so resolutions see it.
- `rows` is what `ListModels` answers: the catalog's models and the listed ones, with status,
  limits, retirement and availability at the base URL the mode resolves.

Lists never reach a log in full: a refresh logs counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from llmconfig_server.resolve.catalog import Catalog, Listed, ModelFacts
from llmconfig_server.resolve.domain import ConfigError, ProbeTarget, Resolution

if TYPE_CHECKING:
    from llmconfig_server.live.state import ServerState
    from llmconfig_server.sources.resolver import Resolver

log = logging.getLogger(__name__)

MAX_TARGETS: Final = 64  # (provider, base URL) lists kept; a server has a handful
MIN_INTERVAL: Final = 10.0  # seconds between two listings of one target, whoever asks
DEFAULT_INTERVAL: Final = 3600.0
LISTING_BUDGET_PROBES: Final = 5  # a whole listing may take this many probe timeouts


@dataclass(frozen=True, slots=True)
class ListTarget:
    provider: str
    kind: str
    base_url: str
    probe: ProbeTarget  # carries the key only when the base URL is one of its provider's


@dataclass(frozen=True, slots=True)
class Listing:
    """One provider's list at one base URL, as last fetched."""

    provider: str
    base_url: str
    models: tuple[Listed, ...]
    fetched_at: datetime
    refused: int = 0  # entries dropped: no usable id (too long, control characters, not text)
    truncated: bool = False  # more than MAX_MODELS were offered
    cloud: frozenset[str] = frozenset()  # Ollama: tags that run on ollama.com

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(m.id for m in self.models)


@dataclass(slots=True)
class _Memory:
    listing: Listing | None = None
    error: str = ""
    attempted: float = -MIN_INTERVAL  # monotonic time of the last attempt


class ModelLists:
    """The last good list of each target, for the life of the process."""

    def __init__(self) -> None:
        self._memory: dict[tuple[str, str], _Memory] = {}

    def get(self, provider: str, base_url: str) -> Listing | None:
        memory = self._memory.get((provider, base_url))
        return memory.listing if memory else None

    def error(self, provider: str, base_url: str) -> str:
        memory = self._memory.get((provider, base_url))
        return memory.error if memory else ""

    def listed(self) -> dict[str, tuple[Listed, ...]]:
        """Every listed model, by provider (a model listed at two base URLs once)."""
        merged: dict[str, dict[str, Listed]] = {}
        for (provider, _), memory in sorted(self._memory.items()):
            if memory.listing is not None:
                own = merged.setdefault(provider, {})
                for model in memory.listing.models:
                    own.setdefault(model.id, model)
        return {provider: tuple(models.values()) for provider, models in merged.items()}

    def digest(self) -> str:
        text = repr(sorted((key, m.listing.models) for key, m in self._memory.items()
                           if m.listing is not None))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def due(self, target: ListTarget, now: float) -> bool:
        memory = self._memory.get((target.provider, target.base_url))
        return memory is None or now - memory.attempted >= MIN_INTERVAL

    def attempt(self, target: ListTarget, now: float) -> bool:
        """Claim a listing of `target` now; False when one ran less than MIN_INTERVAL ago or
        the memory is full of other targets."""
        key = (target.provider, target.base_url)
        memory = self._memory.get(key)
        if memory is None:
            if len(self._memory) >= MAX_TARGETS:
                return False
            memory = self._memory[key] = _Memory()
        if now - memory.attempted < MIN_INTERVAL:
            return False
        memory.attempted = now
        return True

    def record(self, listing: Listing) -> bool:
        """Keep `listing`; whether what is listed changed."""
        memory = self._memory.setdefault((listing.provider, listing.base_url), _Memory())
        changed = memory.listing is None or memory.listing.models != listing.models \
            or memory.listing.cloud != listing.cloud
        memory.listing, memory.error = listing, ""
        return changed

    def failed(self, target: ListTarget, message: str) -> None:
        memory = self._memory.setdefault((target.provider, target.base_url), _Memory())
        memory.error = message


def targets(resolver: Resolver, key_targets: Mapping[str, frozenset[str]], timeout: float,
            providers: Iterable[str] | None = None) -> list[ListTarget]:
    """The (provider, base URL) pairs the server's own configuration resolves, each mode, with
    the key only where the health checker would send it."""
    catalog = resolver.catalog
    found: dict[tuple[str, str], ListTarget] = {}
    for name in providers or configured(resolver):
        spec = catalog.providers[name]
        for mode in sorted({resolver.default_mode, *_modes()}):
            with contextlib.suppress(ConfigError):
                resolution = resolve_provider(resolver, mode, name)
                if (name, resolution.base_url) in found:
                    continue
                keyed = resolution.base_url in key_targets.get(name, frozenset())
                found[(name, resolution.base_url)] = ListTarget(name, spec.kind,
                                                                resolution.base_url, ProbeTarget(
                    provider=name, base_url=resolution.base_url, model=resolution.model,
                    api_key=resolution.api_key if keyed else "",
                    key_hint=resolution.api_key_hint,
                    key_origin=resolution.origin_of("api_key").detail, timeout=timeout))
    return list(found.values())


def resolve_provider(resolver: Resolver, mode: str, name: str) -> Resolution:
    """`name` as the server resolves it in `mode` (without a key); a provider without a default
    model (an OpenAI-compatible server) gets a placeholder, since only its base URL and key
    matter to a listing. Raises ConfigError."""
    overrides = {"provider": name}
    if not resolver.catalog.providers[name].default_model:
        overrides["model"] = "listing"
    return resolver.resolve(mode, overrides, require_key=False)


def configured(resolver: Resolver) -> list[str]:
    """The providers the server's own configuration uses: each mode's, and any given a key or
    a base URL of its own (the background refresh lists these; a caller may ask for others)."""
    names = set()
    for mode in _modes():
        outcome = resolver.base(mode)
        if not isinstance(outcome, ConfigError):
            names.add(outcome.provider)
    sources = resolver.sources
    for layer in (sources.flags, sources.env, sources.file_common, *sources.file_modes.values()):
        names.update(provider for provider, own in layer.scoped.items() if own)
        if (named := layer.generic.get("provider")) is not None:
            names.add(str(named.value))
    return sorted(name for name in names if name in resolver.catalog.providers)


def _modes() -> tuple[str, ...]:
    from llmconfig_server.resolve.catalog import MODES

    return MODES


class Refresher:
    """Lists the server's targets in the background and on request; a change rebuilds the
    state. One refresh of a target at a time."""

    def __init__(self, state: ServerState, interval: float) -> None:
        self.state = state
        self.interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[tuple[str, str], asyncio.Task[bool]] = {}

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._every_interval())

    async def stop(self) -> None:
        self._stop.set()
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _every_interval(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a refresh never stops the loop
                await self.refresh(reason="periodic model list refresh")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def refresh(self, providers: Iterable[str] | None = None,
                      budget: float | None = None, reason: str = "model list refresh") -> None:
        """List the targets of `providers` (default: all) that are due, within `budget`
        seconds; rebuild the state if a list changed."""
        snapshot = self.state.current
        health = snapshot.health
        found = targets(snapshot.resolver, health.key_targets, health.options.probe_timeout,
                        providers)
        now = time.monotonic()
        tasks = []
        for target in found:
            key = (target.provider, target.base_url)
            task = self._running.get(key)
            if task is None and snapshot.runtime.lists.attempt(target, now):
                task = asyncio.create_task(self._list(target))
                self._running[key] = task
                task.add_done_callback(self._forget(key))
            if task is not None:
                tasks.append(task)
        if not tasks:
            return
        # Each listing is bounded by the probe timeout per request; the caller's budget wins.
        done, _ = await asyncio.wait(tasks, timeout=budget)
        if any(t.result() for t in done if not t.cancelled() and t.exception() is None):
            self.state.reload(reason)

    def _forget(self, key: tuple[str, str]) -> Callable[[asyncio.Task[bool]], None]:
        def forget(_: asyncio.Task[bool]) -> None:
            self._running.pop(key, None)

        return forget

    async def _list(self, target: ListTarget) -> bool:
        from llmconfig_server.health.probes.listing import ListingFailed, list_models

        lists = self.state.runtime.lists
        budget = target.probe.timeout * LISTING_BUDGET_PROBES
        try:
            # Each request has the probe's timeout; the whole list (pages) a few of them.
            async with asyncio.timeout(budget):
                listing = await list_models(self.state.current.health.http, target)
        except TimeoutError:
            lists.failed(target, f"the list did not arrive within {budget:g} s")
            return False
        except ListingFailed as exc:
            lists.failed(target, exc.message)
            log.debug("listing the models of %s at %s failed: %s", target.provider,
                      _loggable(target.base_url), exc.message)
            return False
        changed = lists.record(listing)
        if changed:
            log.info("%s at %s lists %d models%s%s", target.provider,
                     _loggable(target.base_url), len(listing.models),
                     f" ({listing.refused} unusable entries ignored)" if listing.refused else "",
                     " (truncated)" if listing.truncated else "")
        return changed


def _loggable(url: str) -> str:
    from llmconfig_server.support.redact import redact_url

    return redact_url(url)


# -- what ListModels answers ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    facts: ModelFacts
    status: str
    available: bool
    known_from: str  # catalog | provider | both
    replacement: str = ""


@dataclass(frozen=True, slots=True)
class ProviderRows:
    provider: str
    base_url: str
    rows: tuple[Row, ...]
    warnings: tuple[str, ...] = field(default=())


def rows(catalog: Catalog, listing: Listing | None, provider: str, base_url: str,
         error: str = "") -> ProviderRows:
    """The provider's models: the catalog's (with the list's facts merged in) and the listed
    ones it did not know, sorted by id."""
    listed_ids = listing.ids if listing else frozenset()
    result = []
    for (owner, model_id), facts in sorted(catalog.models.items()):
        if owner != provider:
            continue
        in_list = model_id in listed_ids or any(alias in listed_ids for alias in facts.aliases)
        known_from = "both" if facts.in_catalog and (facts.listed or in_list) else \
            "catalog" if facts.in_catalog else "provider"
        successor = catalog.successor(facts).model if facts.replacement else None
        result.append(Row(facts, catalog.status_of(facts), in_list, known_from,
                          successor or facts.replacement or ""))
    warnings = []
    spec = catalog.providers[provider]
    if error:
        when = f" (last good list from {listing.fetched_at:%Y-%m-%d %H:%M} UTC)" if listing \
            else ""
        warnings.append(f"{spec.display_name} at {base_url} could not be listed: {error}{when}")
    if listing is not None and listing.truncated:
        warnings.append(f"{spec.display_name} at {base_url} lists more models than this server "
                        f"keeps; {len(listing.models)} are shown")
    return ProviderRows(provider, base_url, tuple(result), tuple(warnings))


def utc_now() -> datetime:
    return datetime.now(UTC)
