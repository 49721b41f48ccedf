"""Interleaved measurements of the function, the twin, the twin through the cache and the floor."""

import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext

from query_backends import floor
from query_backends.registry import REGISTRY

SIDES = ("function", "twin", "cached", "floor")


def _rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def sample_params(query, n, seed=0):
    """Realistic parameters from the loaded data: people with work, real sites, real assets."""
    rng = random.Random(seed)
    now = datetime.now(UTC)

    def pick(sql, params=()):
        rows = _rows(sql, params)
        return rng.sample(rows, min(n, len(rows)))

    busy = """SELECT DISTINCT people_id, bu_id, client_id FROM jobneed WHERE people_id > 0 AND bu_id IS NOT NULL
              AND plandatetime BETWEEN %s AND %s LIMIT 2000"""
    window = (now - timedelta(hours=12), now + timedelta(days=1))
    if query in ("job_needs", "external_tour_job_needs"):
        return [{"people_id": p, "bu_id": b, "client_id": c} for p, b, c in pick(busy, window)]
    if query == "schedule_for_adhoc":
        sql = """SELECT plandatetime, bu_id, people_id, asset_id, qset_id FROM jobneed
                 WHERE asset_id > 0 AND qset_id > 0 AND people_id > 0 AND bu_id IS NOT NULL
                   AND plandatetime BETWEEN %s AND %s LIMIT 2000"""
        return [
            {"plandatetime": t, "bu_id": b, "people_id": p, "asset_id": a, "questionset_id": q}
            for t, b, p, a, q in pick(sql, window)
        ]
    if query == "bu_list":
        return [{"bu_id": b, "fmt": "text"} for (b,) in pick("SELECT id FROM bt WHERE parent_id = -1 OR id %% 7 = 0")]
    if query == "bulist_by_identifier":
        return [{"bu_id": b} for (b,) in pick("SELECT id FROM bt WHERE parent_id = -1")]
    if query == "sites_list_web":
        sql = """SELECT client_id, id FROM people WHERE NOT isadmin AND client_id IS NOT NULL AND id > 0
                 AND people_extras ->> 'assignsitegroup' ~ '^[0-9 -]+$' LIMIT 5000"""
        return [{"client_id": c, "people_id": p} for c, p in pick(sql)]
    if query == "asset_questionsets":
        sql = "SELECT bu_id, id::text FROM asset WHERE bu_id IS NOT NULL AND id > 0 LIMIT 5000"
        return [{"site_id": s, "asset_id": a} for s, a in pick(sql)]
    if query == "asset_details":
        sites = pick("SELECT DISTINCT bu_id FROM asset WHERE bu_id IS NOT NULL")
        return [{"mdtz": now - timedelta(days=rng.choice((7, 30))), "site_id": s} for (s,) in sites]
    if query == "web_capabilities":
        return [{"root_id": c} for (c,) in pick("SELECT id FROM capability WHERE parent_id IS NULL AND cfor = 'WEB'")]
    raise ValueError(query)


def _sides(definition):
    connection.ensure_connection()
    raw = connection.connection.cursor()  # a plain psycopg cursor: no Django in the way
    return {
        "function": lambda p: definition.run("pg", p),
        "twin": lambda p: definition.run("orm", p),
        "cached": lambda p: definition.run_cached("orm", p)[0],
        "floor": lambda p: floor.run(raw, definition.name, p),
    }


def measure(query, iterations=100, warmup=10, seed=0):
    """Median, p95, queries, rows and peak memory per side, interleaved A B C D A B C D …"""
    definition = REGISTRY.get(query)
    param_sets = [definition.clean(p) for p in sample_params(query, 50, seed)]
    if not param_sets:
        return None
    sides = _sides(definition)
    for i in range(warmup):
        for run in sides.values():
            run(param_sets[i % len(param_sets)])
    for params in param_sets:  # every cached answer present: the cached side measures hits
        sides["cached"](params)
    timings = {side: [] for side in SIDES}
    rows = []
    for i in range(iterations):
        params = param_sets[i % len(param_sets)]
        for side, run in sides.items():
            started = time.perf_counter()
            answer = run(params)
            timings[side].append(time.perf_counter() - started)
            if side == "twin":
                rows.append(len(answer) if isinstance(answer, (list, dict)) else 1)
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        sides["twin"](param_sets[0])
    memory = {}
    for side in ("function", "twin", "cached", "floor"):
        tracemalloc.start()
        sides[side](param_sets[0])
        memory[side] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    result = {
        "query": query,
        "params_sampled": len(param_sets),
        "iterations": iterations,
        "queries_per_twin_call": len(queries),
        "rows_median": statistics.median(rows),
    }
    for side in SIDES:
        ordered = sorted(timings[side])
        result[side] = {
            "median_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
            "peak_kib": memory[side] / 1024,
        }
    f = result["function"]["median_ms"]
    result["twin/function"] = result["twin"]["median_ms"] / f
    result["cached/function"] = result["cached"]["median_ms"] / f
    result["twin/floor"] = result["twin"]["median_ms"] / result["floor"]["median_ms"]
    return result


def loaded_scale():
    from query_backends.generator import SCALES

    count = _rows("SELECT count(*) FROM jobneed")[0][0]
    return min(SCALES, key=lambda name: abs(SCALES[name].jobneeds - count)), count
