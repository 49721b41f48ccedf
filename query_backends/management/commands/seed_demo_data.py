import time

from django.core.management.base import BaseCommand, CommandError

from query_backends import generator


class Command(BaseCommand):
    help = "Load a realistic, deterministic legacy world (COPY) at the given scale, or add big shapes to the data."

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale", choices=sorted(generator.SCALES, key=lambda s: generator.SCALES[s].jobneeds), default="small"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--reset", action="store_true", help="empty the legacy tables (sentinels kept) first")
        parser.add_argument(
            "--shape",
            action="append",
            default=[],
            metavar="KIND:N",
            help="instead of a world, add a client with N units (bu-tree:N) or a site with N assets (site-assets:N) "
            "to the data present; repeatable",
        )

    def handle(self, *args, scale, seed, reset, shape, **options):
        if reset:
            generator.reset()
        if shape:
            return self.load_shapes(shape, seed)
        if not reset and generator.legacy_rows_exist():
            raise CommandError("the legacy tables already hold data: pass --reset to replace it")
        started = time.perf_counter()
        counts = generator.load(scale, seed=seed)
        elapsed = time.perf_counter() - started
        self.stdout.write(f"Loaded scale {scale!r} (seed {seed}) in {elapsed:.1f} s:")
        for table, count in counts.items():
            self.stdout.write(f"  {table:<16}{count:>10,}")

    def load_shapes(self, specs, seed):
        for spec in specs:
            started = time.perf_counter()
            try:
                ids, counts = generator.load_shape(spec, seed=seed)
            except ValueError as error:
                raise CommandError(str(error)) from None
            rows = ", ".join(f"{table} {count:,}" for table, count in counts.items())
            ids_text = " ".join(f"{name}={value}" for name, value in ids.items() if name != "id_ranges")
            self.stdout.write(f"Loaded shape {spec} in {time.perf_counter() - started:.1f} s: {ids_text} ({rows})")
