import json

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from query_backends.errors import QueryError
from query_backends.registry import BACKENDS, REGISTRY


def parse_assignments(pairs):
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--param {pair!r}: expected key=value")
        params[name] = value
    return params


class Command(BaseCommand):
    help = "Run one query on one backend and print its answer as JSON."

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"one of: {', '.join(REGISTRY.names())}")
        parser.add_argument("--backend", choices=BACKENDS, required=True)
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--pretty", action="store_true")

    def handle(self, *args, name, backend, param, pretty, **options):
        try:
            definition = REGISTRY.get(name)
            result = definition.run(backend, definition.clean(parse_assignments(param), parse=True))
        except QueryError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result, cls=DjangoJSONEncoder, indent=2 if pretty else None, ensure_ascii=False))
