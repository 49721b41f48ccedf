"""The guard: sends a flag back to the control for everyone when its candidate misbehaves. Never turns anything on.

It judges only the candidate. Each judged result (a comparison that matched or
was ignored, a value mismatch, the candidate raising while the control answered)
adds one GuardSample to its flag's window in PostgreSQL — shared by every
process and blind to a Redis outage. A failing control, a stale cache, noise and
infrastructure failures never enter it. Once the window holds guard_min_sample
samples, the guard trips when the discrepancy rate, the candidate error rate or
the candidate/control median latency ratio reaches its threshold.
"""

import logging

from django.db import connection
from django.utils import timezone

from rollout.metrics.rollups import metrics
from rollout.models import GuardSample, QueryFlag

logger = logging.getLogger(__name__)
PRUNE_EVERY = 50  # samples beyond the window are deleted every this many inserts

_MEASURE = f"""
SELECT count(*), coalesce(avg(discrepancy::int), 0), coalesce(avg(candidate_error::int), 0),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY control_duration),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY candidate_duration)
FROM (SELECT * FROM {GuardSample._meta.db_table} WHERE flag = %s ORDER BY id DESC LIMIT %s) AS recent
"""
_PRUNE = f"""
DELETE FROM {GuardSample._meta.db_table} WHERE flag = %s AND id < (
    SELECT min(id) FROM (SELECT id FROM {GuardSample._meta.db_table} WHERE flag = %s ORDER BY id DESC LIMIT %s) AS w)
"""


def add_samples(results):
    """Put the judged results into their flags' windows (in the publisher's transaction).

    Returns the last judged result of each flag: the guard evaluates each flag once per batch."""
    judged = [r for r in results if r.judged]
    now = timezone.now()
    samples = GuardSample.objects.bulk_create(
        [
            GuardSample(
                flag=r.flag,
                discrepancy=r.against_candidate,
                candidate_error=r.candidate.raised,
                control_duration=r.control.duration,
                candidate_duration=r.candidate.duration,
                judged_at=now,
            )
            for r in judged
        ]
    )
    for sample in samples:
        if sample.pk % PRUNE_EVERY == 0:
            window = QueryFlag.objects.filter(name=sample.flag).values_list("guard_window", flat=True).first()
            with connection.cursor() as cursor:
                cursor.execute(_PRUNE, [sample.flag, sample.flag, max(window or 0, 1)])
    return list({r.flag: r for r in judged}.values())


def measure(flag_name, window):
    with connection.cursor() as cursor:
        cursor.execute(_MEASURE, [flag_name, window])
        n, discrepancy_rate, error_rate, control_median, candidate_median = cursor.fetchone()
    return {
        "sample": n,
        "discrepancy_rate": float(discrepancy_rate),
        "error_rate": float(error_rate),
        "latency_ratio": candidate_median / control_median if control_median else 0.0,
    }


def evaluate(result):
    """Trip the result's flag if a threshold is reached; returns the reason, or None."""
    flag_name = result.flag
    flag = QueryFlag.objects.filter(name=flag_name).first()
    # A retired query has no control to send back to (comparisons queued before its retirement still arrive).
    if flag is None or flag.guard_tripped_at is not None or flag.retired_at is not None:
        return None
    numbers = measure(flag_name, flag.guard_window)
    if numbers["sample"] < flag.guard_min_sample:
        return None
    reason = None
    if numbers["discrepancy_rate"] >= flag.guard_max_discrepancy_rate:
        reason = "discrepancy rate"
    elif numbers["error_rate"] >= flag.guard_max_error_rate:
        reason = "candidate error rate"
    elif flag.guard_max_latency_ratio and numbers["latency_ratio"] >= flag.guard_max_latency_ratio:
        reason = "latency ratio"
    details = ", ".join(f"{k}={v:.4g}" for k, v in numbers.items())
    if reason and trip(flag, f"{reason} over the last {numbers['sample']} comparisons: {details}"):
        metrics.increment(result.query, result.candidate_backend, "guard_trips")
        return reason
    return None


def healthy(flag_name, comparisons):
    """Whether the last `comparisons` judged results of this flag were all healthy (rescue's condition)."""
    numbers = measure(flag_name, comparisons)
    return numbers["sample"] >= comparisons and numbers["discrepancy_rate"] == 0 and numbers["error_rate"] == 0


def may_rescue(flag_name):
    """Whether the candidate may serve when the control raised: opted in, not tripped, healthy long enough."""
    flag = QueryFlag.objects.filter(name=flag_name, rescue=True, guard_tripped_at__isnull=True).first()
    return flag is not None and healthy(flag_name, flag.rescue_after)


def trip(flag, reason):
    """Send the flag back to the control for everyone; once, however many workers see the threshold."""
    from rollout.flags.writes import trip

    if not trip(flag.name, reason):
        return False
    logger.warning("guard tripped for %s, the control serves everyone: %s", flag.name, reason)
    return True
