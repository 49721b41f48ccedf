"""Peak resident memory of one query call on a shape, and a worker's after many cached calls, in a fresh process.

The child loads the shape in its own transaction (never committed), makes one
call with ids that match nothing (imports, connection, compiled plans), then
the measured call while a thread samples its resident set size; it reports the
highest sample above the size just before the call, and rolls back. Kept free
of Django imports at module level: a spawned child imports this module before
it has set Django up.
"""

import multiprocessing
import resource
import threading

SAMPLE_SECONDS = 0.002


def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def peak_during(call):
    """(call's answer, the highest RSS sampled while it ran, in KiB above the RSS before it)."""
    before, peak, done = rss_kib(), [0], threading.Event()

    def sample():
        while not done.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], rss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        answer = call()
    finally:
        peak[0] = max(peak[0], rss_kib())
        done.set()
        sampler.join()
    return answer, max(0, peak[0] - before)


def _child(spec, label, backend, answer):
    import django

    django.setup()
    from django.db import transaction

    from query_backends import generator
    from query_backends.registry import REGISTRY
    from query_backends.shape_benchmark import calls

    with transaction.atomic():
        ids, _ = generator.load_shape(spec)
        [(query, params)] = [(q, p) for name, q, p in calls(spec.partition(":")[0], ids) if name == label]
        definition = REGISTRY.get(query)
        nowhere = {k: 0 if isinstance(v, int) and not isinstance(v, bool) else v for k, v in params.items()}
        definition.run(backend, definition.clean(nowhere))
        _, peak = peak_during(lambda: definition.run(backend, definition.clean(params)))
        answer.put(peak)
        transaction.set_rollback(True)


def _in_fresh_process(target, args, timeout):
    """What target(*args, answer_queue) puts on its queue, run in a spawned process (its RSS is its own)."""
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=target, args=(*args, answer), daemon=True)
    child.start()
    try:
        return answer.get(timeout=timeout)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()


def peak_kib(spec, label, backend, timeout=900):
    """Peak RSS (KiB) of the call `label` of shape `spec` on `backend`, in a process that makes only that call."""
    return _in_fresh_process(_child, (spec, label, backend), timeout)


def _cache_child(site_id, requests, environment, answer):
    import os

    os.environ.update(environment)  # the cache's budget, read by the settings django.setup() loads
    import django

    django.setup()
    import gc
    from datetime import timedelta

    from query_backends.registry import REGISTRY
    from query_backends.shape_benchmark import SINCE_EVER
    from rollout.cache import generations

    definition = REGISTRY.get("asset_details")
    definition.run_cached("orm", definition.clean({"mdtz": SINCE_EVER, "site_id": 0}))  # imports, plans
    before = rss_kib()
    for i in range(requests):  # as mobile sync asks: a new mdtz on every call
        params = definition.clean({"mdtz": SINCE_EVER + timedelta(seconds=i), "site_id": site_id})
        definition.run_cached("orm", params)
    gc.collect()
    memory = generations.listener.memory
    answer.put({"before_kib": before, "after_kib": rss_kib(), "kept": len(memory), "kept_bytes": memory.nbytes})


def cache_rss(site_id, requests, environment, timeout=1800):
    """RSS (KiB) of a fresh process before and after `requests` cached asset_details calls with distinct mdtz
    on a site, the cache configured by `environment` (e.g. QUERY_CACHE_MEMORY_BYTES), and what it kept."""
    return _in_fresh_process(_cache_child, (site_id, requests, environment), timeout)
