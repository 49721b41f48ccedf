"""The guard: sends a flag back to the control for everyone when its candidate misbehaves. Never turns anything on.

Each comparison (and each fallback) adds one entry to a rolling window per flag,
kept in the metrics store (Redis when configured). Once the window holds
guard_min_sample entries, the guard trips when the discrepancy rate, the
candidate error rate or the candidate/control median latency ratio reaches its threshold.
"""

import logging
import statistics

from django.db import transaction
from django.utils import timezone

from rollout.conf import get_setting
from rollout.experiments import query_name
from rollout.metrics import metrics

logger = logging.getLogger(__name__)


def _window_key(flag):
    return f"guard:{flag}"


def observe(flag_name, discrepancy, candidate_error, control, candidate):
    from rollout.models import QueryFlag

    flag = QueryFlag.objects.filter(name=flag_name).first()
    if flag is None or flag.guard_tripped_at is not None:
        return None
    entry = f"{int(discrepancy)}|{int(candidate_error)}|{control.duration:.6f}|{candidate.duration:.6f}"
    window = metrics.push_window(_window_key(flag_name), entry, flag.guard_window)
    return evaluate(flag, window)


def measure(window):
    entries = [tuple(map(float, e.split("|"))) for e in window]
    n = len(entries)
    control_median = statistics.median(e[2] for e in entries) if n else 0
    candidate_median = statistics.median(e[3] for e in entries) if n else 0
    return {
        "sample": n,
        "discrepancy_rate": sum(e[0] for e in entries) / n if n else 0.0,
        "error_rate": sum(e[1] for e in entries) / n if n else 0.0,
        "latency_ratio": candidate_median / control_median if control_median else 0.0,
    }


def evaluate(flag, window):
    """Trip the flag if a threshold is reached; returns the reason, or None."""
    numbers = measure(window)
    if numbers["sample"] < flag.guard_min_sample:
        return None
    reason = None
    if numbers["discrepancy_rate"] >= flag.guard_max_discrepancy_rate:
        reason = "discrepancy rate"
    elif numbers["error_rate"] >= flag.guard_max_error_rate:
        reason = "candidate error rate"
    elif flag.guard_max_latency_ratio and numbers["latency_ratio"] >= flag.guard_max_latency_ratio:
        reason = "latency ratio"
    if reason and trip(
        flag,
        f"{reason} over the last {numbers['sample']} comparisons: "
        + ", ".join(f"{k}={v:.4g}" for k, v in numbers.items()),
    ):
        return reason
    return None


def trip(flag, reason):
    """Send the flag back to the control for everyone; once, however many workers see the threshold."""
    from rollout.history import changed_by
    from rollout.models import QueryFlag

    with transaction.atomic(), changed_by(None, "guard", reason):
        flag = QueryFlag.objects.select_for_update().get(pk=flag.pk)
        if flag.guard_tripped_at is not None:
            return False
        flag.everyone = False
        flag.guard_tripped_at = timezone.now()
        flag.guard_reason = reason
        flag.save()
    logger.error("guard tripped for %s: %s", flag.name, reason)
    metrics.increment(query_name(flag.name), get_setting("CANDIDATE_BACKEND"), "guard_trips")
    return True


def clear(flag, user=None, source="cli"):
    """Forget the trip and the window. The flag stays killed until an operator turns it back on."""
    from rollout.history import changed_by

    with transaction.atomic(), changed_by(user, source, "guard cleared"):
        flag.guard_tripped_at = None
        flag.guard_reason = ""
        flag.save()
    metrics.clear_window(_window_key(flag.name))
