from django.apps import AppConfig


class QueryBackendsConfig(AppConfig):
    name = "query_backends"
    verbose_name = "Legacy queries"
