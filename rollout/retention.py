"""How long discrepancies are kept: purge deletes those not seen for a number of days."""

from datetime import timedelta

from django.utils import timezone

from rollout.models import Discrepancy


def purge(older_than_days):
    """Delete the discrepancies (and their examples) last seen before the cutoff; the number deleted."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    _, per_model = Discrepancy.objects.filter(last_seen__lt=cutoff).delete()
    return per_model.get(Discrepancy._meta.label, 0)
