"""Interleaved measurements of the function, the twin, the hand-written floor and each tier of the cache.

Honest by construction:
- parameters rotate: each side walks the same parameter sets, each from its own offset, so no side runs
  right after another with the same parameters (it would find their pages warm);
- the order of the sides changes every round, so each runs first as often as the others and right after
  each other side as often as after any other (a fixed succession made one side always follow the
  function, and pay for what the function left behind);
- a side that does not exist for a query is "n/a" with the reason, never a stand-in: a query that is never
  cached has no hit to time;
- every timed hit is checked to be a hit; a tier that missed even once reports n/a.
"""

import itertools
import math
import statistics
import time
import tracemalloc

from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from psycopg.rows import dict_row

from query_backends.registry import REGISTRY

# Each cache tier's hit, timed alone: the column and the tier rollout.cache.peek reads (rollout.cache.TIERS).
CACHE_TIERS = {"memory_hit": "memory", "redis_hit": "redis"}
SIDES = ("function", "twin", "floor", *CACHE_TIERS)
RATIOS = {
    "twin/function": ("twin", "function"),
    "memory_hit/function": ("memory_hit", "function"),
    "redis_hit/function": ("redis_hit", "function"),
    "twin/floor": ("twin", "floor"),
}
NEVER_CACHED = "never cached (reads now())"


def sample_params(query, n, seed=0, registry=REGISTRY):
    """Up to n realistic parameter sets for a query, from the loaded data (its definition's sampler)."""
    return registry.get(query).sample(n, seed)


def orders(n):
    """Orders of n sides (a Williams design) in which every side follows every other side equally often and
    runs first equally often: a side that always ran right after the same other side would inherit what that
    one leaves behind (caches, a table just scanned) and be timed for it."""
    first = [0]
    for step in range(1, n):
        first.append((step + 1) // 2 if step % 2 else n - step // 2)
    rows = [[(side + shift) % n for side in first] for shift in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


def schedule(sides, sets, rounds):
    """[(side, parameter set index)] for `rounds` rounds: every side once per round, in orders where each
    side follows every other equally often, each side walking the sets from its own offset. With at least
    2 × len(sides) sets no execution uses the parameters of the one just before it; over a multiple of `sets`
    rounds every side runs every set equally often."""
    step = max(1, sets // len(sides))
    rows = orders(len(sides))
    plan = []
    for r in range(rounds):
        for k in rows[r % len(rows)]:
            plan.append((sides[k], (r + k * step) % sets))
    return plan


def _sides(definition):
    """{side: callable(params)} for the sides this query has, and {side: why not} for the others."""
    connection.ensure_connection()
    raw = connection.connection.cursor(row_factory=dict_row)  # a plain psycopg cursor: no Django in the way
    present = {
        "function": lambda p: definition.run("pg", p),
        "twin": lambda p: definition.run("orm", p),
        "floor": lambda p: definition.floor.run(raw, p),
    }
    absent = {}
    for side, tier in CACHE_TIERS.items():
        if definition.cache is None:
            absent[side] = NEVER_CACHED
        else:
            present[side] = _hit(definition, tier)
    return present, absent


class _Missed(Exception):
    """A timed cache read that was not a hit: the tier's column would not be measuring hits."""


def _hit(definition, tier):
    def read(params):
        found, value = definition.cached_answer("orm", params, tier)
        if not found:
            raise _Missed
        return value

    return read


def _ratio(result, top, bottom):
    a, b = result["sides"].get(top), result["sides"].get(bottom)
    return a["median_ms"] / b["median_ms"] if a and b else None


def measure(query, iterations=100, warmup=10, param_sets=50, seed=0, registry=REGISTRY):
    """Median, p95 and peak memory per side, SQL queries per twin call, rows; None without parameters."""
    definition = registry.get(query)
    sets = [definition.clean(p) for p in definition.sample(min(param_sets, iterations), seed)]
    if not sets:
        return None
    fewer = None
    if len(sets) == iterations < param_sets:
        fewer = f"{iterations} rounds need no more"
    elif len(sets) < param_sets:
        sampler = getattr(definition.samples, "__name__", "samples")
        fewer = f"the data holds only {len(sets)} for its sampler ({sampler})"
    rounds = math.ceil(iterations / len(sets)) * len(sets)  # every side runs every set equally often
    present, absent = _sides(definition)
    for params in sets:  # every answer in the cache, so its columns time hits
        definition.run_cached("orm", params)
    names = list(present)
    for side, index in schedule(names, len(sets), warmup):
        _timed(present, side, sets[index], absent)
    timings = {side: [] for side in names}
    rows = []
    plan = schedule(names, len(sets), rounds)
    for side, index in plan:
        if side not in present:
            continue
        elapsed, answer = _timed(present, side, sets[index], absent)
        if elapsed is not None:
            timings[side].append(elapsed)
        if side == "twin":
            rows.append(len(answer) if isinstance(answer, (list, dict)) else 1)
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        present["twin"](sets[0])
    result = {
        "query": query,
        "param_sets": len(sets),
        "param_sets_asked": param_sets,
        "fewer_param_sets": fewer,  # why fewer sets than asked, or None
        "rounds": rounds,
        "repeats_back_to_back": sum(a[1] == b[1] for a, b in itertools.pairwise(plan)),
        "queries_per_twin_call": len(queries),
        "rows_median": statistics.median(rows),
        "sides": {},
        "not_measured": {side: absent[side] for side in SIDES if side in absent},
    }
    for side in SIDES:
        if side not in present:
            continue
        tracemalloc.start()
        present[side](sets[0])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        ordered = sorted(timings[side])
        result["sides"][side] = {
            "median_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
            "peak_kib": peak / 1024,
        }
    for name, (top, bottom) in RATIOS.items():
        result[name] = _ratio(result, top, bottom)
    return result


def _timed(present, side, params, absent):
    """(seconds, answer); a cache tier that misses is dropped from `present` and its reason recorded."""
    started = time.perf_counter()
    try:
        answer = present[side](params)
    except _Missed:
        del present[side]
        absent[side] = "a timed read missed: the cache did not hold the answer"
        return None, None
    return time.perf_counter() - started, answer


def slower_than(report, baseline, tolerance=0.10):
    """Lines naming every median and ratio that grew by more than `tolerance` since the baseline report."""
    before = {r["query"]: r for r in baseline.get("queries", [])}
    lines = []
    if baseline.get("dataset") != report.get("dataset"):
        lines.append(f"note: the baseline ran on {baseline.get('dataset')}, this run on {report.get('dataset')}")
    for result in report["queries"]:
        old = before.get(result["query"])
        if old is None:
            continue
        pairs = [(f"{side} ms", _median(old, side), _median(result, side)) for side in SIDES]
        pairs += [(name, old.get(name), result.get(name)) for name in RATIOS]
        for metric, was, now in pairs:
            if was and now and now > was * (1 + tolerance):
                lines.append(f"{result['query']:<24} {metric:<20} {was:8.3f} -> {now:8.3f}  (+{now / was - 1:.0%})")
    return lines


def merged_passes(results):
    """One query's results from several passes on one database as one: each side's median and p95 the median
    of the passes' (their mean for two), the ratios recomputed from those, the rest from the first pass."""
    merged = {**results[0], "passes": len(results), "sides": {}}
    for side in results[0]["sides"]:
        found = [r["sides"][side] for r in results if side in r["sides"]]
        merged["sides"][side] = {
            key: statistics.median(f[key] for f in found) for key in ("median_ms", "p95_ms", "peak_kib")
        }
    for name, (top, bottom) in RATIOS.items():
        merged[name] = _ratio(merged, top, bottom)
    return merged


def growth(reports):
    """Lines of a table: each query's twin and function medians per report (smallest dataset first), how
    much each grew from one dataset to the next, and how much the twin's time per answer row grew (an
    answer that itself grows with the data costs more to build and to hand back, whatever the plan)."""
    reports = sorted(reports, key=lambda r: r["jobneeds"])
    by_query = [{q["query"]: q for q in r["queries"]} for r in reports]
    names = list(dict.fromkeys(name for queries in by_query for name in queries))
    head = "".join(f"{r['dataset'] + ' twin (fn)':>22}" for r in reports)
    steps = list(itertools.pairwise(reports))
    head += "".join(f"{b['dataset'] + '/' + a['dataset'] + ' twin (fn)':>28}" for a, b in steps)
    head += "".join(f"{b['dataset'] + '/' + a['dataset'] + ' rows, per row':>30}" for a, b in steps)
    lines = [f"{'query':<24}{head}"]
    for name in names:
        results = [q.get(name, {}) for q in by_query]
        row = [(_median(result, "twin"), _median(result, "function")) for result in results]
        cells = "".join(f"{_pair(twin, fn):>22}" for twin, fn in row)
        for (twin_a, fn_a), (twin_b, fn_b) in itertools.pairwise(row):
            cells += f"{_pair(_over(twin_b, twin_a), _over(fn_b, fn_a)):>28}"
        for a, b in itertools.pairwise(results):
            rows = f"{_number(a.get('rows_median'), 0)}→{_number(b.get('rows_median'), 0)}"
            cells += f"{rows + ' ' + _number(_over(_per_row(b), _per_row(a))):>30}"
        lines.append(f"{name:<24}{cells}")
    return lines


def _per_row(result):
    rows = result.get("rows_median")
    return _median(result, "twin") / rows if rows and _median(result, "twin") else None


def _over(b, a):
    return b / a if a and b else None


def _pair(first, second):
    return f"{_number(first)} ({_number(second)})"


def _number(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _median(result, side):
    return (result.get("sides", {}).get(side) or {}).get("median_ms")


def loaded_scale():
    from query_backends.generator import SCALES

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobneed")
        count = cursor.fetchone()[0]
    return min(SCALES, key=lambda name: abs(SCALES[name].jobneeds - count)), count
