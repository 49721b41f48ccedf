import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from tqdm import tqdm

from query_backends.registry import REGISTRY
from rollout.validation import sample_cases, validate_query

DEFAULT_LIMIT = 5000


class Command(BaseCommand):
    help = (
        "Run every query on both backends over the data in the database and compare; non-zero exit on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("--queries", help="comma-separated query names (default: all)")
        parser.add_argument("--json", dest="json_path", help="write the report here")
        parser.add_argument(
            "--limit-per-query",
            type=int,
            default=DEFAULT_LIMIT,
            help=f"sample at most N cases per query, deterministically (default {DEFAULT_LIMIT})",
        )

    def handle(self, *args, queries, json_path, limit_per_query, **options):
        names = REGISTRY.names() if not queries else [q.strip() for q in queries.split(",") if q.strip()]
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise CommandError(f"--queries: unknown query {', '.join(unknown)}; known: {', '.join(REGISTRY.names())}")
        if limit_per_query < 1:
            raise CommandError("--limit-per-query must be at least 1")
        reports = []
        for name in names:
            cases = sample_cases(name, limit_per_query)
            with tqdm(total=len(cases), desc=f"{name:>24}", unit="case", file=sys.stderr, disable=None) as bar:
                reports.append(validate_query(name, cases, on_case=lambda: bar.update(1)))
        self.stdout.write(f"{'query':<26}{'cases':>8}{'equal':>8}{'different':>11}{'both failed':>13}{'seconds':>9}")
        for r in reports:
            self.stdout.write(f"{r.query:<26}{r.cases:>8}{r.equal:>8}{r.different:>11}{r.errors:>13}{r.seconds:>9.2f}")
            for kind in r.examples:
                self.stdout.write(f"    difference: {kind}")
        if json_path:
            with open(json_path, "w") as handle:
                json.dump([r.as_dict() for r in reports], handle, cls=DjangoJSONEncoder, indent=2, default=str)
        different = sum(r.different for r in reports)
        if different:
            raise CommandError(f"{different} case(s) differ between the function and the twin")
        self.stdout.write(self.style.SUCCESS("the function and the twin agree on every case"))
