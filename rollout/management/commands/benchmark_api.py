"""What the API itself costs: a token-authenticated call answered from the cache vs Django's JSON 404 under /api/.

Both go through the whole middleware stack in this process (Django's test client, so no network), interleaved,
alternating which runs first each round, the API call rotating over the parameter sets given. The candidate
serves everyone for the run (the flag is pinned in this process only, never written) so every call is a cache
hit; the command checks that it is, and counts the queries a warm call makes. A token is issued for the run and
deleted after it (and the user too, when the command created it): nothing is left behind.
"""

import dataclasses
import logging
import os
from urllib.parse import parse_qsl

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from rollout.experiments import flag_name, get_experiment
from rollout.flags.cache import flags
from rollout.flags.state import FlagState
from rollout.models import ApiToken
from rollout.routing.benchmark import paired

NOT_FOUND_PATH = "/api/no-such-endpoint"


def _load():
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "n/a"


class Command(BaseCommand):
    help = "Benchmark the API's own cost: a cache-hit API call vs Django's JSON 404, interleaved in one process."

    def add_arguments(self, parser):
        parser.add_argument("query")
        parser.add_argument("--user", required=True, help="the user the token is for (created for the run if absent)")
        parser.add_argument(
            "--params", action="append", required=True, metavar="A=1&B=2", help="a parameter set; repeat to rotate"
        )
        parser.add_argument("--rounds", type=int, default=2000)

    def handle(self, query, user, params, rounds, **options):
        if rounds < 2:
            raise CommandError("--rounds: must be at least 2")
        if settings.DEBUG:
            raise CommandError(
                "DEBUG is on: set DEBUG=0 (Django answers a 404 with its debug page, and keeps every query)"
            )
        try:
            experiment = get_experiment(query)
            param_sets = [dict(parse_qsl(p, strict_parsing=True)) for p in params]
            cleaned = [experiment.clean(p, parse=True) for p in param_sets]
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        users = get_user_model().objects
        account, created = users.get_or_create(**{get_user_model().USERNAME_FIELD: user})
        key = ApiToken.issue(account)
        try:
            state = flags.get(flag_name(query)) or FlagState(flag_name(query))
            with flags.pinned(dataclasses.replace(state, everyone=True, shadow_percent=0.0)):
                self._measure(experiment, query, key, param_sets, cleaned, rounds)
        finally:
            ApiToken.objects.filter(digest=ApiToken._digest(key)).delete()
            if created:
                account.delete()

    def _measure(self, experiment, query, key, param_sets, cleaned, rounds):
        hosts = [h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")]
        client = Client(HTTP_HOST=hosts[0] if hosts else "localhost", HTTP_AUTHORIZATION=f"Token {key}")
        url = f"/api/queries/{query}"

        def api(params):
            response = client.get(url, params)
            if response.status_code != 200:
                raise CommandError(f"{url} {params}: {response.status_code} {response.content[:200]!r}")

        def not_found(params):
            if client.get(NOT_FOUND_PATH).status_code != 404:
                raise CommandError(f"{NOT_FOUND_PATH} did not answer 404")

        for params, clean in zip(param_sets, cleaned, strict=True):
            api(params)  # warm: the answer, the caller, the owners of its parts
            api(params)
            if not experiment.cached_answer(experiment.candidate, clean)[0]:
                raise CommandError(f"{query} {params}: not answered from the cache (is it cached at all?)")
        queries = 0
        for params in param_sets:  # one request per context: Django empties the query log as a request starts
            with CaptureQueriesContext(connection) as captured:
                api(params)
            queries += len(captured)
        load_before = _load()
        # Django logs every 404 at WARNING: silenced, so the 404 is the cheapest answer the stack gives.
        request_log = logging.getLogger("django.request")
        level, request_log.level = request_log.level, logging.ERROR
        try:
            api_median, not_found_median = paired(api, not_found, param_sets, rounds)
        finally:
            request_log.setLevel(level)
        self.stdout.write(
            f"{query}, {len(param_sets)} parameter set(s), {rounds} rounds, DEBUG={settings.DEBUG}\n"
            f"  warm API call: {queries / len(param_sets):.1f} queries\n"
            f"  API call (cache hit) median {api_median * 1e6:.0f} µs\n"
            f"  JSON 404 under /api/ median {not_found_median * 1e6:.0f} µs\n"
            f"  ratio {api_median / not_found_median:.2f}x\n"
            f"  load average {load_before} before, {_load()} after"
        )
