import time

from django.core.management.base import BaseCommand, CommandError

from query_backends import generator


class Command(BaseCommand):
    help = "Load a realistic, deterministic legacy world (COPY) at the given scale."

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale", choices=sorted(generator.SCALES, key=lambda s: generator.SCALES[s].jobneeds), default="small"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--reset", action="store_true", help="empty the legacy tables (sentinels kept) first")

    def handle(self, *args, scale, seed, reset, **options):
        if reset:
            generator.reset()
        elif generator.legacy_rows_exist():
            raise CommandError("the legacy tables already hold data: pass --reset to replace it")
        started = time.perf_counter()
        counts = generator.load(scale, seed=seed)
        elapsed = time.perf_counter() - started
        self.stdout.write(f"Loaded scale {scale!r} (seed {seed}) in {elapsed:.1f} s:")
        for table, count in counts.items():
            self.stdout.write(f"  {table:<16}{count:>10,}")
