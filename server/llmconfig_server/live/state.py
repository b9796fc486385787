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
  watch streams on every swap, a batch at a time, so thousands of them do not hold the event
  loop away from other callers.

The tokens file is the exception to "keep the last good": revocation must not fail open, so
the tokens read now apply even when the rest of an update is broken, and a tokens file that
cannot be used refuses every token (access.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmconfig_server.access import guard as access_policy
from llmconfig_server.access.tokens import TokenTable
from llmconfig_server.health.checker import HealthReport, HttpPool, ProviderHealth
from llmconfig_server.health.model_lists import ModelLists
from llmconfig_server.live.answers import AnswerCache, EventCache
from llmconfig_server.resolve import runner_fields
from llmconfig_server.resolve.catalog import Catalog, shipped
from llmconfig_server.resolve.domain import ConfigError
from llmconfig_server.rpc.convert import health_answer_of
from llmconfig_server.sources.layers import environment_variables, read_server_sources
from llmconfig_server.sources.resolver import PROCESS_REVISION_KEY, Resolver
from llmconfig_server.support.redact import redact_text

if TYPE_CHECKING:
    from llmconfig_server.flags import Options

log = logging.getLogger("llmconfig_server")
# After a swap, watch streams are woken this many at a time, and the next ones only when
# these have sent their event (or ended): woken at once, 5,000 streams held other callers
# for 300 ms (gRPC reports their sent messages to the event loop in one callback). Measured
# at 5,000 streams (bench/attack.py): 64 → bystanders' p99 21–43 ms, 16 → 10 ms (idle 6 ms).
WAKE_BATCH = 16
WAKE_PATIENCE = 0.05  # seconds to wait for a batch before waking the next one anyway


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
    """The inputs cannot make a server state; `problems` are one line each, never a secret.
    `tokens`: the tokens file as read all the same (None: no tokens file, or not read)."""

    def __init__(self, problems: list[str], tokens: TokenTable | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.tokens = tokens


@dataclass(eq=False)
class Runtime:
    """What lives as long as the server, not as long as one snapshot: one HTTP pool (its
    connections, the origins' rates and 429 pauses), what the providers listed, the revision
    key the first build chose, and where probe outcomes go (the metrics, when served). Every
    snapshot of a ServerState is built with the same one (`ServerState.runtime`)."""

    http: HttpPool = field(default_factory=HttpPool)
    lists: ModelLists = field(default_factory=ModelLists)
    revision_key: bytes | None = None
    observer: Callable[[HealthReport, bool], None] | None = None

    def observe(self, report: HealthReport, own_target: bool) -> None:
        if self.observer is not None:
            self.observer(report, own_target)


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    resolver: Resolver
    health: ProviderHealth
    answers: AnswerCache
    access: access_policy.Access
    fingerprint: str  # equal fingerprints: nothing a caller could observe differs
    files: tuple[Path, ...]  # the files this snapshot was built from, to watch
    # What lives as long as the server; `runtime.lists` is what the providers list.
    runtime: Runtime = field(default_factory=Runtime)
    # Problems with newer inputs while this (last good) state is served; added to answers.
    warnings: tuple[str, ...] = ()
    # WatchLLMConfig's events on this snapshot, shared by the streams that asked the same.
    events: EventCache = field(default_factory=EventCache)

    def degraded(self, warnings: tuple[str, ...], tokens: TokenTable | None = None,
                 ) -> Snapshot:
        """The same state, served with `warnings` (fresh caches: answers change) and the
        tokens of the moment (given: they replace the state's own)."""
        access = self.access if tokens is None else replace(self.access, tokens=tokens)
        return replace(self, answers=AnswerCache(), events=EventCache(), warnings=warnings,
                       access=access)


def build(inputs: Inputs, runtime: Runtime | None = None) -> Snapshot:
    """The complete server state for `inputs`, or BuildError listing every problem: an
    unusable catalog file, an invalid configuration of the server's own mode, an unusable TLS
    file, or a listener the exposure policy forbids. `runtime`: the server's (a new one for a
    first build); its revision key is the one the first build chose (see derive_revision_key),
    so editing tokens does not change revisions."""
    options = inputs.options
    runtime = runtime or Runtime()
    lists = runtime.lists
    problems: list[str] = []
    access: access_policy.Access | None = None
    tokens = None
    try:
        access = access_policy.load(options.access, options.listeners)
        tokens = access.tokens
    except access_policy.AccessProblem as exc:
        problems.append(str(exc))
        tokens = exc.tokens
    try:
        catalog = load_catalog(inputs, lists)
    except BuildError as exc:  # reported; the rest is still read (the tokens apply anyway)
        problems += exc.problems
        catalog = shipped()
    sources = read_server_sources(options.flags, inputs.environ, inputs.cwd, inputs.home,
                                  catalog)
    resolver = Resolver(sources, runtime.revision_key or derive_revision_key(tokens))
    base = resolver.base()
    # An input of the server's own mode that cannot be used (a bad variable, a config file
    # that cannot be read) always stops it; so does a mode that cannot be known. An input of
    # the other mode only makes that mode answer FAILED_PRECONDITION.
    unparsed = sources.llm_problems(resolver.default_mode)
    problems += [v.message for v in sources.mode_problems]
    if isinstance(base, ConfigError) and (unparsed or inputs.require_valid_mode):
        problems += [v.message for v in base.violations]
    if problems or access is None:
        raise BuildError(list(dict.fromkeys(problems)), tokens)
    runtime.revision_key = resolver.revision_key  # the first build's, kept by every reload
    health = ProviderHealth(resolver, options.health, runtime.http, observer=runtime.observe)
    health.encode = health_answer_of
    return Snapshot(
        resolver=resolver,
        health=health,
        answers=AnswerCache(),
        access=access,
        fingerprint=_fingerprint(resolver, access),
        files=_files(inputs, resolver),
        runtime=runtime,
    )


def load_catalog(inputs: Inputs, lists: ModelLists) -> Catalog:
    """The shipped catalog, the operator's file over it, and what the providers list, as of
    today; BuildError naming each problem of the operator's file (`file:line: …`)."""
    from llmconfig_server.resolve import catalog_file
    from llmconfig_server.resolve.catalog import shipped_entries, today

    path = catalog_file.locate(inputs.options.catalog, inputs.environ, inputs.cwd)
    try:
        operator = catalog_file.load(path, inputs.home) if path is not None else None
        catalog = catalog_file.assemble(shipped_entries(), operator, today())
    except catalog_file.CatalogProblem as exc:
        raise BuildError(exc.problems) from None
    return catalog.with_listed(lists.listed())


def derive_revision_key(tokens: TokenTable | None) -> bytes:
    """The key secrets enter revisions with (cascade.revision_of), chosen at start. Replicas
    share their tokens file, and only the operator holds every digest in it, so with tokens
    the key is derived from their digests: equal configurations give equal revisions on every
    replica started with the same file, and a caller cannot recompute one to test a guess of
    a key. Without tokens (one machine) it is this process's own random key."""
    if tokens is None or not tokens.tokens:
        return PROCESS_REVISION_KEY
    digest = hashlib.sha256(b"llmconfig revision key v1\0")
    for token_digest in sorted(token.digest for token in tokens.tokens):
        digest.update(token_digest)
    return digest.digest()


def _fingerprint(resolver: Resolver, access: access_policy.Access) -> str:
    """A digest of everything the snapshot was made of (sources, tokens, TLS material), so a
    reload whose files did not change leaves the running state — and its caches — alone."""
    digest = hashlib.sha256(repr(resolver.sources).encode())
    digest.update(repr(access.tokens).encode())
    digest.update(repr(access.tls).encode())
    return digest.hexdigest()


def _files(inputs: Inputs, resolver: Resolver) -> tuple[Path, ...]:
    """What to watch: both config files (llmconfig's own and Stigmer's, present or not, so one
    created later is seen), the operator's catalog, every `*_FILE` secret (its provider's own
    variables too, for a provider the catalog declares), the tokens and TLS files."""
    named = list(resolver.sources.watched)
    from llmconfig_server.resolve.catalog_file import locate

    if (catalog := locate(inputs.options.catalog, inputs.environ, inputs.cwd)) is not None:
        named.append(catalog)
    secret_variables = [v for v in (*environment_variables(resolver.catalog),
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
    _listeners: list[Any] = field(default_factory=list)
    # Streams (their tasks) waiting for the next swap, those a swap has yet to wake, and
    # those woken that have not come back to wait again.
    _waiting: dict[asyncio.Future[None], asyncio.Task[Any] | None] = field(
        default_factory=dict)
    _to_wake: collections.deque[tuple[asyncio.Future[None], asyncio.Task[Any] | None]] = \
        field(default_factory=collections.deque)
    _in_flight: set[asyncio.Task[Any] | None] = field(default_factory=set)
    _back: asyncio.Event | None = None
    _waker: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._good = self.current

    @property
    def runtime(self) -> Runtime:
        """The server's runtime: the first snapshot's, shared by every later one."""
        return self.current.runtime

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
            fresh = build(self.inputs, self.runtime)
        except BuildError as exc:
            message = redact_text("; ".join(exc.problems))  # it goes into logs and answers
            new_problem = self.problem is None or self.problem.message != message
            if new_problem:
                self.problem = _Problem(message, datetime.now(UTC))
                log.error("reload (%s) failed; still serving the last good configuration: %s",
                          reason, message)
            # The tokens apply all the same: a revoked token must not live on because another
            # file (or the tokens file itself) is broken.
            tokens = exc.tokens if exc.tokens is not None else self.current.access.tokens
            if new_problem or tokens != self.current.access.tokens:
                self._swap(self.good.degraded((self._warning(),), tokens))
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
        _note_tokens(self.current.access.tokens, snapshot.access.tokens)
        self.current = snapshot
        self.version += 1
        self._notify()

    def close(self) -> None:
        """Shutdown: wake every watch stream so it ends (with UNAVAILABLE)."""
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        """Wake the waiting streams WAKE_BATCH at a time (see there)."""
        if not self._waiting:
            return
        self._to_wake.extend(self._waiting.items())
        self._waiting.clear()
        if self._waker is None or self._waker.done():
            loop = self._to_wake[0][0].get_loop()
            self._waker = loop.create_task(self._wake_in_batches())

    async def _wake_in_batches(self) -> None:
        while self._to_wake:
            woken = 0
            while self._to_wake and woken < WAKE_BATCH:
                waiter, task = self._to_wake.popleft()
                if not waiter.done():  # a stream that ended meanwhile is cancelled
                    waiter.set_result(None)
                    self._in_flight.add(task)
                    woken += 1
            if self._in_flight:
                self._back = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._back.wait(), WAKE_PATIENCE)
            self._in_flight.clear()  # the stragglers no longer hold the others back
            await asyncio.sleep(0)  # and the callers queued meanwhile go first

    async def changed(self, version: int) -> int:
        """Wait until the state is newer than `version` (or closed); the current version.
        A watch stream calls it again once it has sent what the last change gave it."""
        task = asyncio.current_task()
        self.done_waiting(task)
        while self.version == version and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[waiter] = task
            try:
                await waiter
            finally:
                self._waiting.pop(waiter, None)  # an ended stream leaves nothing behind
        return self.version

    def done_waiting(self, task: asyncio.Task[Any] | None = None) -> None:
        """The stream (its task; default: the current one) is back from a wake, or ended."""
        task = task or asyncio.current_task()
        if task in self._in_flight:
            self._in_flight.discard(task)
            if not self._in_flight and self._back is not None:
                self._back.set()


def _note_tokens(before: TokenTable | None, after: TokenTable | None) -> None:
    """Say once when the tokens file stops (or starts again) accepting tokens."""
    was = before.problem if before is not None else None
    now = after.problem if after is not None else None
    if now is not None and now != was:
        log.error("%s", now)
    elif was is not None and now is None and after is not None:
        log.info("tokens file %s accepts tokens again (%d entries)", after.source,
                 len(after.tokens))
