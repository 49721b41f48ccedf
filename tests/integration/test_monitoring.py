"""monitoring/: the Prometheus rules pass promtool (check and unit tests), every series the rules and the
Grafana dashboard read is one /metrics exposes, and each carries the role its backend plays, whatever the query
calls it."""

import json
import os
import re
import shutil
import subprocess

import pytest
from django.db import connection

import rollout
from rollout.flags import writes
from rollout.flags.cache import flags
from rollout.metrics.rollups import metrics
from rollout.registry import REGISTRY
from rollout.routing.actors import Actor
from tests.rollout_helpers import ROOT

MONITORING = ROOT / "monitoring"
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
needs_promtool = pytest.mark.skipif(not PROMTOOL, reason="needs promtool (Debian's prometheus; .ci/run installs it)")


def dashboard_expressions():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    # Grafana's variables, replaced by what Grafana puts there, so promtool can parse the expression.
    return [
        target["expr"].replace("$__rate_interval", "5m").replace("$query", ".*")
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def promtool(*args, cwd=MONITORING):
    result = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@needs_promtool
def test_the_alerting_rules_pass_promtool_and_their_unit_tests():
    assert "SUCCESS: 4 rules found" in promtool("check", "rules", "rules.yml")
    promtool("test", "rules", "rules-test.yml")


@needs_promtool
def test_every_grafana_panel_expression_is_valid_promql(tmp_path):
    rules = {
        "groups": [
            {
                "name": "grafana",
                "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(dashboard_expressions())],
            }
        ]
    }
    (tmp_path / "panels.yml").write_text(json.dumps(rules))  # JSON is YAML
    promtool("check", "rules", "panels.yml", cwd=tmp_path)


@pytest.mark.django_db
def test_the_rules_and_the_dashboard_read_only_series_that_metrics_exposes(client):
    rollout.dispatch("bu_list", actor=Actor(person=1), bu_id=1)
    body = client.get("/metrics").content.decode()
    exposed = set(re.findall(r"^(rollout_\w+?)(?:\{| )", body, re.M))
    texts = [(MONITORING / "rules.yml").read_text(), *dashboard_expressions()]
    used = {name for text in texts for name in re.findall(r"\brollout_\w+", text)}
    assert used and used <= exposed, f"not exposed: {sorted(used - exposed)}"
    # …and select on labels it sets: a matcher on a label no series carries selects nothing, silently.
    labels = set(re.findall(r'[{,](\w+)="', body))
    selected = {label for text in texts for label in re.findall(r'[{,]\s*(\w+)\s*!?=~?"', text)}
    assert "role" in selected and selected <= labels, f"never set: {sorted(selected - labels)}"
    assert {"rollout_guard_tripped", "rollout_open_discrepancies", "rollout_drops_total"} <= used


@pytest.fixture
def host_query():
    """A host's adopted function (rollout.Query), served by its twin, which raises: its backends are "function"
    and "twin", not the legacy queries' "pg" and "orm"."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION q_doubled(p_n bigint) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT p_n * 2 $$"
        )

    def twin(p_n):
        raise RuntimeError("twin bug")

    rollout.register(rollout.Query(name="q_doubled", candidate=twin))
    writes.ensure_flags(names=["q_doubled"])
    writes.enable(["q_doubled"])
    flags.invalidate()
    yield
    REGISTRY.unregister("q_doubled")


@pytest.mark.django_db
def test_every_series_says_the_role_of_its_backend_whatever_the_query_calls_it(client, host_query):
    assert rollout.dispatch("q_doubled", p_n=21) == 42  # the control's answer, after the twin raised
    rollout.dispatch("bu_list", actor=Actor(person=1), bu_id=1)
    metrics.increment("q_unregistered", "twin", "calls")
    body = client.get("/metrics").content.decode()
    # What the rules select on (role="candidate"), for the host query as for the legacy one.
    assert 'rollout_fallbacks_total{backend="twin",query="q_doubled",role="candidate"} 1.0' in body
    assert 'rollout_calls_total{backend="function",query="q_doubled",role="control"} 1.0' in body
    assert 'rollout_calls_total{backend="pg",query="bu_list",role="control"} 1.0' in body
    assert re.search(
        r'rollout_latency_seconds\{backend="function",quantile="0.50",query="q_doubled",role="control"\}', body
    )
    # A query no longer registered has no role to tell: none is made up.
    assert 'rollout_calls_total{backend="twin",query="q_unregistered",role=""} 1.0' in body


@pytest.mark.django_db
def test_metrics_expose_the_guard_state_and_the_open_discrepancies(client, recorded_discrepancy):
    from rollout.models import QueryFlag
    from rollout.shadow import guard

    guard.trip(QueryFlag.objects.get(name="orm.bu_list"), "in a test")
    body = client.get("/metrics").content.decode()
    assert 'rollout_guard_tripped{query="bu_list"} 1.0' in body
    assert 'rollout_guard_tripped{query="job_needs"} 0.0' in body
    assert 'rollout_open_discrepancies{query="bu_list"} 1.0' in body


@pytest.fixture
def recorded_discrepancy(broken_bu_list):
    from rollout.shadow.queue import background

    rollout.dispatch("bu_list", actor=Actor(person=1), bu_id=1, fmt="array")
    background.drain()
