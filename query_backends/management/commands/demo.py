"""The whole rollout on a fresh machine: seed, then drive traffic through every stage of a real rollout.

This command is integration code: it joins the legacy domain (data, parameters,
a demo-only broken twin) to the rollout controller's public API.
"""

import contextlib
import dataclasses
import logging
import os
import random
import secrets
import statistics
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test.utils import override_settings
from tqdm import tqdm

from query_backends import generator
from query_backends.benchmark import sample_params
from query_backends.management import ports
from query_backends.models import GroupMembership, People
from query_backends.registry import REGISTRY
from rollout.experiments import query_name, registry
from rollout.metrics.rollups import current_minute, recorded_in_minute
from rollout.reports import as_json

DEMO_QUERY = "demo_broken_bu_list"
# The query the demo retires at the end: nothing in the database depends on fn_get_web_caps or names it.
RETIRED_QUERY = "web_capabilities"
PASSWORD_FILE = "demo-admin-password"  # in .data/, next to the embedded PostgreSQL; git-ignored
LEGEND = (
    "  control = the PL/pgSQL function (what serves today); candidate = its ORM twin.\n"
    "  comparisons: calls also run on the other side off the request path and compared; discrepancies: answers\n"
    "  that differed; noise: comparisons that could not judge (the data moved between the two runs); drops:\n"
    "  comparisons skipped because the shadow queue was full (the call itself is never delayed).\n"
    "  shadow 100 % asks for every call; the shadow budget (ROLLOUT_SHADOW_BUDGET, 10 % of the calls' own\n"
    "  database time) compares fewer when comparing every one would cost more, and the dashboard says so."
)
QUERIES = ("job_needs", "external_tour_job_needs", "bu_list", "sites_list_web", "asset_details", "web_capabilities")


def broken_twin(bu_id, up=True, down=True, fmt="text"):
    """A deliberately wrong twin: it forgets the last unit of every list. Demo-only, never the real twin."""
    answer = REGISTRY.get("bu_list").twin(bu_id, up, down, fmt)
    return answer.rsplit(" ", 1)[0] if isinstance(answer, str) and " " in answer else answer


class Command(BaseCommand):
    help = "Seed a legacy world and roll the ORM twins out stage by stage, printing what each stage did."

    def add_arguments(self, parser):
        parser.add_argument("--scale", choices=list(generator.SCALES), default="small")
        parser.add_argument("--calls", type=int, default=300, help="calls per stage")
        parser.add_argument("--skip-seed", action="store_true", help="use the legacy data already loaded")
        parser.add_argument(
            "--serve", action="store_true", help="then serve the admin and the dashboard with the demo's numbers"
        )
        parser.add_argument("--port", type=int, default=8000, help="the port --serve listens on (127.0.0.1)")

    def handle(self, *args, scale, calls, skip_seed, serve, port, **options):
        from rollout.flags import writes
        from rollout.flags.cache import flags
        from rollout.metrics.rollups import metrics
        from rollout.shadow.queue import background

        if serve:
            ports.usable(port)  # before a minute of stages, not after
        # Compared on threads of this process even where a broker is configured (REDIS_URL): the demo starts no
        # Celery worker, and what it shows, the broken twin's catch included, must be judged while it runs.
        settings.ROLLOUT_SHADOW_BACKEND = "thread"
        self.say("migrate")
        call_command("migrate", interactive=False, verbosity=0)
        if not skip_seed:
            self.say(f"seed the {scale} legacy world")
            call_command("seed_demo_data", scale=scale, reset=True, stdout=self.stdout)
        login = self.admin_login()
        pool = self.actor_pool()
        params = {q: [REGISTRY.get(q).clean(p) for p in sample_params(q, 40, seed=1)] for q in QUERIES}
        params = {q: ps for q, ps in params.items() if ps}
        self.flags, self.metrics, self.background = flags, metrics, background
        writes.ensure_flags("demo")
        names = list(params)
        stages = [
            ("1. PostgreSQL only: the control serves everyone", lambda: None),
            (
                "2. shadow 100 %: calls also compared, within the shadow budget",
                lambda: self.each(names, writes.set_shadow, 100),
            ),
            (
                "3. ORM for one site",
                lambda: [writes.change_cohort(q, "site", add=[pool[0].one("site")], source="demo") for q in names],
            ),
            ("4. ORM for 10 %", lambda: self.each(names, writes.set_percent, 10)),
            ("5. ORM for 50 %", lambda: self.each(names, writes.set_percent, 50)),
            ("6. ORM for everyone", lambda: [self.enable_unless_tripped(q) for q in names]),
        ]
        self.start_clean()
        self.stdout.write(LEGEND)
        rng = random.Random(7)
        # Each stage is counted in a minute of its own, the retirement's in this one, so the dashboard's
        # 15-minute range shows the stages side by side (they run seconds apart).
        now = current_minute()
        for number, (title, change) in enumerate(stages, 1):
            change()
            with recorded_in_minute(now - len(stages) - 2 + number):
                self.run_stage(title, names, params, pool, calls, rng)
        with recorded_in_minute(now - 1):
            discrepancy = self.broken_stage(params.get("bu_list", []), pool, calls, rng)
        with recorded_in_minute(now):
            retired = self.retire_stage(params, pool, calls, rng)
        try:
            self.where_to_look(discrepancy, retired, login, port, serve)
            if serve:
                self.stdout.flush()
                # In this process, so the demo's broken twin is still registered: its discrepancy can be replayed.
                call_command(
                    "runserver", f"127.0.0.1:{port}", use_reloader=False, insecure_serving=True, skip_checks=True
                )
        finally:
            REGISTRY.unregister(DEMO_QUERY)

    def start_clean(self):
        """A second run starts where the first did: the previous run's numbers, flags and demo query forgotten,
        the function it retired back."""
        from rollout.flags import writes

        bring_back_retired()
        writes.forget(DEMO_QUERY, source="demo", missing_ok=True)
        self.reset_flags()
        self.metrics.reset()

    def where_to_look(self, discrepancy, retired, login, port, serve):
        base = f"http://127.0.0.1:{port}/admin/rollout"
        self.say("done: what the demo left to see")
        if retired:
            kept = f"  {RETIRED_QUERY} is retired: {retired} dropped, its twin serves alone;\n"
        else:
            kept = f"  {RETIRED_QUERY} is not retired (see stage 8);\n"
        self.stdout.write(
            "  the other real queries stay where stage 6 left them: the twin serves everyone, still compared;\n"
            f"{kept}"
            f"  {DEMO_QUERY} (the demo's broken twin) stays on the control, its guard tripped.\n"
            f"  the stages, one minute each:  {base}/dashboard/?range=15m\n"
            f"  the guard's trip:             {base}/dashboard/{DEMO_QUERY}/?range=15m\n"
        )
        if discrepancy:
            self.stdout.write(
                f"  the catch:                    {base}/discrepancy/{discrepancy.id}/change/\n"
                "  the replay:                   the Replay button on that page"
                + ("" if serve else " (while `demo --serve` serves: the broken twin lives in its process)")
            )
        if retired:
            self.stdout.write(
                f"  the retirement:               stage 'retired' on {base}/dashboard/?range=15m,\n"
                "                                in `manage.py rollout status` and `manage.py rollout functions`\n"
                "                                (the next run of the demo brings the function back first)"
            )
        if serve:
            self.stdout.write(f"Serving the dashboard: {base}/dashboard/?range=15m  (login {login})\nCtrl-C stops it.")
        else:
            self.stdout.write(
                "Open it (or run the demo with --serve, which serves it at once):\n"
                f"  .venv/bin/python manage.py runserver 127.0.0.1:{port}\n"
                f"  http://127.0.0.1:{port}/admin/  (login {login})"
            )

    def say(self, text):
        self.stdout.write(self.style.MIGRATE_HEADING(f"== {text}"))

    @staticmethod
    def each(names, operation, value):
        return [operation(q, value, source="demo") for q in names]

    def enable_unless_tripped(self, query):
        """A query the guard sent back stays on the control: only clear-guard and an explicit enable undo a trip."""
        from rollout.flags import writes

        try:
            writes.enable([query], source="demo")
        except writes.GuardTripped as refused:
            self.stdout.write(f"  {query} stays on the control: {refused}")

    def admin_login(self):
        """The same login on every run: DEMO_ADMIN_PASSWORD, else a password made once and kept in .data/."""
        username = os.environ.get("DEMO_ADMIN_USER", "admin")
        if os.environ.get("DEMO_ADMIN_PASSWORD"):
            password, shown, where = os.environ["DEMO_ADMIN_PASSWORD"], "$DEMO_ADMIN_PASSWORD", "the environment"
        else:
            stored = Path(settings.BASE_DIR) / ".data" / PASSWORD_FILE
            if not stored.exists():
                stored.parent.mkdir(parents=True, exist_ok=True)
                stored.write_text(secrets.token_urlsafe(9) + "\n")
                stored.chmod(0o600)
            password = shown = stored.read_text().strip()
            where = f".data/{PASSWORD_FILE}; set DEMO_ADMIN_PASSWORD to choose your own"
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"admin login: {username} / {shown}  (from {where})")
        return f"{username} / {shown}"

    def actor_pool(self):
        from rollout.routing.actors import Actor

        people = list(
            People.objects.filter(id__gt=0, client_id__isnull=False, bu_id__gt=0).values_list(
                "id", "client_id", "bu_id"
            )[:2000]
        )
        groups = {}
        for person, group in (
            GroupMembership.objects.filter(people_id__in=[p[0] for p in people])
            .in_real_groups()
            .values_list("people_id", "pgroup_id")
        ):
            groups.setdefault(person, set()).add(group)
        return [Actor(person=p, client=c, site=s, people_group=groups.get(p, ())) for p, c, s in people]

    def reset_flags(self):
        """Every registered query's flag back to where a fresh install starts (the control for everyone, no
        shadow, no rule, no started plan), not only the demo's own: a newcomer's tries between two runs too."""
        from rollout import operations
        from rollout.flags import transfer, writes
        from rollout.lifecycle import autopilot
        from rollout.models import QueryFlag

        flags = operations.flags_for(registry().names())
        for flag in flags:
            query = query_name(flag.name)
            if flag.guard_tripped_at:
                writes.clear_guard(query, source="demo")
            if flag.plan_stage is not None:
                autopilot.stop(query, source="demo")
            writes.disable([query], source="demo")
        # A fresh install's values of what travels, but the note, the sticky key and the plan (a stored plan is the
        # operator's; a started one was stopped above); everyone was put back to unknown by disable.
        fresh = {
            field: QueryFlag._meta.get_field(field).get_default()
            for field in transfer.FIELDS
            if field not in ("everyone", "note", "percent_key", "plan")
        }
        transfer.apply({"flags": {query_name(flag.name): fresh for flag in flags}}, source="demo")
        self.flags.invalidate()

    def drive(self, names, params, pool, calls, rng, title):
        import rollout

        self.flags.invalidate()
        before = self.metrics.snapshot()
        served, latency = Counter(), {"control": [], "candidate": []}
        for _ in tqdm(range(calls), desc=title, file=sys.stderr, leave=False, disable=None):
            query = rng.choice(names)
            started = time.perf_counter()
            try:
                rollout.dispatch(query, actor=rng.choice(pool), **rng.choice(params[query]))
            except Exception as exc:  # noqa: BLE001 — the legacy data's own failures are part of the show
                served["error: " + type(exc).__name__] += 1
            role = rollout.last_decision().role
            served[role] += 1
            latency[role].append(time.perf_counter() - started)
        self.background.drain()
        time.sleep(1.1)  # the metrics flusher runs every second
        return served, latency, self.metrics.since(before, self.metrics.snapshot())

    def run_stage(self, title, names, params, pool, calls, rng):
        self.print_stage(title, *self.drive(names, params, pool, calls, rng, title))

    def print_stage(self, title, served, latency, counts):
        total = served["control"] + served["candidate"]
        if title:
            self.say(title)
        self.stdout.write(
            f"  calls {total:>5}   control {served['control'] / total:6.1%}   "
            f"candidate {served['candidate'] / total:6.1%}   "
            f"comparisons {counts['comparisons']:>4}   discrepancies {counts['discrepancies']:>3}   "
            f"noise {counts['noise']:>2}   drops {counts['drops']:>2}\n"
            f"  median latency: control {self.ms(latency['control'])}   candidate {self.ms(latency['candidate'])}"
        )

    @staticmethod
    def ms(values):
        return f"{statistics.median(values) * 1000:.2f} ms" if values else "-"

    def broken_stage(self, params, pool, calls, rng):
        """Roll out a deliberately broken twin; its flag, tripped guard and discrepancy stay for the dashboard.

        Returns the discrepancy shadow mode recorded, or None. The query stays registered in this process
        (the caller unregisters it), so the discrepancy can be replayed while the demo serves."""
        from rollout import operations
        from rollout.flags import writes
        from rollout.models import Discrepancy

        definition = dataclasses.replace(REGISTRY.get("bu_list"), name=DEMO_QUERY, twin=broken_twin)
        REGISTRY.register(definition)
        writes.ensure_flags("demo")
        writes.set_guard(DEMO_QUERY, window=50, min_sample=20, source="demo")
        writes.set_shadow(DEMO_QUERY, 100, source="demo")
        writes.enable([DEMO_QUERY], source="demo")
        title = "7. a broken twin (demo only), rolled out to everyone with shadow 100 %"
        # The budget would compare a drawn share of this stage's calls, and whether the guard gets its sample
        # would depend on the draw; the demo's broken twin is compared on every call, so every run shows the catch.
        with override_settings(ROLLOUT_SHADOW_BUDGET=0), expected_guard_trip():
            result = self.drive([DEMO_QUERY], {DEMO_QUERY: params}, pool, calls, rng, title)
        self.print_stage(title, *result)
        self.stdout.write("  (the shadow budget is off for this demo-only stage: every call is compared)")
        [flag] = operations.flags_for([DEMO_QUERY])
        if flag.guard_tripped_at:
            self.stdout.write(f"  the guard caught it, as this stage intends: {flag.guard_reason}")
            self.stdout.write(f"  {DEMO_QUERY} now: {'control for everyone' if flag.everyone is False else '?'}")
        record = Discrepancy.objects.filter(query=DEMO_QUERY).first()
        if record:
            example = record.latest()
            self.stdout.write(
                f"  discrepancy #{record.id}: {record.kind} ×{record.occurrences}, "
                f"params {as_json(example.params)}, diff {as_json(example.diff.get('value'))}"
            )
        return record

    def retire_stage(self, params, pool, calls, rng):
        """Retire one function, as `rollout retire` and `migrate` would, then drive its calls: the twin serves
        alone. Returns the dropped function's signature, or None when its twin does not serve everyone.

        `rollout retire` writes a migration into the app that owns the query; the demo does not. A file left in
        the checkout would show in `git status`, and every later `migrate` (the test suite's included) would drop
        the function too. So the demo runs the migration's own steps here (rollout.lifecycle.retire: the flag
        retired, the wait for every process, DROP FUNCTION), and its next run undoes them as migrating back
        would (bring_back_retired). Its readiness check is printed first: it says NOT READY, since the demo's
        stages last seconds where retirement asks for a week, and the demo goes on as `--force` would."""
        from rollout import operations, reports
        from rollout.lifecycle import readiness, retire
        from rollout.postgres import inventory

        title = f"8. retire {RETIRED_QUERY}: its function dropped, the twin serves with no flag decision"
        [flag] = operations.flags_for([RETIRED_QUERY])
        self.say(title)
        if flag.everyone is not True or RETIRED_QUERY not in params:
            self.stdout.write(f"  not retired: its twin does not serve everyone ({reports.serving(flag)})")
            return None
        self.stdout.write(f"  `rollout retire {RETIRED_QUERY} --check` first:")
        self.stdout.write(textwrap.indent(readiness.check(RETIRED_QUERY).text(), "    "))
        self.stdout.write(
            "  the demo's stages last seconds, not a week: it retires the function anyway, as `--force` would,\n"
            "  running the steps of the migration `rollout retire` writes (none is written into this checkout)"
        )
        signature = readiness.control_function(RETIRED_QUERY)
        retire.retire_flag(
            RETIRED_QUERY,
            "the demo's stage 8",
            source="demo",
            undo="run `manage.py demo` again (the demo retired it with no migration; its next run brings it back)",
        )
        retire.wait_for_every_process()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP FUNCTION {signature}")
        self.print_stage(None, *self.drive([RETIRED_QUERY], params, pool, calls, rng, title))
        status = [row for row in reports.status() if row["query"] == RETIRED_QUERY]
        self.stdout.write("  `rollout status`:\n" + textwrap.indent(reports.status_table(status), "    "))
        found = inventory.inventory()
        found["functions"] = [row for row in found["functions"] if row["query"] == RETIRED_QUERY]
        self.stdout.write("  `rollout functions`:\n" + textwrap.indent(inventory.text(found), "    "))
        return signature


def _retired_by_a_migration(query):
    """Whether a retirement migration of the query is applied: the operator's, not the demo's to undo."""
    applied = MigrationRecorder(connection).applied_migrations()
    return any(name.endswith(f"_retire_{query}") for _, name in applied)


def bring_back_retired():
    """Undo the demo's retirement, as migrating back would: the function created again when it is missing (from
    its source in query_backends/sql/, the legacy domain's own), then the flag given back the state it had. A
    retirement a migration applied is the operator's: left alone (the demo then stops, saying the flag is
    retired)."""
    from rollout import operations
    from rollout.lifecycle import retire
    from rollout.postgres import dependencies

    if _retired_by_a_migration(RETIRED_QUERY):
        return
    function = REGISTRY.get(RETIRED_QUERY).function
    if dependencies.find(function.signature) is None:
        with connection.cursor() as cursor:
            cursor.execute(function.source)
    [flag] = operations.flags_for([RETIRED_QUERY])
    if flag.retired_at is not None:
        retire.restore_flag(RETIRED_QUERY, source="demo", reason="the demo brings its function back")


@contextlib.contextmanager
def expected_guard_trip():
    """The guard logs a trip as an error; here the trip is the point of the stage, reported in the demo's words."""
    guard_logger = logging.getLogger("rollout.shadow.guard")

    def not_the_trip(record):
        return not record.getMessage().startswith("guard tripped")

    guard_logger.addFilter(not_the_trip)
    try:
        yield
    finally:
        guard_logger.removeFilter(not_the_trip)
