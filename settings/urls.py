from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from rollout import dashboard, prometheus
from rollout.api import views as api

urlpatterns = [
    path("admin/rollout/dashboard/", admin.site.admin_view(dashboard.overview), name="rollout-dashboard"),
    path(
        "admin/rollout/dashboard/<str:query>/",
        admin.site.admin_view(dashboard.query_page),
        name="rollout-dashboard-query",
    ),
    path("admin/", admin.site.urls),
    path("api/queries/<str:name>", api.query, name="api-query"),
    path("metrics", prometheus.view, name="metrics"),
]

if settings.SILK_ENABLED:
    urlpatterns.append(path("silk/", include("silk.urls", namespace="silk")))
