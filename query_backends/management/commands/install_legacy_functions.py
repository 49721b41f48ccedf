"""Install the legacy functions from query_backends/sql/, or with --check report what is missing."""

from django.core.management.base import BaseCommand, CommandError

from query_backends.functions import FUNCTIONS, install, installation_problems


class Command(BaseCommand):
    help = (
        "Create (or replace) the nine legacy PL/pgSQL functions from query_backends/sql/*.sql; idempotent. "
        "With --check, change nothing and exit non-zero naming each function missing or with another signature."
    )

    requires_system_checks = []  # the repair must run whatever the checks say

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="only compare; exit 1 when something is missing")

    def handle(self, *args, check=False, **options):
        problems = installation_problems()
        if check:
            if problems:
                raise CommandError("; ".join(problems.values()) + " — run `manage.py install_legacy_functions`")
            self.stdout.write(f"all {len(FUNCTIONS)} legacy functions are installed")
            return
        install()
        left = installation_problems()
        if left:  # e.g. a function of the same name and arguments but another return type
            raise CommandError("; ".join(left.values()))
        repaired = ", ".join(problems) if problems else "nothing was missing"
        self.stdout.write(f"installed the {len(FUNCTIONS)} legacy functions from query_backends/sql/ ({repaired})")
