"""The Celery task behind shadow mode: judge a batch of jobs and publish the results, as a local worker thread does.

acks_late + reject_on_worker_lost: a task whose worker dies mid-run goes back
to the queue. A publish that fails (its connection lost, say) closes the
connection and retries the task a few times, then leaves the batch to the
ledger, which counts it as dropped. publish() settles the batch in the ledger
and is idempotent by comparison id, so a retry or a redelivery counts once.
"""

import logging

from celery import shared_task
from django.db import close_old_connections, connection

from rollout.shadow import ledger
from rollout.shadow.judge import count_failures, judge_all
from rollout.shadow.publish import publish

logger = logging.getLogger(__name__)
RETRIES = 5


@shared_task(bind=True, name="rollout.judge", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def judge(self, jobs, batch=None):
    """jobs: the wire forms (Job.to_wire) of a batch; batch: its id in the ledger."""
    close_old_connections()  # a connection broken by an earlier task is not reused
    try:
        if batch is None or ledger.pending(batch):  # else settled already: published, or counted as dropped
            publish(judge_all(jobs), batch=batch)
    except Exception as exc:
        connection.close()
        if self.request.retries < RETRIES:
            logger.warning("could not publish %d results (%s); retrying", len(jobs), exc)
            raise self.retry(exc=exc, countdown=2**self.request.retries) from None
        if batch is None:
            logger.exception(
                "could not publish %d results after %d retries; counted as record_failures", len(jobs), RETRIES
            )
            count_failures(jobs)
        else:
            logger.exception(
                "could not publish %d results after %d retries; left to the ledger (dropped)", len(jobs), RETRIES
            )
    ledger.maybe_reconcile()
