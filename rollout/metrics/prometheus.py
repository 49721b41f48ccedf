"""/metrics in the Prometheus text format, from the shared metrics store.

Access: a bearer token (ROLLOUT_METRICS_TOKEN) or a client address in
ROLLOUT_METRICS_ALLOWED_IPS: addresses or networks (default: loopback only).

Every per-backend series also carries `role` ("control" or "candidate", as in
a routing Decision): each query names its own backends (the legacy queries "pg"
and "orm", a host's rollout.Query "function" and "twin"), so rules and
dashboards select on the role and hold for any query.
"""

import hmac
import ipaddress
import logging

from django.db import DatabaseError
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from rollout.conf import get_setting
from rollout.experiments import sides
from rollout.metrics.rollups import COUNTERS, metrics

logger = logging.getLogger(__name__)


def role(query, backend):
    """The part `backend` plays in `query`, "control" or "candidate"; "" for a backend the query does not name
    (a query no longer registered keeps its rows until they expire, with no role to tell)."""
    control, candidate = sides(query)
    return {control.backend: "control", candidate.backend: "candidate"}.get(backend, "")


class SnapshotCollector:
    def collect(self):
        rows = [
            ((query, backend, role(query, backend)), row)
            for (query, backend), row in sorted(metrics.snapshot().items())
        ]
        for name in COUNTERS:
            family = CounterMetricFamily(
                f"rollout_{name}",
                f"Rollout {name.replace('_', ' ')}, per query and backend",
                labels=["query", "backend", "role"],
            )
            for labels, row in rows:
                family.add_metric(labels, row[name])
            yield family
        latency = SummaryMetricFamily(
            "rollout_latency_seconds",
            "Latency quantiles over the last samples",
            labels=["query", "backend", "role", "quantile"],
        )
        for (query, backend, part), row in rows:
            for quantile in ("p50", "p95", "p99"):
                if row[quantile] is not None:
                    latency.add_sample(
                        "rollout_latency_seconds",
                        {"query": query, "backend": backend, "role": part, "quantile": f"0.{quantile[1:]}"},
                        row[quantile],
                    )
        yield latency
        yield from self.flag_state()

    @staticmethod
    def flag_state():
        """What the flags and the discrepancy records say now: the guard's state and the open discrepancies."""
        from rollout.experiments import flag_name, registry
        from rollout.models import QueryFlag
        from rollout.reports import open_discrepancies

        try:
            tripped = set(QueryFlag.objects.filter(guard_tripped_at__isnull=False).values_list("name", flat=True))
            open_counts = open_discrepancies()
        except DatabaseError:
            # The counters above come from the metrics store and still reach Prometheus; these gauges go
            # missing for this scrape (absent, never a wrong 0).
            logger.warning("database unreachable; /metrics without the guard and discrepancy gauges", exc_info=True)
            return
        guard = GaugeMetricFamily("rollout_guard_tripped", "1 when the guard has sent the query back", labels=["query"])
        discrepancies = GaugeMetricFamily(
            "rollout_open_discrepancies", "Discrepancy records neither fixed nor ignored", labels=["query"]
        )
        for query in registry().names():
            guard.add_metric([query], int(flag_name(query) in tripped))
            discrepancies.add_metric([query], open_counts.get(query, 0))
        yield guard
        yield discrepancies


def _permitted(request):
    token = get_setting("METRICS_TOKEN")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and given and hmac.compare_digest(given, token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in get_setting("METRICS_ALLOWED_IPS"))


def view(request):
    if not _permitted(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(SnapshotCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
