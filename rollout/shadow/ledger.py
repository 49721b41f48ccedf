"""The broker's ledger: every batch handed to the broker ends published or counted as dropped, never vanished.

A broker can lose what it was given — Redis killed with jobs in its memory, a
queue flushed, a message written to a socket that died. So the publisher
writes a SentBatch row (in PostgreSQL) before it publishes a batch, and
removes it (counting the batch as dropped) when publishing fails. A worker
settles the batch in the same transaction that publishes its results: the row
is deleted, or — already settled — the worker publishes nothing (a redelivery,
or a batch counted as dropped meanwhile). A batch still unsettled after
SHADOW_LEDGER_SECONDS is deleted and counted as dropped by whichever process
reconciles first; the delete decides, so nothing is counted twice.
"""

import json
import logging
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from rollout.conf import get_setting
from rollout.metrics.rollups import metrics
from rollout.models import SentBatch

logger = logging.getLogger(__name__)
_reconciled_at = [0.0]
_lock = threading.Lock()


def open_batch(keys):
    """Write down a batch about to be published; keys: {(query, candidate backend): jobs}. Its id."""
    batch = uuid.uuid4()
    SentBatch.objects.create(
        id=batch, sent_at=timezone.now(), jobs=[[query, backend, n] for (query, backend), n in keys.items()]
    )
    return str(batch)


def cancel(batch, keys):
    """The broker refused the batch: forget it and count its jobs as dropped."""
    SentBatch.objects.filter(id=batch).delete()
    for (query, backend), n in keys.items():
        metrics.increment(query, backend, "drops", n)


def pending(batch):
    """Whether the batch still waits to be published (a cheap check before judging it)."""
    return SentBatch.objects.filter(id=batch).exists()


def settle(batch):
    """In the publishing transaction: True when this delivery settles the batch (and publishes its results)."""
    return SentBatch.objects.filter(id=batch).delete()[0] == 1


def reconcile(older_than=None):
    """Count as dropped every batch unsettled for SHADOW_LEDGER_SECONDS; how many jobs that was."""
    older_than = older_than or timezone.now() - timedelta(seconds=get_setting("SHADOW_LEDGER_SECONDS"))
    drops = Counter()
    with transaction.atomic(), connection.cursor() as cursor:  # deleted and counted together: dropped once
        cursor.execute(f"DELETE FROM {SentBatch._meta.db_table} WHERE sent_at < %s RETURNING jobs", [older_than])
        for (jobs,) in cursor.fetchall():
            for query, backend, n in json.loads(jobs):  # Django's connection hands jsonb over as text
                drops[(query, backend, "drops")] += n
        metrics.add_now(drops)
    if drops:
        logger.warning("%d shadow jobs never came back from the broker; counted as drops", sum(drops.values()))
    return sum(drops.values())


def maybe_reconcile():
    """reconcile(), at most once every tenth of SHADOW_LEDGER_SECONDS per process."""
    every = get_setting("SHADOW_LEDGER_SECONDS") / 10
    with _lock:
        if time.monotonic() - _reconciled_at[0] < every:
            return 0
        _reconciled_at[0] = time.monotonic()
    try:
        return reconcile()
    except Exception as exc:  # noqa: BLE001 — the database away: the next call tries again
        logger.warning("could not reconcile the shadow ledger (%s)", exc)
        return 0
