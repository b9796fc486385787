"""ResolveLLMConfig's answers, remembered by the exact request bytes.

Each cache belongs to one snapshot of the server's state, whose inputs never change, so equal
requests get equal answers: a runner fleet asking the same question costs one resolution and
one serialisation, then a dictionary lookup per call; a reload brings a new, empty cache.
Errors are never remembered (they are raised before anything is stored), and `include_secrets`
is part of the request bytes, so an answer with a key is only ever served to a request that
asked for it (whose caller is checked for the secrets scope each time).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

CAPACITY = 1024


class Answer(NamedTuple):
    data: bytes
    # Set when the answer carries the key: who receives it is checked and audited every time.
    secret: tuple[str, str] | None = None  # (provider, key hint)


class AnswerCache:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[bytes, Answer] = OrderedDict()

    def get(self, request: bytes) -> Answer | None:
        answer = self._answers.get(request)
        if answer is not None:
            self._answers.move_to_end(request)
        return answer

    def put(self, request: bytes, answer: Answer) -> None:
        self._answers[request] = answer
        if len(self._answers) > self.capacity:
            self._answers.popitem(last=False)
