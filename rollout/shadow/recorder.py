"""Discrepancy records: one upsert by fingerprint per batch of results, idempotent by comparison id.

`claim()` inserts the comparison ids; a redelivered comparison finds its id there
and is counted once. `write()` adds the occurrences to the discrepancy of each
fingerprint (creating it on first sight) and keeps at most
DISCREPANCIES_PER_FINGERPRINT examples. Both run in the publishing worker's own
transaction, before its task is acknowledged.
"""

import hashlib
import json
from collections import defaultdict

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from rollout.conf import get_setting
from rollout.models import Discrepancy, DiscrepancyExample, RecordedCall, RecordedComparison

_UPSERT = f"""
INSERT INTO {Discrepancy._meta.db_table} AS d
    (query, flag, kind, fingerprint, occurrences, first_seen, last_seen, status)
VALUES (%s, %s, %s, %s, %s, now(), now(), 'new')
ON CONFLICT (fingerprint) DO UPDATE SET occurrences = d.occurrences + %s, last_seen = now()
RETURNING id, occurrences
"""
_CLAIM = f"""
INSERT INTO {RecordedComparison._meta.db_table} (comparison_id, recorded_at) VALUES %(rows)s
ON CONFLICT DO NOTHING RETURNING comparison_id
"""
_TRIM = f"""
DELETE FROM {DiscrepancyExample._meta.db_table} WHERE discrepancy_id = %s AND id < (
    SELECT min(id) FROM (SELECT id FROM {DiscrepancyExample._meta.db_table}
                         WHERE discrepancy_id = %s ORDER BY id DESC LIMIT %s) AS kept)
"""


def signature(result):
    """What makes two occurrences the same difference: the experiment's shape of it, not its data."""
    return result.difference.shape if result.difference is not None else "errors:"


def fingerprint(result):
    return hashlib.sha256(f"{result.query}|{result.kind}|{signature(result)}".encode()).hexdigest()


def jsonable(value):
    """Round-trip through Django's encoder: datetimes, decimals and UUIDs become JSON."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def bounded_diff(difference, limit=None):
    """The experiment's details of a difference (a JSON object), at most `limit` items of each list in it;
    "cut" counts what was left out of each."""
    limit = limit or get_setting("SHADOW_DIFF_ROWS")
    full = dict(difference.as_dict())
    cut = {}
    for name, part in full.items():
        if isinstance(part, list | tuple) and len(part) > limit:
            cut[name] = len(part) - limit
            full[name] = list(part[:limit])
    full["cut"] = cut
    return full


def claim(comparison_ids):
    """The ids seen for the first time (a redelivered comparison's id is already there): one statement."""
    if not comparison_ids:
        return set()
    rows = ", ".join(["(%s, now())"] * len(comparison_ids))
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM.replace("%(rows)s", rows), list(comparison_ids))
        return {str(row[0]) for row in cursor.fetchall()}


def _example(discrepancy_id, result):
    control, candidate = result.control, result.candidate
    return DiscrepancyExample(
        discrepancy_id=discrepancy_id,
        actor=jsonable(result.actor),
        params=jsonable(result.params),
        diff=jsonable(bounded_diff(result.difference)) if result.difference is not None else {},
        served_backend=result.served_backend,
        control_duration=control.duration if control else None,
        candidate_duration=candidate.duration if candidate else None,
        control_error=control.error_text if control else "",
        candidate_error=candidate.error_text if candidate else "",
    )


def write(results):
    """Count the occurrences of each result's discrepancy and keep the latest examples; {fingerprint: id}.

    Three statements per fingerprint, whatever the number of results; fingerprints are taken in one order in
    every worker, so two batches never wait on each other's row locks in a cycle.
    """
    keep = get_setting("DISCREPANCIES_PER_FINGERPRINT")
    ids = {}
    by_fingerprint = defaultdict(list)
    for result in results:
        by_fingerprint[fingerprint(result)].append(result)
    for key in sorted(by_fingerprint):
        group = by_fingerprint[key]
        first = group[0]
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT, [first.query, first.flag, first.kind, key, len(group), len(group)])
            discrepancy_id, occurrences = cursor.fetchone()
        ids[key] = discrepancy_id
        DiscrepancyExample.objects.bulk_create([_example(discrepancy_id, r) for r in group[-keep:]])
        if occurrences > keep:
            with connection.cursor() as cursor:
                cursor.execute(_TRIM, [discrepancy_id, discrepancy_id, keep])
    return ids


def forget_claims(older_than):
    """Delete comparison ids recorded before `older_than` (a redelivery comes within minutes, not days)."""
    return RecordedComparison.objects.filter(recorded_at__lt=older_than).delete()[0]


def remember_calls(results):
    """Keep the parameters of compared calls, distinct, up to RECORDED_CALLS_PER_QUERY per query (the first seen)."""
    limit = get_setting("RECORDED_CALLS_PER_QUERY")
    by_query = defaultdict(dict)
    for result in results:
        params = jsonable(result.params)
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        by_query[result.query][digest] = params
    for query, calls in by_query.items():
        room = limit - RecordedCall.objects.filter(query=query).count()
        if room > 0:
            rows = [RecordedCall(query=query, digest=d, params=p) for d, p in list(calls.items())[:room]]
            RecordedCall.objects.bulk_create(rows, ignore_conflicts=True)
