"""The whole rollout on a fresh machine: seed, then drive traffic through every stage of a real rollout.

This command is integration code: it joins the legacy domain (data, parameters,
a demo-only broken twin) to the rollout controller's public API.
"""

import dataclasses
import os
import random
import secrets
import statistics
import sys
import time
from collections import Counter

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from query_backends import generator
from query_backends.benchmark import sample_params
from query_backends.models import GroupMembership, People
from query_backends.registry import REGISTRY

DEMO_QUERY = "demo_broken_bu_list"
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

    def handle(self, *args, scale, calls, skip_seed, **options):
        from rollout import operations
        from rollout.background import background
        from rollout.flag_cache import flags
        from rollout.metrics import metrics

        self.say("migrate")
        call_command("migrate", interactive=False, verbosity=0)
        if not skip_seed:
            self.say(f"seed the {scale} legacy world")
            call_command("seed_demo_data", scale=scale, reset=True, stdout=self.stdout)
        login = self.admin_login()
        pool = self.actor_pool()
        params = {q: [REGISTRY.get(q).clean(p) for p in sample_params(q, 40, seed=1)] for q in QUERIES}
        params = {q: ps for q, ps in params.items() if ps}
        self.operations, self.flags, self.metrics, self.background = operations, flags, metrics, background
        operations.ensure_flags("demo")
        names = list(params)
        stages = [
            ("1. PostgreSQL only", lambda: None),
            ("2. shadow 100 %", lambda: [operations.set_shadow(q, 100, source="demo") for q in names]),
            (
                "3. ORM for one site",
                lambda: [operations.change_cohort(q, "sites", add=[pool[0].site_id], source="demo") for q in names],
            ),
            ("4. ORM for 10 %", lambda: [operations.set_percent(q, 10, source="demo") for q in names]),
            ("5. ORM for 50 %", lambda: [operations.set_percent(q, 50, source="demo") for q in names]),
            ("6. ORM for everyone", lambda: operations.enable(names, source="demo")),
        ]
        self.reset_flags(names)
        rng = random.Random(7)
        for title, change in stages:
            change()
            self.run_stage(title, names, params, pool, calls, rng)
        self.broken_stage(params.get("bu_list", []), pool, calls, rng)
        self.reset_flags(names)
        self.say("done")
        self.stdout.write(
            "Open the dashboard:\n  .venv/bin/python manage.py runserver 127.0.0.1:8000\n"
            f"  http://127.0.0.1:8000/admin/rollout/dashboard/  (login {login})"
        )

    def say(self, text):
        self.stdout.write(self.style.MIGRATE_HEADING(f"== {text}"))

    def admin_login(self):
        username = os.environ.get("DEMO_ADMIN_USER", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        shown = password if "DEMO_ADMIN_PASSWORD" not in os.environ else "(DEMO_ADMIN_PASSWORD)"
        self.stdout.write(f"admin login: {username} / {shown}")
        return f"{username} / {shown}"

    def actor_pool(self):
        from rollout.actors import Actor

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
        return [
            Actor(person_id=p, client_id=c, site_id=s, group_ids=frozenset(groups.get(p, ()))) for p, c, s in people
        ]

    def reset_flags(self, names):
        from rollout import guard

        for flag in self.operations.flags_for(names):
            guard.clear(flag, source="demo")
            flag.everyone, flag.percent, flag.shadow_percent, flag.sites = None, 0, 0, []
            flag.save()
        self.flags.invalidate()

    def drive(self, names, params, pool, calls, rng, title):
        import rollout

        self.flags.invalidate()
        before = self.metrics.snapshot()
        served, latency = Counter(), {"pg": [], "orm": []}
        for _ in tqdm(range(calls), desc=title, file=sys.stderr, leave=False):
            query = rng.choice(names)
            started = time.perf_counter()
            try:
                rollout.dispatch(query, actor=rng.choice(pool), **rng.choice(params[query]))
            except Exception as exc:  # noqa: BLE001 — the legacy data's own failures are part of the show
                served["error: " + type(exc).__name__] += 1
            backend = rollout.last_decision().backend
            served[backend] += 1
            latency[backend].append(time.perf_counter() - started)
        self.background.drain()
        time.sleep(1.1)  # the metrics flusher runs every second
        return served, latency, self.metrics.since(before, self.metrics.snapshot())

    def run_stage(self, title, names, params, pool, calls, rng):
        self.print_stage(title, *self.drive(names, params, pool, calls, rng, title))

    def print_stage(self, title, served, latency, counts):
        total = served["pg"] + served["orm"]
        self.say(title)
        self.stdout.write(
            f"  calls {total:>5}   pg {served['pg'] / total:6.1%}   orm {served['orm'] / total:6.1%}   "
            f"comparisons {counts['comparisons']:>4}   discrepancies {counts['discrepancies']:>3}   "
            f"noise {counts['noise']:>2}   drops {counts['drops']:>2}\n"
            f"  median latency: pg {self.ms(latency['pg'])}   orm {self.ms(latency['orm'])}"
        )

    @staticmethod
    def ms(values):
        return f"{statistics.median(values) * 1000:.2f} ms" if values else "-"

    def broken_stage(self, params, pool, calls, rng):
        from rollout import guard
        from rollout.models import Discrepancy, QueryFlag

        definition = dataclasses.replace(REGISTRY.get("bu_list"), name=DEMO_QUERY, twin=broken_twin)
        REGISTRY.register(definition)
        try:
            self.operations.ensure_flags("demo")
            flag = QueryFlag.objects.get(name=f"orm.{DEMO_QUERY}")
            guard.clear(flag, source="demo")  # a trip from an earlier run must not hide this one
            Discrepancy.objects.filter(query=DEMO_QUERY).delete()
            flag.everyone, flag.shadow_percent, flag.guard_min_sample, flag.guard_window = True, 100, 20, 50
            flag.save()
            title = "7. a broken twin, rolled out to everyone with shadow 100 %"
            self.print_stage(title, *self.drive([DEMO_QUERY], {DEMO_QUERY: params}, pool, calls, rng, title))
            flag.refresh_from_db()
            if flag.guard_tripped_at:
                self.stdout.write(self.style.ERROR(f"  guard tripped: {flag.guard_reason}"))
                self.stdout.write(f"  {DEMO_QUERY} now: {'control for everyone' if flag.everyone is False else '?'}")
            record = Discrepancy.objects.filter(query=DEMO_QUERY).first()
            if record:
                example = record.latest()
                self.stdout.write(
                    f"  discrepancy #{record.id}: {record.kind} ×{record.occurrences}, "
                    f"params {example.params}, diff {example.diff.get('value')}"
                )
        finally:
            REGISTRY.unregister(DEMO_QUERY)
