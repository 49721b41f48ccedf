"""The Celery task behind shadow mode. Thin: the work is background.run_job, the same on a worker thread.

acks_late + reject_on_worker_lost: a task whose worker dies mid-run goes back
to the queue; publish() is idempotent by comparison id, so the redelivery
counts once.
"""

from celery import shared_task

from rollout.background import run_job


@shared_task(name="rollout.judge", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def judge(payload):
    run_job(payload)
