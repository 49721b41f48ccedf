"""The one seam through which Results reach whoever cares: the records, the metrics and the guard.

A batch of results is written in one transaction on the publishing worker's
connection, each claimed by its comparison id first: a redelivered comparison
finds its claim and changes nothing, so it counts once. The metrics are
counted after the commit; the guard evaluates after it too (once per flag in
the batch), and never sees a result that does not judge the candidate.
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


def publish(results):
    """Record, count and judge a batch of results; returns those published for the first time."""
    with transaction.atomic():
        fresh = recorder.claim([r.comparison_id for r in results])
        results = [r for r in results if r.comparison_id in fresh]
        recorder.write([r for r in results if r.mismatched])
        judged = guard.add_samples(results)
    for result in results:
        for name in COUNTERS[result.kind]:
            metrics.increment(result.query, result.candidate_backend, name)
    for result in judged:
        guard.evaluate(result)
    if random.random() < 0.001 * len(results):  # housekeeping, about once per thousand results
        recorder.forget_claims(timezone.now() - CLAIMS_KEPT)
    return results
