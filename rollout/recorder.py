"""Discrepancy records: written by one writer thread on its own connection, never in a caller's transaction.

A record survives the caller's request rolling back; a failure to write is
logged and counted (record_failures), never raised to anyone.
"""

import hashlib
import json
import logging
import queue
import threading
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from rollout.conf import get_setting
from rollout.metrics import metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    query: str
    flag: str
    kind: str
    signature: str  # what makes two occurrences "the same difference"
    actor: dict
    params: dict
    diff: dict
    served_backend: str
    control_duration: float | None
    candidate_duration: float | None
    control_error: str = ""
    candidate_error: str = ""

    @property
    def fingerprint(self):
        return hashlib.sha256(f"{self.query}|{self.kind}|{self.signature}".encode()).hexdigest()


def jsonable(value):
    """Round-trip through Django's encoder: datetimes, decimals and UUIDs become JSON."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def write(record):
    """Insert or count one occurrence; keep at most DISCREPANCIES_PER_FINGERPRINT examples of it."""
    from rollout.models import Discrepancy, DiscrepancyExample

    with transaction.atomic():
        discrepancy, created = Discrepancy.objects.select_for_update().get_or_create(
            fingerprint=record.fingerprint, defaults={"query": record.query, "flag": record.flag, "kind": record.kind}
        )
        if not created:
            Discrepancy.objects.filter(pk=discrepancy.pk).update(
                occurrences=F("occurrences") + 1, last_seen=timezone.now()
            )
        DiscrepancyExample.objects.create(
            discrepancy=discrepancy,
            actor=jsonable(record.actor),
            params=jsonable(record.params),
            diff=jsonable(record.diff),
            served_backend=record.served_backend,
            control_duration=record.control_duration,
            candidate_duration=record.candidate_duration,
            control_error=record.control_error,
            candidate_error=record.candidate_error,
        )
        keep = get_setting("DISCREPANCIES_PER_FINGERPRINT")
        stale = discrepancy.examples.order_by("-seen_at", "-id").values_list("pk", flat=True)[keep:]
        DiscrepancyExample.objects.filter(pk__in=list(stale)).delete()
    return discrepancy


class Recorder:
    def __init__(self, size=10_000):
        self._queue = queue.Queue(maxsize=size)
        self._thread = None
        self._lock = threading.Lock()

    def _ensure_thread(self):
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rollout-recorder", daemon=True)
                self._thread.start()

    def submit(self, record):
        self._ensure_thread()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            logger.error("discrepancy recorder queue full; record for %s lost", record.query)
            metrics.increment(record.query, record.served_backend, "record_failures")

    def _run(self):
        while True:
            record = self._queue.get()
            try:
                write(record)
            except Exception:
                logger.exception("could not write a discrepancy record for %s", record.query)
                metrics.increment(record.query, record.served_backend, "record_failures")
            finally:
                close_old_connections()
                self._queue.task_done()

    def drain(self):
        """Block until every submitted record is written (tests, shutdown)."""
        if self._thread is not None:
            self._queue.join()


recorder = Recorder()
