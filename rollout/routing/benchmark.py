"""What the router costs: a warm decision, dispatch vs calling the control directly, shadow vs no shadow.

Paired measurements alternate which of the pair runs first each round, and the two halves of a pair use
different parameter sets (each walks the sets from its own offset), so neither finds the other's pages warm.
"""

import dataclasses
import statistics
import time
from contextlib import contextmanager

from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from rollout.experiments import flag_name, get_experiment
from rollout.flags.cache import flags
from rollout.flags.state import FlagState
from rollout.metrics.rollups import metrics, recorded_in_minute
from rollout.models import GuardSample, RecordedCall, RecordedComparison
from rollout.routing.actors import Actor
from rollout.routing.router import decide, dispatch
from rollout.shadow.queue import background

ACTOR = Actor(user_id=1, cohort=1)  # in no cohort the pinned state names: every rule is asked
# The measurement's calls are counted in the first minute of 1970, where no real call is, and deleted from there.
SCRATCH_MINUTE = 0


@contextmanager
def read_only():
    """This session refuses writes while it lasts: a benchmark runs a function hundreds of times, and one that
    writes must fail at its first call rather than write each time. Costs no statement per call."""
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")


@contextmanager
def taken_back(query):
    """What measuring the router counts and records under the query (its calls in the metrics, its comparisons'
    guard samples, claims and recorded calls) is not the query's evidence for its guard, a plan's gates or its
    validation cases: it is counted in a minute of its own, judged on this process's threads (a Celery worker
    would record it after we looked), and deleted afterwards. A discrepancy it finds is real, and stays."""
    started = timezone.now()
    try:
        with recorded_in_minute(SCRATCH_MINUTE), override_settings(ROLLOUT_SHADOW_BACKEND="thread"):
            try:
                yield
            finally:
                background.drain()
                metrics.flush()
    finally:
        GuardSample.objects.filter(flag=flag_name(query), judged_at__gte=started).delete()
        RecordedCall.objects.filter(query=query, seen_at__gte=started).delete()
        RecordedComparison.objects.filter(recorded_at__gte=started).delete()  # claims of judged jobs, no query
        metrics.forget_minute(SCRATCH_MINUTE)


def _median_us(samples):
    return statistics.median(samples) * 1e6


def paired(first, second, param_sets, rounds):
    """Median seconds of first(params) and second(params), alternating which runs first, on different sets."""
    a, b = [], []
    offset = max(1, len(param_sets) // 2)
    for r in range(rounds):
        pair = [(first, param_sets[r % len(param_sets)], a), (second, param_sets[(r + offset) % len(param_sets)], b)]
        for call, params, samples in pair if r % 2 == 0 else reversed(pair):
            started = time.perf_counter()
            call(params)
            samples.append(time.perf_counter() - started)
    return statistics.median(a), statistics.median(b)


def measure_router(query, param_sets, rounds=200):
    """The router's costs for one experiment, over rotating (cleaned) parameter sets."""
    name = flag_name(query)
    base = flags.get(name) or FlagState(name)
    control = dataclasses.replace(
        base, everyone=None, percent=0.0, shadow_percent=0.0, cohorts={"cohort": frozenset({2})}
    )
    shadowed = dataclasses.replace(control, shadow_percent=100.0)
    experiment = get_experiment(query)

    def routed(params):
        dispatch(query, actor=ACTOR, **params)

    with taken_back(query), read_only(), flags.pinned(control):
        for params in param_sets:  # warm: every set's plan prepared and its pages read, on both sides
            experiment.run(experiment.control, params)
            routed(params)
        batches = []
        for _ in range(200):
            started = time.perf_counter()
            for _ in range(100):
                decide(query, ACTOR)
            batches.append((time.perf_counter() - started) / 100)
        direct, through_router = paired(lambda p: experiment.run(experiment.control, p), routed, param_sets, rounds)

    def pinned(state):
        def call(params):
            with flags.pinned(state):
                routed(params)

        return call

    with taken_back(query), read_only():
        plain, shadow = paired(pinned(control), pinned(shadowed), param_sets, rounds // 2)
    return {
        "decision_us_median": _median_us(batches),
        "direct_ms_median": direct * 1000,
        "dispatch_ms_median": through_router * 1000,
        "dispatch/direct": through_router / direct,
        "router_us": (through_router - direct) * 1e6,
        "no_shadow_ms_median": plain * 1000,
        "shadow_ms_median": shadow * 1000,
        "shadow/no_shadow": shadow / plain,
    }
