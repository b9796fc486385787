"""How many watch streams the server holds at once (`--max-watch-streams`): WatchLLMConfig and
grpc.health.v1 Watch together. Each open stream costs about 23 KiB in gRPC alone (measured on a
bare grpc.aio server), so the bound is a bound on memory.

Streams opened without a token over TCP — grpc.health.v1 Watch (open to all), and
WatchLLMConfig on a server without a tokens file — may take at most a fifth of the budget: what
a caller nobody can name is able to make the server hold stays within a few tens of MB (1,000
streams by default), and never crowds out the callers who hold tokens.
"""

from __future__ import annotations

from typing import Final

import grpc

from llmconfig_server.rpc.errors import exhausted_status

DEFAULT_MAX_WATCH_STREAMS: Final = 5000
ANONYMOUS_SHARE: Final = 5  # anonymous streams: at most 1/5 of the budget


class WatchBudget:
    def __init__(self, limit: int = DEFAULT_MAX_WATCH_STREAMS) -> None:
        self.limit = limit
        self.anonymous_limit = max(1, limit // ANONYMOUS_SHARE)
        self.open = 0
        self.anonymous = 0

    def acquire(self, anonymous: bool) -> grpc.Status | None:
        """Count a new stream in (None), or say why not (RESOURCE_EXHAUSTED). Every stream
        counted in is released once, when it ends."""
        if self.open >= self.limit:
            return exhausted_status(
                f"the server holds its maximum of {self.limit} watch streams "
                "(--max-watch-streams); retry later, or share one stream per process (the "
                "llmconfig client's watch=True does)", "WATCH_STREAMS_EXHAUSTED",
                {"limit": str(self.limit)})
        if anonymous and self.anonymous >= self.anonymous_limit:
            return exhausted_status(
                f"the server holds its maximum of {self.anonymous_limit} watch streams opened "
                f"without a token over TCP (a fifth of --max-watch-streams {self.limit}); "
                "retry later, or connect with a token or through the server's Unix socket",
                "ANONYMOUS_WATCH_STREAMS_EXHAUSTED", {"limit": str(self.anonymous_limit)})
        self.open += 1
        self.anonymous += anonymous
        return None

    def release(self, anonymous: bool) -> None:
        self.open -= 1
        self.anonymous -= anonymous


def is_anonymous(peer: str, has_token: bool) -> bool:
    """A caller without a token over TCP (a Unix socket's callers passed its file mode)."""
    return not has_token and not peer.startswith("unix:")
