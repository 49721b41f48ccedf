"""The one seam through which Results reach whoever cares: the records, the metrics and the guard.

A batch of results is written in one transaction on the publishing worker's
connection, each claimed by its comparison id first: a redelivered comparison
finds its claim and changes nothing, so it counts once. Its metrics are
counted in that same transaction; the guard evaluates after the commit (once
per flag in the batch), and never sees a result that does not judge the candidate.
"""

import logging
import random
from collections import Counter
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
        # Counted with the claim: a worker killed after the commit loses no count, a redelivery adds none.
        counts = Counter()
        for result in results:
            for name in COUNTERS[result.kind]:
                counts[(result.query, result.candidate_backend, name)] += 1
        metrics.add_now(counts)
    for result in judged:
        guard.evaluate(result)
    if random.random() < 0.001 * len(results):  # housekeeping, about once per thousand results
        recorder.forget_claims(timezone.now() - CLAIMS_KEPT)
    return results
