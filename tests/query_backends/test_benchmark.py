"""The benchmark is honest: rotating parameters, sides in rotating order, n/a instead of stand-ins,
hits that are hits, and a baseline comparison. (Timings are never asserted: the benchmark reports them.)"""

import itertools
import json
import re
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from psycopg.rows import dict_row

from query_backends import benchmark
from query_backends.benchmark import NEVER_CACHED, measure, schedule, slower_than
from query_backends.errors import QueryError
from query_backends.registry import REGISTRY
from rollout import cache
from rollout.experiments import flag_name
from rollout.models import GuardSample, MetricMinute, RecordedCall

pytestmark = pytest.mark.django_db
SIDES = ("function", "twin", "floor", "memory_hit", "redis_hit")


@pytest.mark.parametrize("sides", [SIDES[:3], SIDES[:4], SIDES])
def test_no_side_runs_right_after_another_with_the_same_parameters(sides):
    for sets in range(2 * len(sides), 120):
        plan = schedule(sides, sets, 2 * sets)
        assert all(a[1] != b[1] for a, b in itertools.pairwise(plan)), sets


@pytest.mark.parametrize("sides", [SIDES[:3], SIDES[:4], SIDES])
def test_every_side_follows_every_other_side_equally_often(sides):
    rounds = 2 * len(sides) * 3
    plan = schedule(sides, 50, rounds)
    within = Counter(
        (a[0], b[0]) for r in range(rounds) for a, b in itertools.pairwise(plan[r * len(sides) :][: len(sides)])
    )
    assert set(within) == {(a, b) for a in sides for b in sides if a != b}
    assert len(set(within.values())) == 1, within


@pytest.mark.parametrize("sets", [1, 7, 50])
def test_every_side_runs_every_set_equally_often_and_first_in_turn(sets):
    rounds = 2 * sets * len(SIDES)
    plan = schedule(SIDES, sets, rounds)
    for side in SIDES:
        assert Counter(index for s, index in plan if s == side) == dict.fromkeys(range(sets), rounds // sets)
    firsts = Counter(plan[r * len(SIDES)][0] for r in range(rounds))
    assert set(firsts.values()) == {rounds // len(SIDES)}


def test_a_query_that_is_never_cached_has_no_hit_columns():
    result = measure("job_needs", iterations=6, warmup=1, param_sets=6)
    assert set(result["sides"]) == {"function", "twin", "floor"}
    assert result["not_measured"] == {"memory_hit": NEVER_CACHED, "redis_hit": NEVER_CACHED}
    assert result["redis_hit/function"] is None and result["memory_hit/function"] is None
    assert result["twin/function"] > 0


def test_a_cached_query_times_each_built_tier_and_names_the_missing_one():
    result = measure("bu_list", iterations=12, warmup=2, param_sets=12)
    assert result["param_sets"] > 1 and result["rounds"] % result["param_sets"] == 0
    assert "redis_hit" in result["sides"] and result["redis_hit/function"] > 0
    assert set(cache.TIERS) == {"memory", "redis"}
    assert "memory_hit" in result["sides"] and result["memory_hit/function"] > 0
    assert result["not_measured"] == {}


def test_a_tier_that_misses_is_not_reported_as_a_hit(settings):
    settings.ROLLOUT_CACHE_TTL_SECONDS = 0  # Django stores nothing with a zero timeout: every read misses
    result = measure("bu_list", iterations=4, warmup=0, param_sets=4)
    assert "redis_hit" not in result["sides"] and result["redis_hit/function"] is None
    assert "missed" in result["not_measured"]["redis_hit"]


def report(dataset, **medians):
    queries = {}
    for key, value in medians.items():
        query, side = key.split("__")
        entry = queries.setdefault(query, {"query": query, "sides": {}})
        entry["sides"][side] = {"median_ms": value}
    for entry in queries.values():
        sides = entry["sides"]
        entry["twin/function"] = sides["twin"]["median_ms"] / sides["function"]["median_ms"]
    return {"dataset": dataset, "queries": list(queries.values())}


def test_the_baseline_comparison_names_what_got_slower_only():
    before = report("medium", a__function=1.0, a__twin=1.0, b__function=2.0, b__twin=1.0)
    after = report("medium", a__function=1.05, a__twin=1.5, b__function=2.0, b__twin=0.5)
    lines = slower_than(after, before, tolerance=0.10)
    assert len(lines) == 2
    assert lines[0].startswith("a ") and "twin ms" in lines[0] and "(+50%)" in lines[0]
    assert "twin/function" in lines[1] and "1.000 ->    1.429" in lines[1]
    assert slower_than(after, before, tolerance=0.60) == []
    assert "baseline ran on small" in slower_than(after, {**before, "dataset": "small"})[0]


def test_the_command_prints_na_and_compares_with_a_baseline(tmp_path, capsys):
    first = tmp_path / "first.json"
    args = ("--queries", "job_needs,bu_list", "--iterations", "4", "--warmup", "0", "--param-sets", "4")
    call_command("benchmark_orm_performance", *args, "--skip-router", "--json", str(first))
    out = capsys.readouterr().out
    job_line = next(line for line in out.splitlines() if line.startswith("job_needs"))
    assert job_line.count("n/a") == 4  # two hit columns, two hit ratios
    assert "n/a redis_hit (job_needs): never cached" in out
    saved = json.loads(first.read_text())
    for result in saved["queries"]:  # make the baseline ten times faster than anything can be
        for side in result["sides"].values():
            side["median_ms"] /= 10
    first.write_text(json.dumps(saved))
    call_command("benchmark_orm_performance", *args, "--skip-router", "--baseline", str(first))
    out = capsys.readouterr().out
    assert f"slower than {first}" in out and "job_needs" in out.split("slower than")[1]


def test_the_command_rejects_a_bad_baseline(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    with pytest.raises(CommandError, match=r"--baseline: .* is not a report"):
        call_command("benchmark_orm_performance", "--baseline", str(broken))
    with pytest.raises(CommandError, match="--baseline: cannot read"):
        call_command("benchmark_orm_performance", "--baseline", str(tmp_path / "absent.json"))
    with pytest.raises(CommandError, match="--param-sets"):
        call_command("benchmark_orm_performance", "--param-sets", "0")


def left_by(query):
    """Rows a measurement of the query could leave: its metrics, its guard's samples, its recorded calls."""
    return (
        MetricMinute.objects.filter(query=query).count(),
        GuardSample.objects.filter(flag=flag_name(query)).count(),
        RecordedCall.objects.filter(query=query).count(),
    )


def test_the_router_part_measures_the_control_on_rotating_parameters_and_leaves_nothing(no_discrepancies, capsys):
    before = left_by("bu_list")
    call_command("benchmark_orm_performance", "--queries", "bu_list", "--iterations", "2", "--warmup", "0")
    out = capsys.readouterr().out
    assert "router (bu_list): decision_us_median" in out and "shadow/no_shadow" in out
    # It dispatched and compared (shadow 100 % pinned): none of it is left as the query's evidence.
    assert left_by("bu_list") == before


def test_sample_params_is_the_definitions_sampler():
    params = benchmark.sample_params("web_capabilities", 3, seed=1)
    assert params and all(set(p) == {"root_id"} for p in params)
    assert params == benchmark.sample_params("web_capabilities", 3, seed=1)


def test_the_growth_table_orders_datasets_by_size_and_divides_step_by_step(tmp_path, capsys):
    small = {**report("small", a__function=1.0, a__twin=0.5), "jobneeds": 20}
    large = {**report("large", a__function=4.0, a__twin=3.0), "jobneeds": 2000}
    medium = {**report("medium", a__function=2.0, a__twin=1.0), "jobneeds": 200}
    for r, rows in ((small, 1), (medium, 4), (large, 6)):
        r["queries"][0]["rows_median"] = rows
    paths = []
    for r in (large, small, medium):
        paths.append(tmp_path / f"{r['dataset']}.json")
        paths[-1].write_text(json.dumps(r))
    call_command("benchmark_orm_performance", "--growth", *map(str, paths))
    head, row = capsys.readouterr().out.strip().splitlines()
    assert head.index("small twin") < head.index("medium twin") < head.index("large twin")
    assert row.split() == [
        "a",
        "0.50",
        "(1.00)",
        "1.00",
        "(2.00)",
        "3.00",
        "(4.00)",
        "2.00",
        "(2.00)",
        "3.00",
        "(2.00)",
        "1→4",  # rows of the answer, small → medium
        "0.50",  # twin per row: (1.0 / 4) / (0.5 / 1)
        "4→6",
        "2.00",  # (3.0 / 6) / (1.0 / 4)
    ]
    together = tmp_path / "together.json"  # as --growth-db --json writes them: one file, a list of reports
    together.write_text(json.dumps([large, small, medium]))
    call_command("benchmark_orm_performance", "--growth", str(together))
    assert capsys.readouterr().out.strip().splitlines() == [head, row]


def test_fewer_parameter_sets_than_asked_are_reported_with_the_reason():
    scarce = measure("web_capabilities", iterations=60, warmup=0, param_sets=50)
    assert scarce["param_sets_asked"] == 50 and scarce["param_sets"] < 50
    assert scarce["fewer_param_sets"] == (
        f"the data holds only {scarce['param_sets']} for its sampler (web_capability_samples)"
    )
    short = measure("bu_list", iterations=3, warmup=0, param_sets=50)
    assert (short["param_sets"], short["fewer_param_sets"]) == (3, "3 rounds need no more")
    plenty = measure("bu_list", iterations=6, warmup=0, param_sets=6)
    assert plenty["param_sets"] == 6 and plenty["fewer_param_sets"] is None


def test_the_table_says_why_a_query_had_fewer_parameter_sets(capsys):
    call_command("benchmark_orm_performance", "--queries", "web_capabilities", "--iterations", "60", "--skip-router")
    out = capsys.readouterr().out
    assert "web_capabilities: " in out and " of 50 parameter sets: the data holds only " in out


def _url_of_this_database():
    from urllib.parse import quote

    from django.db import connection

    config = connection.settings_dict
    host = quote(config["HOST"] or "", safe="")
    port = f":{config['PORT']}" if config["PORT"] else ""
    return f"postgres://{quote(config['USER'])}:{quote(config['PASSWORD'] or '')}@{host}{port}/{config['NAME']}"


def test_growth_db_measures_each_query_on_each_database_and_prints_the_growth(tmp_path, capsys):
    url = _url_of_this_database()
    path = tmp_path / "growth.json"
    call_command(
        "benchmark_orm_performance",
        *("--growth-db", url, url, "--queries", "bu_list,web_capabilities"),
        *("--iterations", "4", "--warmup", "0", "--json", str(path)),
    )
    out = capsys.readouterr().out
    assert out.count("dataset: tiny") == 2
    growth_lines = [line for line in out.splitlines() if line.startswith(("bu_list ", "web_capabilities "))]
    assert len(growth_lines) == 2 * 2 + 2  # each query in each database's table, then in the growth table
    reports = json.loads(path.read_text())
    assert [sorted(q["query"] for q in r["queries"]) for r in reports] == [["bu_list", "web_capabilities"]] * 2
    assert {q["passes"] for r in reports for q in r["queries"]} == {2}


def test_passes_merge_into_each_sides_median_and_ratios_from_those():
    first = report("large", a__function=1.0, a__twin=0.5)["queries"][0]
    second = report("large", a__function=3.0, a__twin=0.7)["queries"][0]
    for result in (first, second):
        for side in result["sides"].values():
            side.update(p95_ms=2 * side["median_ms"], peak_kib=1.0)
    merged = benchmark.merged_passes([first, second])
    assert merged["sides"]["function"] == {"median_ms": 2.0, "p95_ms": 4.0, "peak_kib": 1.0}
    assert merged["sides"]["twin"]["median_ms"] == pytest.approx(0.6)
    assert merged["twin/function"] == pytest.approx(0.3) and merged["passes"] == 2


def test_growth_db_names_the_database_that_failed():
    url = "postgres://nobody@127.0.0.1:1/none"
    with pytest.raises(CommandError, match=re.escape(f"--growth-db {url}: bu_list failed")):
        call_command("benchmark_orm_performance", "--growth-db", url, "--queries", "bu_list")


def _values(answer):
    """An answer as comparable values: each row as its values' text (sorted: the floor may order its columns
    otherwise, `a.*`), the rows sorted; a value as text."""
    if isinstance(answer, list):
        return sorted(tuple(sorted(str(value) for value in row.values())) for row in answer)
    return "" if answer is None else str(answer)


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_floor_answers_what_its_function_answers(name):
    """A floor is the limit for the *same* answer: one that answered less would be a faster, wrong floor. It
    is checked on what the benchmark times: the parameter sets its sampler draws."""
    definition = REGISTRY.get(name)
    connection.ensure_connection()
    cursor = connection.connection.cursor(row_factory=dict_row)
    checked = 0
    for params in definition.sample(40, 0):
        params = definition.clean(params)
        try:
            expected = definition.run("pg", params)
        except QueryError:
            continue  # a case the legacy function rejects; the floor need not reproduce the error
        rows = definition.floor.run(cursor, params)
        if isinstance(expected, list):
            assert _values(rows) == _values(expected), params
        else:  # one value: the floor's one row's one column
            [row] = rows
            [value] = row.values()
            assert _values(value) == _values(expected), params
        checked += 1
    assert checked
