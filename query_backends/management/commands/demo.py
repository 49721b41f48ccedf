from django.core.management import call_command
from django.core.management.base import BaseCommand

from query_backends import generator


class Command(BaseCommand):
    help = "Migrate, load the small legacy world and show what was loaded."

    def add_arguments(self, parser):
        parser.add_argument("--scale", choices=list(generator.SCALES), default="small")

    def handle(self, *args, scale, **options):
        self.stdout.write("== migrate")
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"== seed {scale}")
        call_command("seed_demo_data", scale=scale, reset=True, stdout=self.stdout)
