"""One server state: an immutable snapshot of everything derived from the server's inputs
(flags, environment, and the files they name), built by one function, read once per call, and
swapped whole on reload.

- `Inputs` are fixed for the life of the process (flags and environment); the files they name
  (llmconfig's and Stigmer's config files, `*_FILE` secrets, the tokens file, the TLS files)
  are read again by every `build`.
- `build` makes a complete `Snapshot` off to the side or raises `BuildError` listing every
  problem: the resolver and each mode's base resolution, the health checker with its caches,
  the answer cache, the tokens, the TLS material. Nothing derived from an old snapshot
  survives into a new one.
- `ServerState` holds the current snapshot, swaps it, keeps the last good one when an update
  is broken (answers then carry a warning naming the problem and since when), and wakes the
  watch streams on every swap.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import access as access_policy
from . import runner_fields
from .answers import AnswerCache
from .domain import ConfigError
from .health import HealthReport, HttpPool, ProviderHealth
from .redact import redact_text
from .resolver import Resolver
from .servicer import LLMConfigServicer
from .sources import environment_variables, read_server_sources

if TYPE_CHECKING:
    from .flags import Options

log = logging.getLogger("llmconfig_server")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the server was started with. Flags and environment are fixed for the life of the
    process; the files they name are read again on every build."""

    options: Options
    environ: Mapping[str, str]
    cwd: Path
    home: Path
    # llmconfig-server refuses an invalid configuration of its own mode (at start: exit 2; on
    # reload: keep the last good state). Tests of how callers see such a configuration turn
    # it off, and the server answers FAILED_PRECONDITION instead.
    require_valid_mode: bool = True

    @classmethod
    def of_process(cls, options: Options) -> Inputs:
        return cls(options, dict(os.environ), Path.cwd(), Path.home())


class BuildError(Exception):
    """The inputs cannot make a server state; `problems` are one line each, never a secret."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    resolver: Resolver
    health: ProviderHealth
    servicer: LLMConfigServicer
    answers: AnswerCache
    access: access_policy.Access
    fingerprint: str  # equal fingerprints: nothing a caller could observe differs
    files: tuple[Path, ...]  # the files this snapshot was built from, to watch
    # Problems with newer inputs while this (last good) state is served; added to answers.
    warnings: tuple[str, ...] = ()

    def degraded(self, warnings: tuple[str, ...]) -> Snapshot:
        """The same state, served with `warnings` (a fresh answer cache: answers change)."""
        return replace(self, answers=AnswerCache(), warnings=warnings)


def build(inputs: Inputs, http: HttpPool | None = None,
          observer: Callable[[HealthReport, bool], None] | None = None) -> Snapshot:
    """The complete server state for `inputs`, or BuildError listing every problem: an
    invalid configuration of the server's own mode, an unusable tokens or TLS file, or a
    listener the exposure policy forbids."""
    options = inputs.options
    problems: list[str] = []
    sources = read_server_sources(options.flags, inputs.environ, inputs.cwd, inputs.home)
    resolver = Resolver(sources)
    base = resolver.base()
    # An input of the server's own mode that cannot be used (a bad variable, a config file
    # that cannot be read) always stops it; so does a mode that cannot be known. An input of
    # the other mode only makes that mode answer FAILED_PRECONDITION.
    unparsed = sources.llm_problems(resolver.default_mode)
    problems += [v.message for v in sources.mode_problems]
    if isinstance(base, ConfigError) and (unparsed or inputs.require_valid_mode):
        problems += [v.message for v in base.violations]
    try:
        access = access_policy.load(options.access, options.listeners)
    except access_policy.AccessProblem as exc:
        problems.append(str(exc))
    if problems:
        raise BuildError(list(dict.fromkeys(problems)))
    health = ProviderHealth(resolver, options.health, http, observer=observer)
    return Snapshot(
        resolver=resolver,
        health=health,
        servicer=LLMConfigServicer(resolver, health),
        answers=AnswerCache(),
        access=access,
        fingerprint=_fingerprint(resolver, access),
        files=_files(inputs, resolver),
    )


def _fingerprint(resolver: Resolver, access: access_policy.Access) -> str:
    """A digest of everything the snapshot was made of (sources, tokens, TLS material), so a
    reload whose files did not change leaves the running state — and its caches — alone."""
    digest = hashlib.sha256(repr(resolver.sources).encode())
    digest.update(repr(access.tokens).encode())
    digest.update(repr(access.tls).encode())
    return digest.hexdigest()


def _files(inputs: Inputs, resolver: Resolver) -> tuple[Path, ...]:
    """What to watch: both config files (llmconfig's own and Stigmer's, present or not, so one
    created later is seen), every `*_FILE` secret, the tokens and TLS files."""
    named = list(resolver.sources.watched)
    secret_variables = [v for v in (*environment_variables(),
                                    *runner_fields.environment_variables())
                        if v.endswith("_FILE")]
    named += [Path(inputs.environ[v]) for v in secret_variables if inputs.environ.get(v)]
    access = inputs.options.access
    named += [Path(p) for p in (access.tokens_file, *(
        (access.tls.cert, access.tls.key, access.tls.client_ca) if access.tls else ())) if p]
    return tuple(dict.fromkeys(p if p.is_absolute() else inputs.cwd / p for p in named))


@dataclass(slots=True)
class _Problem:
    message: str
    since: datetime


@dataclass(slots=True, eq=False)
class ServerState:
    """The current snapshot and its replacement. `version` counts swaps; `changed(version)`
    waits for the next one (each watch stream waits on it)."""

    inputs: Inputs
    current: Snapshot
    version: int = 0
    closed: bool = False
    problem: _Problem | None = None
    _good: Snapshot | None = None
    _wake: asyncio.Event | None = None
    _listeners: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._good = self.current

    @property
    def good(self) -> Snapshot:
        assert self._good is not None
        return self._good

    def on_swap(self, listener: Any) -> None:
        """Call `listener(result)` after each reload ("applied", "unchanged" or "failed")."""
        self._listeners.append(listener)

    def reload(self, reason: str) -> str:
        """Build a new snapshot from the inputs and swap it in if anything changed; keep the
        last good one when the new inputs are broken. Returns "applied", "unchanged" or
        "failed"."""
        result = self._reload(reason)
        for listener in self._listeners:
            listener(result)
        return result

    def _reload(self, reason: str) -> str:
        try:
            fresh = build(self.inputs, self.good.health.pool, self.good.health.observer)
        except BuildError as exc:
            message = redact_text("; ".join(exc.problems))  # it goes into logs and answers
            if self.problem is None or self.problem.message != message:
                self.problem = _Problem(message, datetime.now(UTC))
                log.error("reload (%s) failed; still serving the last good configuration: %s",
                          reason, message)
                self._swap(self.good.degraded((self._warning(),)))
            return "failed"
        if fresh.fingerprint == self.good.fingerprint and self.problem is None:
            return "unchanged"
        recovered = self.problem is not None
        self.problem = None
        if fresh.fingerprint == self.good.fingerprint:
            fresh = self.good.degraded(())  # the broken file was put back as it was
        self._good = fresh
        self._swap(fresh)
        log.info("reload (%s) applied%s", reason,
                 " (the broken update is fixed)" if recovered else "")
        return "applied"

    def _warning(self) -> str:
        assert self.problem is not None
        since = self.problem.since.isoformat(timespec="seconds").replace("+00:00", "Z")
        return (f"the server's configuration could not be reloaded (since {since}): "
                f"{self.problem.message}; serving the last good configuration")

    def _swap(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        self.version += 1
        self._notify()

    def close(self) -> None:
        """Shutdown: wake every watch stream so it ends (with UNAVAILABLE)."""
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    async def changed(self, version: int) -> int:
        """Wait until the state is newer than `version` (or closed); the current version."""
        while self.version == version and not self.closed:
            if self._wake is None:
                self._wake = asyncio.Event()
            await self._wake.wait()
        return self.version
