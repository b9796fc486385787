"""When to reload: on SIGHUP, when a file the state was built from changes, and every
`--reload-interval` seconds as a backstop for missed events.

Files are watched by directory (with watchfiles, inotify underneath), so Kubernetes' atomic
swap of a mounted ConfigMap or Secret — a new `..data` symlink, not a write to the file — is
seen as well as an editor's rewrite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from llmconfig_server.live.state import ServerState

log = logging.getLogger("llmconfig_server")

# watchfiles waits this long for a burst of events to end (Kubernetes' swap is several).
DEBOUNCE_MS = 100
RETRY_SECONDS = 5.0


class Reloader:
    def __init__(self, state: ServerState, interval: float) -> None:
        self.state = state
        self.interval = interval
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, *, signals: bool = True) -> None:
        if signals:
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: self.state.reload("SIGHUP"))
        self._tasks.append(asyncio.create_task(self._watch_files()))
        if self.interval > 0:
            self._tasks.append(asyncio.create_task(self._every_interval()))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every_interval(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
            if not self._stop.is_set():
                self.state.reload("periodic check")

    async def _watch_files(self) -> None:
        from watchfiles import awatch

        while not self._stop.is_set():
            folders = self._folders()
            if not folders:  # nothing to watch until a reload names a file
                version = self.state.version
                await self._until_stop_or(self.state.changed(version))
                continue
            try:
                async for _changes in awatch(*folders, stop_event=self._stop, recursive=False,
                                             debounce=DEBOUNCE_MS, step=20):
                    self.state.reload("file change")
                    if self._folders() != folders:
                        break  # the state now reads other files: watch their folders
            except Exception as exc:  # a folder removed under us, an inotify limit, …
                log.warning("watching %s failed (%s); the periodic check goes on, watching "
                            "again in %g s", ", ".join(folders), exc, RETRY_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), RETRY_SECONDS)

    def _folders(self) -> list[str]:
        return sorted({str(path.parent) for path in self.state.good.files
                       if path.parent.is_dir()})

    async def _until_stop_or(self, other: Coroutine[Any, Any, Any]) -> None:
        waiters = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(other)]
        _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
