"""ResolveLLMConfig's answers, remembered by the exact request bytes.

Each cache belongs to one snapshot of the server's state, whose inputs never change, so equal
requests get equal answers: a runner fleet asking the same question costs one resolution and
one serialisation, then a dictionary lookup per call; a reload brings a new, empty cache.
Errors are never remembered (they are raised before anything is stored), and `include_secrets`
is part of the request bytes, so an answer with a key is only ever served to a request that
asked for it (whose caller is checked for the secrets scope each time). The cache is bounded in
bytes as well as entries: distinct big requests cannot make it hold gigabytes.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from llmconfig_server.support.bounded import BoundedCache

CAPACITY: Final = 1024
MAX_BYTES: Final = 16 * 1024 * 1024


class Answer(NamedTuple):
    data: bytes
    # Set when the answer carries the key: who receives it is checked and audited every time.
    secret: tuple[str, str] | None = None  # (provider, key hint)


class AnswerCache(BoundedCache[bytes, Answer]):
    """Answers by request bytes, at most `capacity` of them and `max_bytes` in all."""

    def __init__(self, capacity: int = CAPACITY, max_bytes: int = MAX_BYTES) -> None:
        super().__init__(capacity, max_bytes,
                         lambda request, answer: len(request) + len(answer.data))


class Event(NamedTuple):
    """A WatchLLMConfig event as sent: computed once per snapshot for every stream that asked
    the same question, so a change reaching thousands of streams costs one resolution and
    one serialisation per distinct request, and the streams share the bytes."""

    data: bytes
    revision: str  # empty for an error event
    secret: tuple[str, str] | None = None  # (provider, key hint) when it carries the key


class EventCache(BoundedCache[bytes, Event]):
    """Events by the watch request's bytes (its known_revision cleared)."""

    def __init__(self, capacity: int = CAPACITY, max_bytes: int = MAX_BYTES) -> None:
        super().__init__(capacity, max_bytes, lambda request, event: len(request) + len(event.data))
