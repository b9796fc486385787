"""The watched client's memory: the answers to the few request shapes a client asks, each kept
current by one WatchLLMConfig stream — the way xDS clients keep Envoy's configuration — so a
repeated `resolve()` is a dictionary lookup instead of a round trip.

The rules, in the order a call meets them:
- A shape is remembered once its stream has confirmed an answer (the stream's first event).
  Until then calls go to the unary RPC, as without watching. A resumed stream of an LLM shape
  sends the revision it holds as `known_revision` once the server has shown it says, in the
  stream's `llmconfig-revision` header, which revision a stream starts from: an unchanged
  answer is then confirmed by that header alone, with no event. (From a server without the
  header, every resumed stream starts with the full answer, the only sign it is open.)
- While the stream is open, calls answer from memory; an error event (the configuration turned
  invalid) makes them raise the error the unary call would, until the next good event.
- While it is down (a restart, a broken connection), calls answer from memory marked `stale`
  for at most `max_staleness` seconds after the answer was last known current, then go back to
  the unary RPC, which raises as usual if it fails. The stream resumes on its own. (A stream
  ends the moment its server stops or its connection is reset; a connection that dies without
  a word — a host gone, a partition — is noticed by keepalive pings, within ~35 s.)
- A stream that ends with an answer about the request (UNAUTHENTICATED, PERMISSION_DENIED: a
  token removed or descoped) drops its shape at once: never served again.
- At most `max_watched` shapes, least recently used out first (its stream closes).

ResolveRunnerConfig has no stream of its own: a runner shape follows the stream of its LLM part
(same mode, overrides, secrets and network) and asks ResolveRunnerConfig again on each of its
events — and every `max_staleness / 2` seconds, since a change to the runner's own settings
(Temporal, backend, sandbox, Redis) sends no LLM event. Its answer is as old as that refresh.

Everything here runs on one event loop: the AsyncClient's own, or for a blocking Client a
loop on a daemon thread of its own (`LoopThread`). Calls read an entry's state from any thread:
it is one immutable object, replaced whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, replace
from typing import Any, Final

import grpc

from ._channel import ANSWERS
from ._convert import resolved_from_proto, runner_from_proto
from ._errors import LLMConfigError, from_rpc_error, from_status
from ._models import Resolved, RunnerResolved
from ._resume import aevents
from .v1 import llmconfig_pb2 as pb

WATCH_ENV: Final = "STIGMER_LLMCONFIG_WATCH"
DEFAULT_MAX_STALENESS: Final = 30.0  # seconds
DEFAULT_MAX_WATCHED: Final = 8  # request shapes (each holds one stream)
# The channel a client's streams use. A connection of its own: gRPC otherwise shares one
# connection among a process's channels to a target, and the server takes at most 100 streams
# per connection (--max-concurrent-streams) — a few watched clients in one process would fill
# it, and their calls would wait behind their streams. A connection that died without a word
# (a host gone, a partition) is found by pings: every 25 s while a stream is open, within what
# the server permits (one per 20 s), so a dead stream is known within ~35 s instead of never.
WATCH_CHANNEL_OPTIONS: Final = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.keepalive_time_ms", 25_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
)
MAX_WATCHED_LIMIT: Final = 64  # streams on one connection, leaving room for calls beside them
RETRY_REFRESH: Final = 1.0  # seconds before a runner refresh that failed is tried again
CLOSE_GUARD: Final = 5.0  # seconds a closing step may take before the thread ends regardless
_REVOKED: Final = frozenset({grpc.StatusCode.UNAUTHENTICATED,
                             grpc.StatusCode.PERMISSION_DENIED})

def watch_from_env(watch: bool | None) -> bool:
    """The argument, else STIGMER_LLMCONFIG_WATCH (`1`, `true` or `yes`)."""
    if watch is not None:
        return watch
    return os.environ.get(WATCH_ENV, "").strip().lower() in ("1", "true", "yes")


def stale(answer: Any) -> Any:
    """`answer` as served while its stream is down."""
    if isinstance(answer, RunnerResolved):
        return replace(answer, stale=True, llm=replace(answer.llm, stale=True))
    if isinstance(answer, Resolved):
        return replace(answer, stale=True)
    return answer


@dataclass(frozen=True, slots=True)
class _State:
    """What a call gets from an entry. Replaced whole, so any thread reads it consistently."""

    live: bool  # its stream is open and has confirmed this answer
    since: float | None  # monotonic time the answer was last known current; None: never
    answer: Any = None  # what a call returns (marked stale unless live)
    error: Callable[[], LLMConfigError] | None = None  # or the error it raises instead


_NOTHING: Final = _State(live=False, since=None)


class _Entry:
    """One request shape: its stream's request, the runner request refreshed on its events
    (runner shapes only), and what the stream and refreshes have said so far."""

    __slots__ = ("answer", "confirmed", "dropped", "error", "key", "refresh_ok", "refreshing",
                 "resumable", "runner", "state", "stream_up", "tasks", "watch")

    def __init__(self, key: Hashable, watch: pb.WatchLLMConfigRequest,
                 runner: pb.ResolveRunnerConfigRequest | None) -> None:
        self.key, self.watch, self.runner = key, watch, runner
        self.state = _NOTHING
        self.dropped = False
        self.tasks: list[asyncio.Task[None]] = []
        self.stream_up = False
        # The server says which revision a stream starts from: resume with the one held.
        self.resumable = False
        self.refresh_ok = runner is None  # an LLM shape's answer comes with its event
        self.refreshing: asyncio.Lock | None = None
        self.confirmed: float | None = None
        self.answer: Any = None
        self.error: Callable[[], LLMConfigError] | None = None

    def settle(self) -> None:
        """Publish what the stream and the refreshes have said as the state calls read."""
        if self.dropped:
            self.state = _NOTHING
            return
        live = self.stream_up and self.refresh_ok
        answer = self.answer if live else stale(self.answer)
        self.state = _State(live, self.confirmed, answer, self.error)


class Watched:
    """The memory of one client. `connect()` is called once, on the first shape followed, and
    gives the loop the streams run on and an asyncio stub on it."""

    def __init__(self, connect: Callable[[], tuple[asyncio.AbstractEventLoop, Any]],
                 metadata: Any, timeout: float, max_staleness: float, max_watched: int) -> None:
        if not max_staleness > 0:
            raise ValueError(f"max_staleness must be a positive number of seconds, not "
                             f"{max_staleness!r}")
        if not 1 <= max_watched <= MAX_WATCHED_LIMIT:
            raise ValueError(f"max_watched must be 1 to {MAX_WATCHED_LIMIT} (streams on one "
                             f"connection, beside the calls), not {max_watched!r}")
        self.max_staleness = max_staleness
        self.max_watched = max_watched
        self._connect: Callable[[], tuple[asyncio.AbstractEventLoop, Any]] | None = connect
        self._metadata = metadata
        self._timeout = timeout
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()  # adding and removing shapes; a hit needs none
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stub: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._supported = True  # False once a server says it has no WatchLLMConfig

    # -- any thread ---------------------------------------------------------------------

    def remembered(self, key: Hashable) -> Any:
        """The answer for `key` from memory (marked stale while its stream is down), or None
        when a call must ask the server; raises the typed error of an error event."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        state = entry.state
        if not state.live and (state.since is None
                               or time.monotonic() - state.since > self.max_staleness):
            return None
        if state.answer is None and state.error is None:
            return None
        # One C call, atomic under the GIL: a hit takes no lock. (Gone meanwhile: no matter.)
        with contextlib.suppress(KeyError):
            self._entries.move_to_end(key)
        if state.error is not None:
            raise state.error()
        return state.answer

    def follow(self, key: Hashable, watch: pb.WatchLLMConfigRequest,
               runner: pb.ResolveRunnerConfigRequest | None = None) -> None:
        """Keep `key`'s answer from now on (a no-op when it is followed already): one stream of
        `watch`, and for a runner shape `runner` asked again on each of its events."""
        if self._closed or not self._supported:
            return
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            entry = _Entry(key, watch, runner)
            self._entries[key] = entry
            evicted = []
            while len(self._entries) > self.max_watched:
                evicted.append(self._entries.popitem(last=False)[1])
            for old in evicted:
                old.dropped = True
                old.settle()
            if self._loop is None:
                assert self._connect is not None
                self._loop, self._stub = self._connect()
                self._connect = None  # no reference back to the client: it can be collected
            loop = self._loop
        loop.call_soon_threadsafe(self._start, entry, evicted)

    # -- the loop -----------------------------------------------------------------------

    def _start(self, entry: _Entry, evicted: list[_Entry]) -> None:
        for old in evicted:
            _cancel(old.tasks)
        if entry.dropped or self._closed:
            return
        entry.refreshing = asyncio.Lock()
        self._spawn(entry, self._follow(entry))
        if entry.runner is not None:
            self._spawn(entry, self._refresh_periodically(entry))

    def _spawn(self, entry: _Entry, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        entry.tasks.append(task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, entry: _Entry) -> None:
        stream = aevents(self._stub, self._metadata, entry.watch, remember_revision=False,
                         on_open=lambda revision: self._stream_open(entry, revision),
                         on_end=lambda: self._stream_down(entry))
        try:
            async with contextlib.aclosing(stream):
                async for event in stream:
                    entry.stream_up = True
                    if entry.runner is None:
                        self._llm_event(entry, event)
                        continue
                    entry.refresh_ok = False  # known outdated until asked again
                    entry.settle()
                    await self._refresh(entry)
                    if entry.dropped:
                        return
        except LLMConfigError as exc:  # an answer about the request: never served again
            if exc.code is grpc.StatusCode.UNIMPLEMENTED:
                self._supported = False  # a server without WatchLLMConfig: ask it each time
            self._drop(entry)

    def _llm_event(self, entry: _Entry, event: pb.WatchLLMConfigEvent) -> None:
        if event.HasField("config"):
            entry.answer, entry.error = resolved_from_proto(event.config), None
        else:
            status = event.error
            entry.answer, entry.error = None, lambda: from_status(status)
        if entry.resumable:  # the next stream starts from this answer's revision ("": none)
            entry.watch.known_revision = event.config.revision if event.HasField("config") \
                else ""
        entry.settle()

    def _stream_open(self, entry: _Entry, revision: str | None) -> None:
        """A stream of `entry` opened, starting from `revision` (its header). The one held
        still current: the stream sends no event, and this is the confirmation."""
        if revision is None or entry.runner is not None:
            return  # a runner shape refreshes on its stream's first event, as before
        entry.resumable = True
        if revision and revision == entry.watch.known_revision:
            entry.stream_up = True
            entry.settle()

    def _stream_down(self, entry: _Entry) -> None:
        if entry.runner is None and entry.stream_up:
            entry.confirmed = time.monotonic()  # current until this moment
        entry.stream_up = False
        if entry.runner is not None:
            entry.refresh_ok = False  # confirmed again only by a refresh after the gap
        entry.settle()

    async def _refresh_periodically(self, entry: _Entry) -> None:
        while True:
            await asyncio.sleep(self.max_staleness / 2 if entry.refresh_ok else RETRY_REFRESH)
            if entry.stream_up:
                await self._refresh(entry)

    async def _refresh(self, entry: _Entry) -> None:
        """Ask ResolveRunnerConfig for a runner shape's answer now."""
        assert entry.refreshing is not None and entry.runner is not None
        async with entry.refreshing:
            if entry.dropped:
                return
            asked = time.monotonic()
            try:
                response = await self._stub.ResolveRunnerConfig(
                    entry.runner, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                code = exc.code()
                if code in _REVOKED:
                    self._drop(entry)
                    return
                if code in ANSWERS:  # the error a unary call raises now
                    failure = exc
                    entry.answer, entry.error = None, lambda: from_rpc_error(failure)
                    entry.confirmed, entry.refresh_ok = asked, True
                else:  # the service could not be asked: the last answer ages
                    entry.refresh_ok = False
            else:
                entry.answer, entry.error = runner_from_proto(response), None
                entry.confirmed, entry.refresh_ok = asked, True
            entry.settle()

    def _drop(self, entry: _Entry) -> None:
        entry.dropped = True
        entry.settle()
        with self._lock:
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
        _cancel(entry.tasks)

    def shut(self) -> None:
        """Follow no new shape (any thread); `aclose()` then ends the streams."""
        self._closed = True

    async def aclose(self) -> None:
        """Close every stream (on the loop)."""
        self._closed = True
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.dropped = True
            entry.settle()
        tasks = list(self._tasks)
        _cancel(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def started(self) -> bool:
        return self._loop is not None


def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    current = asyncio.current_task()
    for task in tasks:
        if task is not current:
            task.cancel()


class LoopThread:
    """An event loop on a daemon thread of its own: where a blocking Client's streams live."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="llmconfig-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)  # grpc.aio looks it up outside coroutines too
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self, *last: Callable[[], Awaitable[Any]]) -> None:
        """Await each of `last` on the loop (each within CLOSE_GUARD seconds), then end the
        thread. Called on the loop's own thread (a garbage collection that ran there), it
        cannot wait for itself: the loop finishes on its own."""
        async def finish() -> None:
            for step in last:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(step(), CLOSE_GUARD)
            self.loop.stop()

        if threading.current_thread() is self._thread:
            self.loop.create_task(finish())
            return
        asyncio.run_coroutine_threadsafe(finish(), self.loop)
        self._thread.join()
        self.loop.close()
