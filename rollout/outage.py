"""One warning when a dependency becomes unreachable and one when it is back — not a traceback per operation."""

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
