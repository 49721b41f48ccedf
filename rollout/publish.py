"""The one seam through which a Result reaches whoever cares: the records, the metrics and the guard.

Everything a result writes goes into one transaction on the publishing
worker's connection, claimed by the comparison id first: a redelivered
comparison finds its claim and changes nothing, so it counts once. The
metrics are counted after the commit; the guard evaluates after it too, and
never sees a result that does not judge the candidate.
"""

import logging
import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from rollout import guard, recorder
from rollout import result as outcome
from rollout.metrics import metrics

logger = logging.getLogger(__name__)
CLAIMS_KEPT = timedelta(days=1)
COUNTERS = {
    outcome.MATCHED: ("comparisons", "matches"),
    outcome.IGNORED: ("comparisons", "matches"),
    outcome.MISMATCH: ("comparisons", "discrepancies"),
    outcome.CANDIDATE_ERROR: ("comparisons", "discrepancies"),
    outcome.CONTROL_ERROR: ("comparisons", "control_errors"),
    outcome.DIFFERENT_ERRORS: ("comparisons", "control_errors"),
    outcome.STALE_CACHE: ("comparisons", "discrepancies"),
    outcome.NOISE: ("comparisons", "noise"),
    outcome.INFRASTRUCTURE: ("infrastructure",),
    outcome.RESCUED: ("control_errors",),
}


def publish(result):
    """Record, count and judge one result; returns False when it had been published before."""
    with transaction.atomic():
        if not recorder.claim(result.comparison_id):
            return False
        if result.mismatched:
            recorder.write(result)
        judged = guard.add_sample(result)
    for name in COUNTERS[result.kind]:
        metrics.increment(result.query, result.candidate_backend, name)
    if judged:
        guard.evaluate(result)
    if random.random() < 0.001:  # housekeeping, about once per thousand results
        recorder.forget_claims(timezone.now() - CLAIMS_KEPT)
    return True
