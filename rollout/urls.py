"""rollout's pages: the dashboard (inside the admin), the query API and /metrics.

A host includes them at its root, before the admin's own URLs (the dashboard lives under admin/rollout/):

    path("", include("rollout.urls")),
    path("admin/", admin.site.urls),
"""

from django.contrib import admin
from django.urls import path

from rollout.api import views as api
from rollout.dashboard import views as dashboard
from rollout.metrics import prometheus

urlpatterns = [
    path("admin/rollout/dashboard/", admin.site.admin_view(dashboard.overview), name="rollout-dashboard"),
    path(
        "admin/rollout/dashboard/<str:query>/",
        admin.site.admin_view(dashboard.query_page),
        name="rollout-dashboard-query",
    ),
    path("api/queries/<str:name>", api.query, name="api-query"),
    path("api/rollout/status", api.status, name="api-rollout-status"),
    path("metrics", prometheus.view, name="metrics"),
]
