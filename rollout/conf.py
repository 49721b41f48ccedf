from django.conf import settings
from django.core.signals import setting_changed

from rollout import defaults

# Read on every routed call (a few each): kept once read, forgotten when a setting changes (override_settings,
# the tests' settings fixture), so a read costs a dict lookup.
_read = {}


def get_setting(name):
    """ROLLOUT_<NAME> from the settings, else the default in defaults.py."""
    try:
        return _read[name]
    except KeyError:
        value = _read[name] = getattr(settings, f"ROLLOUT_{name}", getattr(defaults, name))
        return value


def _forget(setting, **kwargs):
    if setting.startswith("ROLLOUT_"):
        _read.clear()


setting_changed.connect(_forget, dispatch_uid="rollout.conf.forget")
