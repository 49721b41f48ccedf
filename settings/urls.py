from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

# Wired as docs/adopting.md tells any host: rollout's pages first, then the admin.
urlpatterns = [
    # The admin's "View site" and a bare visit land on the dashboard (the login first), not on a 404.
    path("", RedirectView.as_view(pattern_name="rollout-dashboard"), name="home"),
    path("", include("rollout.urls")),
    path("admin/", admin.site.urls),
]

if settings.SILK_ENABLED:
    urlpatterns.append(path("silk/", include("silk.urls", namespace="silk")))
