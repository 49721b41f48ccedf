"""/metrics in the Prometheus text format, from the shared metrics store.

Access: a bearer token (ROLLOUT_METRICS_TOKEN) or a client address in
ROLLOUT_METRICS_ALLOWED_IPS (default: loopback only).
"""

import hmac

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily

from rollout.conf import get_setting
from rollout.metrics import COUNTERS, metrics


class SnapshotCollector:
    def collect(self):
        snapshot = metrics.snapshot()
        for name in COUNTERS:
            family = CounterMetricFamily(
                f"rollout_{name}",
                f"Rollout {name.replace('_', ' ')}, per query and backend",
                labels=["query", "backend"],
            )
            for (query, backend), row in sorted(snapshot.items()):
                family.add_metric([query, backend], row[name])
            yield family
        latency = SummaryMetricFamily(
            "rollout_latency_seconds",
            "Latency quantiles over the last samples",
            labels=["query", "backend", "quantile"],
        )
        for (query, backend), row in sorted(snapshot.items()):
            for quantile in ("p50", "p95", "p99"):
                if row[quantile] is not None:
                    latency.add_sample(
                        "rollout_latency_seconds",
                        {"query": query, "backend": backend, "quantile": f"0.{quantile[1:]}"},
                        row[quantile],
                    )
        yield latency


def _permitted(request):
    token = get_setting("METRICS_TOKEN")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and given and hmac.compare_digest(given, token):
        return True
    return request.META.get("REMOTE_ADDR") in get_setting("METRICS_ALLOWED_IPS")


def view(request):
    if not _permitted(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(SnapshotCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
