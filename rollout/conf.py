from django.conf import settings

from rollout import defaults


def get_setting(name):
    """ROLLOUT_<NAME> from the settings, else the default in defaults.py."""
    return getattr(settings, f"ROLLOUT_{name}", getattr(defaults, name))
