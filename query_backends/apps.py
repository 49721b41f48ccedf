from django.apps import AppConfig


class QueryBackendsConfig(AppConfig):
    name = "query_backends"
    verbose_name = "Legacy queries"

    def ready(self):
        from query_backends import checks  # noqa: F401 — registers the system check
