"""One warning when a dependency becomes unreachable and one when it is back — not a traceback per operation."""

import logging
import threading
import time


class Outage:
    def __init__(self, what, logger, meanwhile="carrying on without it"):
        self.what = what
        self.logger = logger
        self.meanwhile = meanwhile
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
        self.logger.warning("%s unreachable (%s: %s); %s", self.what, type(error).__name__, error, self.meanwhile)

    def refused(self):
        """One more operation of the current outage, turned away without trying (nothing logged)."""
        with self._lock:
            self.failures += 1

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


class Burst:
    """Events less than `quiet` seconds apart form one burst: `first()` says whether an event begins one."""

    def __init__(self, quiet=30.0):
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last = None

    def first(self):
        now = time.monotonic()
        with self._lock:
            last, self._last = self._last, now
        return last is None or now - last >= self.quiet


class OncePerBurst(logging.Filter):
    """A logging filter for what is logged once per event with a traceback though it is expected — each
    operation django-redis ignores in a Redis outage, each request Django refuses for its Host header:
    the first of a burst becomes one warning line without the traceback, the rest of the burst is dropped."""

    def __init__(self, what="a dependency", message="%s unreachable (%s); carrying on without it", quiet=30.0):
        super().__init__()
        self.what, self.message = what, message
        self.burst = Burst(quiet)

    def filter(self, record):
        if not self.burst.first():
            return False
        error = record.exc_info[1] if record.exc_info else record.getMessage()
        record.msg, record.args = self.message, (self.what, error)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
