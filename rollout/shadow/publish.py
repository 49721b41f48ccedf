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

from rollout.flags.cache import flags
from rollout.lifecycle.evidence import PER_COHORT, cohort_counter, cohort_counters
from rollout.metrics.rollups import metrics
from rollout.shadow import guard, ledger, recorder

logger = logging.getLogger(__name__)
CLAIMS_KEPT = timedelta(days=1)


def publish(results, batch=None):
    """Record, count and judge a batch of results; returns those published for the first time.

    batch: its id in the broker's ledger; a batch settled already (published, or counted as dropped) publishes
    nothing."""
    with transaction.atomic():
        if batch is not None and not ledger.settle(batch):
            return []
        fresh = recorder.claim([r.comparison_id for r in results])
        results = [r for r in results if r.comparison_id in fresh]
        recorder.write([r for r in results if r.recorded])
        recorder.remember_calls(results)
        judged = guard.add_samples(results)
        # Counted with the claim: a worker killed after the commit loses no count, a redelivery adds none.
        counts = Counter()
        for result in results:
            in_cohorts = cohort_counters(result, flags.get(result.flag))
            for name in result.counters:
                counts[(result.query, result.candidate_backend, name)] += 1
                if name in PER_COHORT:  # a plan's cohort stage shows its numbers per cohort id
                    for cohort, cohort_id in in_cohorts:
                        counts[(result.query, result.candidate_backend, cohort_counter(name, cohort, cohort_id))] += 1
            if result.cost:
                counts[(result.query, result.candidate_backend, "shadow_us")] += round(result.cost * 1e6)
        metrics.add_now(counts)
    for result in judged:
        guard.evaluate(result)
    if random.random() < 0.001 * len(results):  # housekeeping, about once per thousand results
        recorder.forget_claims(timezone.now() - CLAIMS_KEPT)
    return results
