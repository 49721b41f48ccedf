from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from rollout import dashboard, prometheus
from rollout.api import views as api

urlpatterns = [
    # The admin's "View site" and a bare visit land on the dashboard (the login first), not on a 404.
    path("", RedirectView.as_view(pattern_name="rollout-dashboard"), name="home"),
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
