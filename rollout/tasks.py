"""The Celery task behind shadow mode: judge a batch of jobs and publish the results, as a local worker thread does.

acks_late + reject_on_worker_lost: a task whose worker dies mid-run goes back
to the queue; publish() is idempotent by comparison id, so the redelivery
counts once.
"""

from celery import shared_task

from rollout.comparison import judge_all
from rollout.publish import publish


@shared_task(name="rollout.judge", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def judge(payloads):
    publish(judge_all(payloads))
