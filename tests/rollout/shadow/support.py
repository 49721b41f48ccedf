"""What the shadow tests share: flags set to compare every call, records read back, a held judge."""

from query_backends.models import BusinessUnit
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.models import Discrepancy
from rollout.routing.actors import Actor
from rollout.shadow import judge
from tests.rollout_helpers import replace_definition

ALICE = Actor(person=1, client=10, site=100)


def shadow_all(query, serve_candidate=False):
    writes.set_shadow(query, 100)
    if serve_candidate:
        writes.enable([query])
    flags.invalidate()


def replace(query, monkeypatch, **changes):
    return replace_definition(monkeypatch, query, **changes)


def records(query):
    return list(Discrepancy.objects.filter(query=query).prefetch_related("examples"))


def raise_runtime(*args, **kwargs):
    raise RuntimeError("twin bug")


def serve_a_raising_twin(monkeypatch):
    replace("web_capabilities", monkeypatch, twin=raise_runtime)
    writes.enable(["web_capabilities"])
    flags.invalidate()


def rename_unit(bu_id, name):
    BusinessUnit.objects.filter(id=bu_id).update(buname=name)


def held_until(gate, monkeypatch):
    """Background workers wait for the gate before judging each job."""
    real = judge.judge

    def held(job):
        gate.wait(10)
        return real(job)

    monkeypatch.setattr(judge, "judge", held)
