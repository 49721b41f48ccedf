"""Install (repair) the legacy functions from query_backends/sql/. `rollout functions --check` says what is missing."""

from django.core.management.base import BaseCommand, CommandError

from query_backends.functions import FUNCTIONS, install, installation_problems


class Command(BaseCommand):
    help = (
        "Create (or replace) the nine legacy PL/pgSQL functions from query_backends/sql/*.sql; idempotent. "
        "`manage.py rollout functions --check` exits non-zero naming each registered function that is missing."
    )

    requires_system_checks = []  # the repair must run whatever the checks say

    def handle(self, *args, **options):
        problems = installation_problems()
        install()
        left = installation_problems()
        if left:  # e.g. a function of the same name and arguments but another return type
            raise CommandError("; ".join(left.values()))
        repaired = ", ".join(problems) if problems else "nothing was missing"
        self.stdout.write(f"installed the {len(FUNCTIONS)} legacy functions from query_backends/sql/ ({repaired})")
