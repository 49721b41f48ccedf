"""The shadow budget: comparisons spend at most SHADOW_BUDGET of the database time the request path spends.

Measured per query over the last WINDOW_MINUTES of every process's metrics:
what a served call costs (`served_us` ÷ `calls`, every side) and what one
comparison costs (`shadow_us` ÷ `comparisons`: both sides run again on a
worker). Sampling a share p of the calls spends p × comparison ÷ call of the
request path's time, so the budget caps the sampling rate at
SHADOW_BUDGET × call ÷ comparison. A flag asking for more is sampled at the
cap — the dashboard shows both — and asks for its own rate again as soon as
the measurement allows it. A query without comparisons in the window is
sampled at most at SHADOW_BUDGET itself until its first comparisons are
measured: a comparison runs the served side again (and the other side), so it
costs at least a served call, and the cap can only be lower than the budget.

The caps are recomputed at most every REFRESH_SECONDS on a thread of their
own; the request path reads a dict and never waits on the database for them.
"""

import logging
import os
import threading
import time

from rollout.conf import get_setting
from rollout.metrics.rollups import metrics

logger = logging.getLogger(__name__)
WINDOW_MINUTES = 5
REFRESH_SECONDS = 5.0


def caps_from(totals, share):
    """{query: highest sampling rate (0–1) within the budget} from {(query, backend): {counter: n}} totals."""
    spent = {}
    for (query, _), counts in totals.items():
        numbers = spent.setdefault(query, [0, 0, 0, 0])
        numbers[0] += counts.get("served_us", 0)
        numbers[1] += counts.get("calls", 0)
        numbers[2] += counts.get("shadow_us", 0)
        numbers[3] += counts.get("comparisons", 0)
    caps = {}
    for query, (served_us, calls, shadow_us, comparisons) in spent.items():
        if calls and comparisons and shadow_us:
            caps[query] = min(1.0, share * (served_us / calls) / (shadow_us / comparisons))
    return caps


class Budget:
    def __init__(self):
        self._caps = {}
        self._lock = threading.Lock()
        self._refreshed_at = float("-inf")
        self._refreshing = False
        self._pid = None

    def forget(self):
        """Drop every measured cap (the next cap() measures again)."""
        self._caps, self._refreshed_at = {}, float("-inf")

    def cap(self, query):
        """The highest sampling rate the budget allows this query now (0–1), or None: not capped."""
        share = get_setting("SHADOW_BUDGET")
        if not share:
            return None
        if time.monotonic() - self._refreshed_at >= REFRESH_SECONDS or self._pid != os.getpid():
            self._refresh_in_background()
        cap = self._caps.get(query, share)  # not measured yet: a comparison costs at least the call it repeats
        return None if cap >= 1.0 else cap

    def effective_percent(self, query, asked):
        """The share of calls (in %) compared when `asked` % is asked (refresh() first for a fresh measure)."""
        cap = self.cap(query)
        return asked if cap is None else min(asked, cap * 100)

    def _refresh_in_background(self):
        with self._lock:
            if self._refreshing and self._pid == os.getpid():
                return
            self._refreshing, self._pid = True, os.getpid()
            self._refreshed_at = time.monotonic()
        threading.Thread(target=self.refresh, name="rollout-shadow-budget", daemon=True).start()

    def refresh(self):
        try:
            self._caps = caps_from(metrics.totals(WINDOW_MINUTES), get_setting("SHADOW_BUDGET") or 0)
        except Exception as exc:  # noqa: BLE001 — the last caps stay; metrics report their own outage
            logger.debug("could not refresh the shadow budget: %s", exc)
        finally:
            with self._lock:
                self._refreshing = False
                self._refreshed_at = time.monotonic()


budget = Budget()
