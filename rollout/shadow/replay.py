"""Replay a recorded discrepancy: run the control and the candidate again, now, with its parameters.

Both sides run in the judge's snapshot, which never commits: a replay writes nothing."""

from rollout.experiments import get_experiment
from rollout.models import Discrepancy
from rollout.operations import OperationError
from rollout.reports import as_json
from rollout.shadow.judge import both_sides
from rollout.shadow.recorder import bounded_diff, jsonable


def replay(discrepancy_id):
    """Run both backends again with the recorded parameters; say whether they now agree."""
    discrepancy = Discrepancy.objects.filter(pk=discrepancy_id).first()
    example = discrepancy.latest() if discrepancy else None
    if example is None:
        raise OperationError(f"id: no discrepancy {discrepancy_id}")
    try:
        experiment = get_experiment(discrepancy.query)
    except LookupError:
        raise OperationError(
            f"id: discrepancy {discrepancy_id} is of {discrepancy.query!r}, which is no longer registered"
        ) from None
    params = experiment.clean(example.params, parse=True)
    control, candidate = both_sides(experiment, params)
    difference = experiment.compare(control.outcome, candidate.outcome)
    # JSON, like the recorded example, never a Python repr.
    diff = None if difference.equal else jsonable(bounded_diff(difference))
    text = (
        f"discrepancy {discrepancy_id} ({discrepancy.query}, {discrepancy.kind}) with {as_json(example.params)}:\n"
        + ("the control and the candidate now agree" if diff is None else f"they still differ: {as_json(diff)}")
    )
    return {"id": discrepancy_id, "agree": difference.equal, "diff": diff, "text": text}
