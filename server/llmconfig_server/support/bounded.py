"""A least-recently-used map bounded in entries *and* bytes.

A bound on entries alone lets a caller who sends big distinct requests hold `entries × size`
bytes (1,024 answers of 1 MiB each is a gigabyte); every cache the server keeps is bounded in
both. Sizes are estimates (`size_of(key, value)`: the bytes of the strings it holds plus a fixed
overhead), which is what matters for a bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

ENTRY_OVERHEAD: Final = 256  # the dict slot, the tuple and the objects' headers, roughly


class BoundedCache(Generic[K, V]):
    def __init__(self, max_entries: int, max_bytes: int,
                 size_of: Callable[[K, V], int]) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def pop(self, key: K) -> V | None:
        item = self._items.pop(key, None)
        if item is None:
            return None
        self.bytes -= item[1]
        return item[0]

    def put(self, key: K, value: V) -> None:
        self.pop(key)
        size = self._size_of(key, value) + ENTRY_OVERHEAD
        # One entry may take at most an eighth of the budget, so a few huge entries cannot
        # flush everything else out; a bigger one is simply not remembered.
        if size > self.max_bytes // 8:
            return
        self._items[key] = (value, size)
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.bytes -= evicted

    def evict(self, stale: Callable[[V], bool]) -> None:
        """Drop every entry for which `stale(value)` holds."""
        for key in [k for k, (v, _) in self._items.items() if stale(v)]:
            self.pop(key)
