"""What the router costs: a warm decision, dispatch vs calling the backend directly, shadow vs no shadow."""

import dataclasses
import statistics
import time

from rollout.actors import Actor
from rollout.experiments import flag_name, get_experiment
from rollout.flag_cache import flags
from rollout.flag_state import FlagState
from rollout.router import decide, dispatch
from rollout.shadow import executor

ACTOR = Actor(person_id=1, client_id=1, site_id=1, group_ids=frozenset({1}))


def _median_us(samples):
    return statistics.median(samples) * 1e6


def measure_router(query, params, rounds=200):
    name = flag_name(query)
    base = flags.get(name) or FlagState(name)
    control = dataclasses.replace(
        base, everyone=None, percent=0.0, shadow_percent=0.0, sites=frozenset({2}), people=frozenset({3})
    )
    shadowed = dataclasses.replace(control, shadow_percent=100.0)
    experiment = get_experiment(query)
    with flags.pinned(control):
        batches = []
        for _ in range(200):
            started = time.perf_counter()
            for _ in range(100):
                decide(query, ACTOR)
            batches.append((time.perf_counter() - started) / 100)
        direct, routed = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            experiment.run("pg", params)
            direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            dispatch(query, actor=ACTOR, **params)
            routed.append(time.perf_counter() - started)
    plain, shadow = [], []
    for _ in range(rounds // 10):
        for state, samples in ((control, plain), (shadowed, shadow)):
            with flags.pinned(state):
                for _ in range(10):
                    started = time.perf_counter()
                    dispatch(query, actor=ACTOR, **params)
                    samples.append(time.perf_counter() - started)
    executor.drain()
    return {
        "decision_us_median": _median_us(batches),
        "direct_ms_median": statistics.median(direct) * 1000,
        "dispatch_ms_median": statistics.median(routed) * 1000,
        "dispatch/direct": statistics.median(routed) / statistics.median(direct),
        "no_shadow_ms_median": statistics.median(plain) * 1000,
        "shadow_ms_median": statistics.median(shadow) * 1000,
        "shadow/no_shadow": statistics.median(shadow) / statistics.median(plain),
    }
