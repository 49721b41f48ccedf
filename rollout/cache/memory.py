"""The in-process tier: a thread-safe LRU bounded in bytes, of {key: Entry}.

The budget (ROLLOUT_CACHE_MEMORY_BYTES) bounds what a worker keeps whatever its traffic; an answer bigger
than ROLLOUT_CACHE_MEMORY_ENTRY_BYTES is not kept in process at all (Redis still shares it), so one huge
answer cannot evict every small one.
"""

import threading
from typing import Any, NamedTuple

from cachetools import LRUCache


class Entry(NamedTuple):
    generations: tuple  # of the tables it reads, read before it was computed
    answer: Any  # read-only (frozen.py)
    nbytes: int


class MemoryTier:
    def __init__(self, budget, entry_limit):
        self.budget, self.entry_limit = budget, min(entry_limit, budget)
        self._lock = threading.Lock()
        self._entries = LRUCache(maxsize=budget, getsizeof=_nbytes)

    def get(self, key):
        with self._lock:
            try:
                return self._entries[key]  # one lookup (Cache.get looks twice)
            except KeyError:
                return None

    def put(self, key, entry):
        """Keep entry, evicting the least recently used; False (and nothing kept) when it is over the limit."""
        if entry.nbytes > self.entry_limit:
            return False
        with self._lock:
            self._entries[key] = entry
        return True

    def clear(self):
        with self._lock:
            self._entries.clear()

    @property
    def nbytes(self):
        """The bytes held now (as measured when each entry was kept)."""
        return self._entries.currsize

    def __len__(self):
        return len(self._entries)


def _nbytes(entry):
    return entry.nbytes
