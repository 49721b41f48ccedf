"""One warning when a dependency becomes unreachable and one when it is back — not a traceback per operation."""

import logging
import threading
import time


class Outage:
    def __init__(self, what, logger):
        self.what = what
        self.logger = logger
        self._lock = threading.Lock()
        self._since = None
        self.failures = 0  # operations that failed during the current outage

    @property
    def down(self):
        return self._since is not None

    def failed(self, error):
        with self._lock:
            self.failures += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        self.logger.warning("%s unreachable (%s: %s); carrying on without it", self.what, type(error).__name__, error)

    def succeeded(self):
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            lasted, failures = time.monotonic() - self._since, self.failures
            self._since, self.failures = None, 0
        self.logger.warning(
            "%s reachable again after %.1f s (%d operations failed meanwhile)", self.what, lasted, failures
        )


class OncePerBurst(logging.Filter):
    """A logging filter for libraries that log every failed operation with a traceback (django-redis does):
    the first failure of a burst becomes one warning line, the rest of the burst is dropped. A burst ends
    after `quiet` seconds without failures."""

    def __init__(self, what="a dependency", quiet=30.0):
        super().__init__()
        self.what, self.quiet = what, quiet
        self._last = None

    def filter(self, record):
        now = time.monotonic()
        last, self._last = self._last, now
        if last is not None and now - last < self.quiet:
            return False
        error = record.exc_info[1] if record.exc_info else record.getMessage()
        record.msg, record.args = "%s unreachable (%s); carrying on without it", (self.what, error)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
