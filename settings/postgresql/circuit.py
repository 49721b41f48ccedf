"""A circuit per database alias and process: while the database is unreachable, callers fail at once.

Without it every request of an outage waits DB_POOL_TIMEOUT for a pooled
connection that never comes, and requests queue behind each other; and after
the database is back the pool reconnects on its own back-off (1 s, 2 s, 4 s …).
The circuit opens only when a direct connection attempt fails (a pool timeout
alone may be every connection busy). While it is open, one caller at a time,
at most every PROBE_SECONDS, tries a direct connection; the others get
`DatabaseUnreachable` at once. The first probe that connects closes it.
"""

import logging
import threading
import time

import psycopg

from rollout.outage import Outage

logger = logging.getLogger("settings.postgresql")
# How often an open circuit lets a caller try the database: the first answer after the database is back
# comes within this (plus a connection), and an outage costs the database at most this many attempts a second.
PROBE_SECONDS = 0.2


class DatabaseUnreachable(psycopg.OperationalError):
    """The circuit is open: the database did not accept a connection just now. No SQLSTATE, like any lost
    connection, so the project's error translation makes it `DatabaseUnavailable` (a JSON 503)."""


class Circuit:
    def __init__(self, alias):
        self.outage = Outage(f"the database {alias!r}", logger, "refusing callers at once until it is back")
        self._lock = threading.Lock()
        self._next_probe = 0.0

    @property
    def open(self):
        return self.outage.down

    def probe_turn(self):
        """True for the one caller whose turn it is to try the database; the others fail at once."""
        with self._lock:
            now = time.monotonic()
            if now < self._next_probe:
                return False
            self._next_probe = now + PROBE_SECONDS
            return True

    def failed(self, error):
        with self._lock:
            self._next_probe = time.monotonic() + PROBE_SECONDS
        self.outage.failed(error)

    def closed(self):
        self.outage.succeeded()

    def refusal(self):
        self.outage.refused()
        return DatabaseUnreachable("the database is unreachable; not waiting for it (try again shortly)")


_circuits = {}
_circuits_lock = threading.Lock()


def circuit_for(alias):
    with _circuits_lock:
        return _circuits.setdefault(alias, Circuit(alias))
