"""The function and the twin on the big shapes: time (interleaved, median) and peak memory per call.

Nothing is committed: each measurement loads its shape in a transaction that is
rolled back (a spawned process per side and call for the memory, this process
for the times); afterwards the tables are vacuumed and their indexes rebuilt.
"""

import statistics
import time
from datetime import UTC, datetime

from django.db import connection, transaction

from query_backends import generator
from query_backends.peak_memory import peak_kib
from query_backends.registry import REGISTRY

SINCE_EVER = datetime(2000, 1, 1, tzinfo=UTC)
SHAPE_TABLES = {"bu-tree": ("bt", "people"), "site-assets": ("bt", "asset", "questionset")}


def calls(kind, ids):
    """(label, query, params) measured on a shape."""
    if kind == "bu-tree":
        tree = [(f"bu_list {fmt}", "bu_list", {"bu_id": ids["client_id"], "fmt": fmt}) for fmt in ("text", "jsonb")]
        admin = {"client_id": ids["client_id"], "people_id": ids["admin_id"]}
        return [*tree, ("sites_list_web admin", "sites_list_web", admin)]
    return [("asset_details", "asset_details", {"mdtz": SINCE_EVER, "site_id": ids["site_id"]})]


def time_call(query, params, repeats):
    definition = REGISTRY.get(query)
    cleaned = definition.clean(params)
    timings, answers = {"pg": [], "orm": []}, {}
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
        "rows": len(answers["pg"].split()) if isinstance(answers["pg"], str) else len(answers["pg"] or ()),
    }


def measure_shape(spec, repeats=5, seed=0):
    kind, _ = generator.parse_shape(spec)
    try:
        with transaction.atomic():
            ids, counts = generator.load_shape(spec, seed=seed)
            results = {label: time_call(query, params, repeats) for label, query, params in calls(kind, ids)}
            transaction.set_rollback(True)
        for label, result in results.items():
            result["function_peak_mib"] = peak_kib(spec, label, "pg") / 1024
            result["twin_peak_mib"] = peak_kib(spec, label, "orm") / 1024
    finally:
        # What the rolled-back rows left behind: dead tuples, and indexes grown by a deeper level, which
        # VACUUM does not shrink (every later probe of bt would read one more page).
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {', '.join(SHAPE_TABLES[kind])}")
            for table in SHAPE_TABLES[kind]:
                cursor.execute(f"REINDEX TABLE {table}")
    return {"shape": spec, "rows_loaded": counts, "calls": results}
