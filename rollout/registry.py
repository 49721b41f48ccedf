"""The queries rollout routes, registered from the host's own code.

Each installed app may hold a `rollout_queries` module (found at start-up as the admin finds `admin.py`):

    import rollout
    from tickets.twins import open_tickets

    rollout.register(rollout.Query(name="fn_open_tickets", candidate=open_tickets))

register() takes any object satisfying contract.Experiment; rollout.Query is the one a PostgreSQL function
and its twin need. This is the default ROLLOUT_REGISTRY.
"""

from django.utils.module_loading import autodiscover_modules

from rollout.contract import Experiment
from rollout.errors import UnknownQuery
from rollout.snapshot import snapshot

MODULE = "rollout_queries"


class Registry:
    def __init__(self):
        self._definitions = {}

    def register(self, experiment):
        """Add (or, under the same name, replace) an experiment; returns it."""
        if not isinstance(experiment, Experiment):
            raise TypeError(f"{experiment!r} is not an experiment: rollout.register takes a rollout.Query")
        self._definitions[experiment.name] = experiment
        return experiment

    def unregister(self, name):
        self._definitions.pop(name, None)

    def get(self, name):
        try:
            return self._definitions[name]
        except (KeyError, TypeError):
            raise UnknownQuery(name, self._definitions) from None

    def names(self):
        return list(self._definitions)

    def __iter__(self):
        return iter(list(self._definitions.values()))

    def __contains__(self, name):
        return name in self._definitions

    @staticmethod
    def snapshot(using="default"):
        return snapshot(using)


REGISTRY = Registry()
register = REGISTRY.register


def autodiscover():
    """Import every installed app's rollout_queries module, which registers its queries."""
    autodiscover_modules(MODULE)
