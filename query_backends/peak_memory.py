"""Peak resident memory of one query call, measured in a fresh process.

Kept free of Django imports at module level: a spawned child imports this
module before it has set Django up.
"""

import multiprocessing
import resource


def _rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def _call_in_child(query, backend, params, answer):
    import django

    django.setup()
    from query_backends.registry import REGISTRY

    definition = REGISTRY.get(query)
    # A first call with ids that match nothing pays for imports, the connection and compiled plans.
    nowhere = {
        name: 0 if isinstance(value, int) and not isinstance(value, bool) else value for name, value in params.items()
    }
    definition.run(backend, definition.clean(nowhere))
    before = _rss_kib()
    definition.run(backend, definition.clean(params))
    answer.put(max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before))


def peak_kib(query, backend, params, timeout=900):
    """How far one call raises the peak RSS (KiB) of a process that makes only that call."""
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    child = context.Process(target=_call_in_child, args=(query, backend, params, answer), daemon=True)
    child.start()
    try:
        return answer.get(timeout=timeout)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
