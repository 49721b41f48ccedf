"""The registered experiments (control/candidate pairs), found through the REGISTRY setting."""

from functools import cache
from typing import NamedTuple

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


class Side(NamedTuple):
    backend: str  # the name the metrics and records keep it under
    label: str  # what the operator reads


def sides(query):
    """The control and the candidate of a query as (backend, label); plain names once it is no longer registered."""
    try:
        experiment = get_experiment(query)
    except LookupError:
        return Side("control", "control"), Side("candidate", "candidate")
    return Side(experiment.control, experiment.control_label), Side(experiment.candidate, experiment.candidate_label)
