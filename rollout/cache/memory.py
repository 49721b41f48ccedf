"""The in-process tier: a thread-safe LRU bounded in bytes, of {key: Entry}.

The budget (ROLLOUT_CACHE_MEMORY_BYTES) bounds what a worker keeps whatever its traffic; an answer bigger
than ROLLOUT_CACHE_MEMORY_ENTRY_BYTES is not kept in process at all (Redis still shares it), so one huge
answer cannot evict every small one.

An OrderedDict rather than cachetools' LRUCache: a hit is a lookup and a move_to_end, both C code, where
LRUCache runs three Python frames — a third of a hit's cost, read right after a database call.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple


class Entry(NamedTuple):
    generations: Any  # of the tables it reads, read before it was computed
    answer: Any  # read-only (frozen.py)
    nbytes: int
    reads: tuple  # the tables, as the entry that kept it declared them
    generations_of: Callable  # {table: generation} -> the generations of those tables, as above


class MemoryTier:
    def __init__(self, budget, entry_limit):
        self.budget, self.entry_limit = budget, min(entry_limit, budget)
        self.nbytes = 0  # the bytes held now (as measured when each entry was kept)
        self._lock = threading.Lock()
        self._entries = OrderedDict()  # the least recently used first

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key, entry):
        """Keep entry, evicting the least recently used; False (and nothing kept) when it is over the limit."""
        if entry.nbytes > self.entry_limit:
            return False
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self.nbytes -= replaced.nbytes
            self._entries[key] = entry
            self.nbytes += entry.nbytes
            while self.nbytes > self.budget:
                self.nbytes -= self._entries.popitem(last=False)[1].nbytes
        return True

    def clear(self):
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def __len__(self):
        return len(self._entries)
