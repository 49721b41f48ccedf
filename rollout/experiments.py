"""The registered experiments (control/candidate pairs), found through the REGISTRY setting."""

from functools import cache

from django.utils.module_loading import import_string

from rollout.conf import get_setting


@cache
def registry():
    return import_string(get_setting("REGISTRY"))


def get_experiment(name):
    return registry().get(name)


def flag_name(query_name):
    return f"{get_setting('FLAG_PREFIX')}{query_name}"


def query_name(flag):
    prefix = get_setting("FLAG_PREFIX")
    return flag[len(prefix) :] if flag.startswith(prefix) else None
