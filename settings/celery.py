"""The Celery app: `celery -A settings worker` runs shadow comparisons (see docs/operations.md)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

app = Celery("pg_retire")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["rollout.shadow", "rollout.lifecycle"])
