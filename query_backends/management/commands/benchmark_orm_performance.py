import importlib.util
import json
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from query_backends.benchmark import loaded_scale, measure, sample_params
from query_backends.registry import REGISTRY

TARGETS = {"twin/function": 1.0, "cached/function": 0.05, "twin/floor": 1.3}


def verdict(value, target):
    return "met" if value <= target else "MISSED"


NEEDS_MATPLOTLIB = '--plot needs matplotlib, from the [bench] extra: .venv/bin/pip install -e ".[bench]"'


class Command(BaseCommand):
    help = "Benchmark the functions, the twins (uncached and cached) and the hand-written floor, interleaved."

    def add_arguments(self, parser):
        parser.add_argument("--iterations", type=int, default=100)
        parser.add_argument("--warmup", type=int, default=10)
        parser.add_argument("--queries", help="comma-separated (default: all)")
        parser.add_argument("--json", dest="json_path")
        parser.add_argument("--plot", dest="plot_path", help="PNG chart of the ratios (needs matplotlib)")
        parser.add_argument("--skip-router", action="store_true", help="skip the router and shadow measurements")

    def handle(self, *args, iterations, warmup, queries, json_path, plot_path, skip_router, **options):
        # The debug cursor times and logs every query: it would tax the twins and not the functions.
        settings.DEBUG = False
        if plot_path and importlib.util.find_spec("matplotlib") is None:
            raise CommandError(NEEDS_MATPLOTLIB)  # now, not after minutes of measuring
        if iterations < 1 or warmup < 0:
            raise CommandError("--iterations must be at least 1 and --warmup at least 0")
        names = REGISTRY.names() if not queries else [q.strip() for q in queries.split(",") if q.strip()]
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise CommandError(f"--queries: unknown query {', '.join(unknown)}")
        scale, jobneeds = loaded_scale()
        self.stdout.write(f"dataset: {scale} ({jobneeds:,} jobneeds); {iterations} iterations, {warmup} warm-up")
        results = []
        for name in tqdm(names, desc="queries", file=sys.stderr):
            result = measure(name, iterations, warmup)
            if result is None:
                self.stdout.write(f"{name}: no parameters to sample in this dataset")
            else:
                results.append(result)
        self.stdout.write(self.table(results))
        report = {"dataset": scale, "jobneeds": jobneeds, "iterations": iterations, "queries": results}
        if not skip_router:
            from rollout.benchmark import measure_router

            router = measure_router(names[0], REGISTRY.get(names[0]).clean(sample_params(names[0], 1)[0]))
            report["router"] = router
            self.stdout.write("router: " + ", ".join(f"{k} {v:.4g}" for k, v in router.items()))
        if json_path:
            with open(json_path, "w") as handle:
                json.dump(report, handle, indent=2, default=str)
        if plot_path:
            self.plot(results, plot_path, scale)

    def table(self, results):
        head = (
            f"{'query':<24}{'fn ms':>8}{'twin ms':>9}{'cache ms':>9}{'floor ms':>9}{'twin/fn':>9}"
            f"{'cache/fn':>9}{'twin/fl':>8}{'q':>3}{'rows':>6}  verdicts"
        )
        lines = [head]
        for r in results:
            verdicts = " ".join(f"{k}:{verdict(r[k], t)}" for k, t in TARGETS.items())
            lines.append(
                f"{r['query']:<24}{r['function']['median_ms']:>8.2f}{r['twin']['median_ms']:>9.2f}"
                f"{r['cached']['median_ms']:>9.3f}{r['floor']['median_ms']:>9.2f}{r['twin/function']:>9.2f}"
                f"{r['cached/function']:>9.3f}{r['twin/floor']:>8.2f}{r['queries_per_twin_call']:>3}"
                f"{r['rows_median']:>6.0f}  {verdicts} queries:{verdict(r['queries_per_twin_call'], 2)}"
            )
        return "\n".join(lines)

    def plot(self, results, path, scale):
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise CommandError(NEEDS_MATPLOTLIB) from None
        names = [r["query"] for r in results]
        fig, ax = plt.subplots(figsize=(11, 5))
        width = 0.38
        xs = range(len(names))
        ax.bar([x - width / 2 for x in xs], [r["twin/function"] for r in results], width, label="twin / function")
        ax.bar([x + width / 2 for x in xs], [r["cached/function"] for r in results], width, label="cached / function")
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_xticks(list(xs), names, rotation=30, ha="right")
        ax.set_ylabel("median latency ratio (lower is faster)")
        ax.set_title(f"ORM twin vs PostgreSQL function, {scale} data")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
