"""Plans and flags' state as data: validated with a one-line error naming the bad field, exported and applied
(the plan rehearsed in staging is the one production runs), and `rollout plan QUERY` showing the stage, the
evidence against each gate, the time in stage and the numbers per cohort."""

import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command

from query_backends.models import BusinessUnit
from rollout.flags import transfer, writes
from rollout.flags.cache import flags
from rollout.lifecycle import autopilot, plan
from rollout.lifecycle.plan import PlanError
from rollout.models import FlagChange, QueryFlag
from rollout.operations import OperationError
from rollout.shadow import result as outcome
from rollout.shadow.observation import Observation
from rollout.shadow.publish import publish
from rollout.shadow.result import Result
from tests.legacy_world import ids_of

pytestmark = pytest.mark.django_db


def cli(*args):
    out = io.StringIO()
    call_command("rollout", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    "raw,message",
    [
        ([], 'plan: is not a JSON object with "stages"'),
        ({"stages": []}, "stages: a plan needs a list of at least one stage"),
        ({"stages": [{"shadow": 10}]}, "stages[0].name: a stage needs a name"),
        ({"stages": [{"name": "a", "shadow": 120}]}, "stages[0].shadow: 120 is not between 0 and 100"),
        ({"stages": [{"name": "a", "percent": 100}]}, "stages[0].percent: 100 is not between 0 and 99.9"),
        ({"stages": [{"name": "a", "colour": 1}]}, "stages[0].colour: is not a stage field"),
        ({"stages": [{"name": "a", "gates": {"max_p95_ratio": "x"}}]}, 'stages[0].gates.max_p95_ratio: "x" is not'),
        ({"stages": [{"name": "a", "gates": {"min_comparisons": 1.5}}]}, "stages[0].gates.min_comparisons: 1.5 is not"),
        ({"stages": [{"name": "a", "gates": {"speed": 1}}]}, "stages[0].gates.speed: is not a gate"),
        ({"stages": [{"name": "a"}, {"name": "a"}]}, "stages[1].name: 'a' is the name of an earlier stage"),
        ({"stages": [{"name": "a", "cohorts": {"planet": [1]}}]}, "stages[0].cohorts: cohort: planet is not one of"),
        ({"stages": [{"name": "a", "cohorts": {"site": [987654]}}]}, "stages[0].cohorts: cohort site: no site 987654"),
        ({"stages": [{"name": "a", "everyone": True, "percent": 5}]}, "stages[0].everyone: a stage for everyone"),
        ({"stages": [{"name": "a", "gates": {"min_comparisons": 10**400}}, {"name": "b"}]}, None),
        (
            {"stages": [{"name": "a", "gates": {"min_minutes": float("inf")}}]},
            "stages[0].gates.min_minutes: Infinity is not a number",
        ),
    ],
)
def test_a_bad_plan_is_refused_with_one_line_naming_the_field(raw, message, tmp_path):
    if message is None:  # a whole number too big for a float is still a whole number (no OverflowError)
        assert plan.parse(raw).stages[0].gates["min_comparisons"] == 10**400
        return
    with pytest.raises(PlanError) as refused:
        plan.parse(raw)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    if message.endswith("Infinity is not a number"):
        return  # not JSON: the CLI refuses the file itself (test_a_file_python_reads_but_json_does_not_is_one_line)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(CommandError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        cli("plan", "bu_list", "--apply", str(path))
    assert QueryFlag.objects.get(name="orm.bu_list").plan == {}


def test_a_plan_exported_and_applied_elsewhere_is_the_same_plan(tmp_path):
    site = BusinessUnit.objects.filter(identifier__tacode="SITE").values_list("id", flat=True).first()
    raw = {
        "query": "bu_list",
        "stages": [
            {"name": "shadow", "shadow": 100, "gates": {"min_comparisons": 10}},
            {"name": "one site", "cohorts": {"site": [site]}, "shadow": 50, "gates": {"max_p95_ratio": 2}},
            {"name": "everyone", "everyone": True},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(raw))
    assert cli("plan", "--apply", str(path)).strip() == "bu_list: plan applied"  # the query from the file
    exported = json.loads(cli("plan", "bu_list", "--export"))
    assert plan.parse(exported) == plan.parse(raw)
    with pytest.raises(CommandError, match="query: the file is the plan of 'bu_list', not of 'job_needs'"):
        cli("plan", "job_needs", "--apply", str(path))


def test_a_new_plan_keeps_a_started_query_at_its_stage_by_name_or_is_refused():
    autopilot.set_plan("bu_list", {"stages": [{"name": "a"}, {"name": "b", "percent": 5}]})
    autopilot.start("bu_list")
    autopilot.skip("bu_list")
    autopilot.set_plan("bu_list", {"stages": [{"name": "z"}, {"name": "a"}, {"name": "b", "percent": 5}]})
    assert QueryFlag.objects.get(name="orm.bu_list").plan_stage == 2
    with pytest.raises(PlanError, match="stages: the flag is at stage 'b', which this plan does not have"):
        autopilot.set_plan("bu_list", {"stages": [{"name": "a"}]})


def test_plan_shows_the_stage_each_gate_against_its_evidence_the_time_in_stage_and_each_cohort():
    site = BusinessUnit.objects.filter(identifier__tacode="SITE").values_list("id", flat=True).first()
    autopilot.set_plan(
        "bu_list",
        {
            "stages": [
                {"name": "one site", "cohorts": {"site": [site]}, "shadow": 100, "gates": {"min_comparisons": 3}},
                {"name": "everyone", "everyone": True},
            ]
        },
    )
    autopilot.start("bu_list")
    flags.invalidate()

    def result(actor_site):
        return Result(
            comparison_id=str(uuid.uuid4()),
            query="bu_list",
            flag="orm.bu_list",
            kind=outcome.MATCHED,
            served_backend="orm",
            candidate_backend="orm",
            control=Observation("pg", value="1", duration=0.01),
            candidate=Observation("orm", value="1", duration=0.01),
            actor={"site": [actor_site]},
        )

    def change(flag):  # the stage began two minutes ago: its first whole minute is this one
        from datetime import timedelta

        from django.utils import timezone

        flag.stage_since = timezone.now() - timedelta(minutes=2)
        return ["stage_since"]

    writes.write(["orm.bu_list"], change)
    publish([result(site), result(site), result(site + 100000)])
    shown = cli("plan", "bu_list")
    assert "lifecycle stage cohorts for 2m" in shown
    assert f" > 1. one site: candidate for site [{site}], shadow 100 %" in shown
    assert "[wait] comparisons ≥ 3: 2" not in shown and "[met ] comparisons ≥ 3: 3" in shown
    assert f"site={site}: 2 comparisons, 0 discrepancies" in shown and f"site={site + 100000}" not in shown
    report = json.loads(cli("plan", "bu_list", "--json"))
    assert report["stage"] == "one site" and report["checks"][0]["met"] is True
    assert report["evidence"]["cohorts"][f"site={site}"]["comparisons"] == 2


def test_flags_state_travels_as_json_and_a_bad_field_is_named(tmp_path):
    writes.set_percent("bu_list", 12.5, key="site")
    writes.set_shadow("bu_list", 40)
    autopilot.set_plan("bu_list", {"stages": [{"name": "a", "shadow": 100}]})
    exported = json.loads(cli("flags", "--export", "bu_list"))
    assert exported["flags"]["bu_list"]["percent"] == 12.5 and exported["flags"]["bu_list"]["plan"]["stages"]
    writes.set_percent("bu_list", 0)
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {"bu_list": {**exported["flags"]["bu_list"], "percent": 150}}}))
    with pytest.raises(CommandError, match=r"^flags\.bu_list\.percent: 150"):
        cli("flags", "--apply", str(path))
    assert float(QueryFlag.objects.get(name="orm.bu_list").percent) == 0  # nothing was written
    path.write_text(json.dumps({"flags": {"bu_list": {"guard_tripped_at": None}}}))
    with pytest.raises(CommandError, match=r"^flags\.bu_list\.guard_tripped_at: is not a field that travels"):
        cli("flags", "--apply", str(path))
    path.write_text(json.dumps(exported))
    assert cli("flags", "--apply", str(path)).strip() == "applied: bu_list"
    flag = QueryFlag.objects.get(name="orm.bu_list")
    assert (float(flag.percent), flag.percent_key, float(flag.shadow_percent)) == (12.5, "site", 40.0)
    assert transfer.export(["bu_list"]) == exported


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"stages": [{"name": "a", "shadow": NaN}]}', "--apply: .* is not JSON: NaN is not a JSON number"),
        ('{"flags": {"bu_list": {"guard_max_error_rate": Infinity}}}', "--apply: .* Infinity is not a JSON number"),
        (b"\xff\xfe{}", "--apply: .* is not UTF-8 text"),
        ('{"query": ["bu_list"], "stages": [{"name": "a"}]}', r'query: \["bu_list"\] is not a query name'),
    ],
)
def test_a_file_python_reads_but_json_does_not_is_one_line(text, message, tmp_path):
    path = tmp_path / "file.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    command = "flags" if b"flags" in path.read_bytes() else "plan"
    with pytest.raises(CommandError, match="^" + message) as refused:
        cli(command, "--apply", str(path))
    assert "\n" not in str(refused.value)
    flag = QueryFlag.objects.get(name="orm.bu_list")
    assert (flag.plan, flag.guard_max_error_rate) == ({}, QueryFlag._meta.get_field("guard_max_error_rate").default)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("guard_max_discrepancy_rate", -1, "-1 is not between 0 and 1"),  # would trip on every comparison
        ("guard_max_discrepancy_rate", 1e29, "1e+29 is not between 0 and 1"),  # would never trip
        ("guard_max_discrepancy_rate", "x", "'x' is not a number"),
        ("guard_max_latency_ratio", -2, "-2 is not 0 or more"),
        ("guard_window", 1.5, "1.5 is not a whole number"),
        ("guard_window", 10**30, "1000000000000000000000000000000 is not between 1 and 2147483647"),
        ("guard_min_sample", True, "True is not a whole number"),
        ("rescue_after", 2.5, "2.5 is not a whole number"),
    ],
)
def test_flags_apply_holds_guard_thresholds_to_the_guards_own_limits(field, value, message):
    with pytest.raises(OperationError) as refused:
        transfer.apply({"flags": {"bu_list": {field: value}}})
    assert str(refused.value) == f"flags.bu_list.{field}: {message}"
    before = QueryFlag._meta.get_field(field).default
    assert getattr(QueryFlag.objects.get(name="orm.bu_list"), field) == before
    with pytest.raises(OperationError, match=r"^max_error_rate: 'nan' is not a number$"):
        writes.set_guard("bu_list", max_error_rate="nan")


def test_moves_on_a_query_without_a_started_plan_are_refused_plainly():
    with pytest.raises(OperationError, match="bu_list: has no plan"):
        autopilot.start("bu_list")
    autopilot.set_plan("bu_list", {"stages": [{"name": "a"}]})
    with pytest.raises(OperationError, match="its plan has not started"):
        autopilot.skip("bu_list")
    with pytest.raises(CommandError, match="unknown query nope"):
        cli("plan", "nope")


def test_start_refuses_to_replace_what_an_operator_set_unless_forced_and_says_what_it_replaced():
    sites = ids_of("SITE", 2)
    writes.change_cohort("bu_list", "site", add=sites)
    writes.set_percent("bu_list", 10)
    autopilot.set_plan("bu_list", {"stages": [{"name": "shadow", "shadow": 100}, {"name": "all", "everyone": True}]})
    version = QueryFlag.objects.get(name="orm.bu_list").version
    with pytest.raises(CommandError) as refused:
        cli("plan", "bu_list", "--start")
    message = str(refused.value)
    assert message == (
        f"bu_list: starting its plan at 'shadow' would replace cohorts site {sorted(sites)}; percent 10 % set on its "
        "flag; pass --force to replace them"
    )
    flag = QueryFlag.objects.get(name="orm.bu_list")
    assert (flag.version, flag.plan_stage, flag.cohorts, float(flag.percent)) == (version, None, {"site": sites}, 10)
    with pytest.raises(CommandError, match="--force: only with --start"):
        cli("plan", "bu_list", "--force")
    # With --force it starts, and the history says what went.
    assert "> 1. shadow" in cli("plan", "bu_list", "--start", "--force")
    flag = QueryFlag.objects.get(name="orm.bu_list")
    assert (flag.plan_stage, flag.cohorts, float(flag.percent), float(flag.shadow_percent)) == (0, {}, 0, 100)
    started = FlagChange.objects.filter(flag_name="orm.bu_list").latest("id")
    assert started.reason == f"plan started: shadow; replaced cohorts site {sorted(sites)}; percent 10 %"
    assert started.changes["cohorts"] == [{"site": sites}, {}]
    # A flag with nothing of its own set starts without --force.
    autopilot.set_plan("sites_list_web", {"stages": [{"name": "shadow", "shadow": 100}]})
    assert autopilot.start("sites_list_web").plan_stage == 0


def test_start_refuses_when_the_flag_changed_between_its_look_and_its_write():
    autopilot.set_plan("bu_list", {"stages": [{"name": "shadow", "shadow": 100}]})
    [flag] = QueryFlag.objects.filter(name="orm.bu_list")
    the_plan = plan.of(flag)
    change = autopilot._to_stage(the_plan, 0, None, unpause=True, replacing=[])
    writes.set_percent("bu_list", 20)  # an operator, between start()'s read and its locked write
    with pytest.raises(OperationError, match="moved while this was asked"):
        writes.write(["orm.bu_list"], change)
    assert float(QueryFlag.objects.get(name="orm.bu_list").percent) == 20


def test_stop_takes_a_query_off_its_plan_leaving_its_flag_and_a_new_start_begins_at_the_first_stage():
    autopilot.set_plan("bu_list", {"stages": [{"name": "shadow", "shadow": 100}, {"name": "all", "everyone": True}]})
    autopilot.start("bu_list")
    autopilot.skip("bu_list")
    cli("plan", "bu_list", "--stop")
    flag = QueryFlag.objects.get(name="orm.bu_list")
    assert (flag.plan_stage, flag.everyone, bool(flag.plan)) == (None, True, True)
    assert not [move for move in autopilot.tick() if move.query == "bu_list"]
    with pytest.raises(OperationError, match="its plan has not started"):
        autopilot.back("bu_list")
    assert autopilot.start("bu_list", force=True).plan_stage == 0
