"""The server's resolver: server-side sources are read once; each call adds only its request.

The configuration without overrides is resolved once per mode at startup, so the common call
(a runner asking "what do I use?") does no cascade work at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Final

from llmconfig_server.resolve import cascade, runner
from llmconfig_server.resolve.catalog import MODES
from llmconfig_server.resolve.domain import ConfigError, Origin, Resolution, Source, Value
from llmconfig_server.resolve.runner import RunnerResolution
from llmconfig_server.sources.layers import ServerSources, request_layer, request_mode

_Outcome = Resolution | ConfigError
# The key revisions are keyed with when the server has no shared secret to derive one from
# (see state.revision_key): this process's own, so its revisions differ from other processes'
# only where a secret enters them.
PROCESS_REVISION_KEY: Final = secrets.token_bytes(32)


class Resolver:
    def __init__(self, sources: ServerSources,
                 revision_key: bytes = PROCESS_REVISION_KEY) -> None:
        self.sources = sources
        self.catalog = sources.catalog
        self.revision_key = revision_key
        # Keyed by (mode, whether the request named it): the mode's origin differs.
        self._base: dict[tuple[str, bool], _Outcome] = {
            (mode, True): self._attempt(_requested(mode)) for mode in MODES
        }
        self._base[(self.default_mode, False)] = self._attempt(sources.mode)

    @property
    def default_mode(self) -> str:
        return str(self.sources.mode.value)

    def base(self, mode: str | None = None) -> _Outcome:
        """A mode's configuration without overrides (default: the server's mode), or why there
        is none."""
        return self._base[(mode, True) if mode else (self.default_mode, False)]

    def resolve(self, mode: str = "", overrides: Mapping[str, Any] | None = None, *,
                require_key: bool = True) -> Resolution:
        """Resolve for `mode` (empty: the server's) with the request's overrides on top."""
        mode = request_mode(mode) if mode else ""
        if not overrides and require_key:
            outcome = self.base(mode)
            if isinstance(outcome, ConfigError):
                raise outcome
            return outcome
        mode_value = _requested(mode) if mode else self.sources.mode
        layers = self.sources.layers_for(mode_value.value)
        if overrides:
            layers = (request_layer(overrides, self.catalog), *layers)
        return cascade.resolve(mode_value, layers, require_key=require_key,
                               revision_key=self.revision_key, catalog=self.catalog)

    def mode_of(self, mode: str = "") -> Value:
        """The mode a request naming `mode` (empty: none) is resolved in, with its origin."""
        return _requested(request_mode(mode)) if mode else self.sources.mode

    def resolve_runner(self, mode: str, session_id: str, net: str, container_host: str,
                       ) -> RunnerResolution:
        """The runner's settings for a request naming `mode` (empty: the server's)."""
        mode_value = self.mode_of(mode)
        origin = Origin("mode", mode_value.source, mode_value.detail)
        return runner.resolve(self.sources.layers_for(mode_value.value), mode_value.value,
                              origin, session_id, net, container_host,
                              revision_key=self.revision_key)

    def _attempt(self, mode: Value) -> _Outcome:
        try:
            return cascade.resolve(mode, self.sources.layers_for(mode.value),
                                   revision_key=self.revision_key, catalog=self.catalog)
        except ConfigError as exc:
            return exc


def _requested(mode: str) -> Value:
    return Value(mode, Source.REQUEST, "request mode", "mode")
