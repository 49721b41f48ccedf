"""The function and the twin on the big shapes: time (interleaved, median) and peak memory per call.

Each shape is loaded (COPY), measured and removed again, leaving the data as it was. Peak memory is the
peak resident set size of a fresh process that makes just that one call, above what it held before the
call: what one web worker needs for the answer.
"""

import statistics
import time
from datetime import UTC, datetime

from django.db import connection, transaction

from query_backends import generator
from query_backends.peak_memory import peak_kib
from query_backends.registry import REGISTRY

SINCE_EVER = datetime(2000, 1, 1, tzinfo=UTC)


def calls(kind, ids):
    """(label, query, params) measured on a shape."""
    if kind == "bu-tree":
        tree = [(f"bu_list {fmt}", "bu_list", {"bu_id": ids["client_id"], "fmt": fmt}) for fmt in ("text", "jsonb")]
        admin = {"client_id": ids["client_id"], "people_id": ids["admin_id"]}
        return [*tree, ("sites_list_web admin", "sites_list_web", admin)]
    return [("asset_details", "asset_details", {"mdtz": SINCE_EVER, "site_id": ids["site_id"]})]


def measure_call(query, params, repeats):
    definition = REGISTRY.get(query)
    cleaned = definition.clean(params)
    timings = {"pg": [], "orm": []}
    answers = {}
    for i in range(repeats):
        for backend in ("pg", "orm") if i % 2 else ("orm", "pg"):  # neither side always finds the pages warm
            started = time.perf_counter()
            answers[backend] = definition.run(backend, cleaned)
            timings[backend].append(time.perf_counter() - started)
    function, twin = (statistics.median(timings[b]) for b in ("pg", "orm"))
    return {
        "function_s": function,
        "twin_s": twin,
        "twin/function": twin / function,
        "equal": definition.compare(answers["pg"], answers["orm"]).equal,
        "rows": len(answers["pg"] or ()),
        "function_peak_mib": peak_kib(query, "pg", params) / 1024,
        "twin_peak_mib": peak_kib(query, "orm", params) / 1024,
    }


def _remove(ids):
    """Delete a shape's rows and vacuum what they leave behind."""
    with transaction.atomic(), connection.cursor() as cursor:
        for table, first, last in ids["id_ranges"]:
            cursor.execute(f"DELETE FROM {table} WHERE id BETWEEN %s AND %s", [first, last])
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(sorted({table for table, _, _ in ids['id_ranges']}))}")


def measure_shape(spec, repeats=5, seed=0):
    kind = spec.partition(":")[0]
    ids, counts = generator.load_shape(spec, seed=seed)
    try:
        return {
            "shape": spec,
            "rows_loaded": counts,
            "calls": {label: measure_call(query, params, repeats) for label, query, params in calls(kind, ids)},
        }
    finally:
        _remove(ids)
