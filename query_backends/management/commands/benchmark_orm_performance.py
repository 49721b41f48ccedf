import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from query_backends.benchmark import RATIOS, growth, loaded_scale, measure, merged_passes, slower_than
from query_backends.registry import REGISTRY

GROWTH_PASSES = 2  # --growth-db: passes per query, the databases' order mirrored each time
TARGETS = {"twin/function": 1.0, "memory_hit/function": 0.05, "redis_hit/function": 0.05, "twin/floor": 1.25}
COLUMNS = (  # heading, width, side or ratio
    ("fn ms", 8, "function"),
    ("twin ms", 9, "twin"),
    ("mem hit", 9, "memory_hit"),
    ("redis hit", 10, "redis_hit"),
    ("floor ms", 9, "floor"),
    ("twin/fn", 8, "twin/function"),
    ("mem/fn", 8, "memory_hit/function"),
    ("redis/fn", 9, "redis_hit/function"),
    ("twin/fl", 8, "twin/floor"),
)


NEEDS_MATPLOTLIB = '--plot needs matplotlib, from the [bench] extra: .venv/bin/pip install -e ".[bench]"'


def verdict(value, target):
    return "met" if value <= target else "MISSED"


def cell(result, key, width):
    value = result[key] if key in RATIOS else (result["sides"].get(key) or {}).get("median_ms")
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


class Command(BaseCommand):
    help = (
        "Benchmark the functions, the twins, each cache tier's hit and the hand-written floor: interleaved, "
        "with rotating parameters."
    )

    def add_arguments(self, parser):
        parser.add_argument("--iterations", type=int, default=100, help="rounds (every side once per round)")
        parser.add_argument("--warmup", type=int, default=10)
        parser.add_argument(
            "--param-sets", type=int, default=50, help="parameter sets sampled per query, rotated (default 50)"
        )
        parser.add_argument("--queries", help="comma-separated (default: all)")
        parser.add_argument("--json", dest="json_path")
        parser.add_argument("--baseline", help="a previous --json report: print what got slower since")
        parser.add_argument(
            "--tolerance", type=float, default=0.10, help="with --baseline, growth to ignore (default 0.10)"
        )
        parser.add_argument(
            "--growth", nargs="+", metavar="REPORT", help="print the growth table of saved --json reports and stop"
        )
        parser.add_argument(
            "--growth-db",
            nargs="+",
            metavar="DATABASE_URL",
            help="instead: measure every query on each of these databases in turn, query by query (so the load "
            "drifts less between them), print each one's table and the growth table; --json writes the reports",
        )
        parser.add_argument("--plot", dest="plot_path", help="PNG chart of the ratios (needs matplotlib)")
        parser.add_argument("--skip-router", action="store_true", help="skip the router and shadow measurements")
        parser.add_argument(
            "--router-only",
            action="store_true",
            help="instead: only the router's costs (dispatch vs a direct call of the function, shadow vs none) for "
            "each query, --iterations rounds per pair over --param-sets rotating sets",
        )
        parser.add_argument(
            "--explain",
            action="store_true",
            help="instead: print EXPLAIN (ANALYZE, BUFFERS) of the generic plans of function, twin and floor for "
            "one sampled parameter set per query (--seed picks which)",
        )
        parser.add_argument("--seed", type=int, default=0, help="which parameter sets are sampled (default 0)")
        parser.add_argument(
            "--shape",
            action="append",
            default=[],
            metavar="KIND:N",
            help="instead: load bu-tree:N or site-assets:N, time function and twin and their peak memory, remove it",
        )

    def handle(self, *args, iterations, warmup, param_sets, queries, json_path, baseline, tolerance, **options):
        # The debug cursor times and logs every query: it would tax the twins and not the functions.
        settings.DEBUG = False
        if options["shape"]:
            return self.shapes(options["shape"], json_path)
        if options["plot_path"] and importlib.util.find_spec("matplotlib") is None:
            raise CommandError(NEEDS_MATPLOTLIB)  # now, not after minutes of measuring
        if options["growth"]:
            reports = [report for path in options["growth"] for report in self.read_reports(path, "--growth")]
            self.stdout.write("\n".join(growth(reports)))
            return
        if iterations < 1 or warmup < 0 or param_sets < 1:
            raise CommandError("--iterations and --param-sets must be at least 1 and --warmup at least 0")
        names = REGISTRY.names() if not queries else [q.strip() for q in queries.split(",") if q.strip()]
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise CommandError(f"--queries: unknown query {', '.join(unknown)}")
        if options["explain"]:
            return self.explain(names, options["seed"])
        if options["router_only"]:
            return self.router_only(names, iterations, param_sets, options["seed"])
        if options["growth_db"]:
            return self.growth_dbs(options["growth_db"], names, iterations, warmup, param_sets, options, json_path)
        previous = self.read_report(baseline, "--baseline") if baseline else None
        scale, jobneeds = loaded_scale()
        self.stdout.write(
            f"dataset: {scale} ({jobneeds:,} jobneeds); {iterations} rounds, {warmup} warm-up, "
            f"up to {param_sets} rotating parameter sets"
        )
        results = []
        for name in tqdm(names, desc="queries", file=sys.stderr, disable=None):
            result = measure(name, iterations, warmup, param_sets, seed=options["seed"])
            if result is None:
                self.stdout.write(f"{name}: no parameters to sample in this dataset")
            else:
                results.append(result)
        self.stdout.write(self.table(results))
        report = {"dataset": scale, "jobneeds": jobneeds, "iterations": iterations, "queries": results}
        if not options["skip_router"] and results:
            from rollout.routing.benchmark import measure_router

            first = REGISTRY.get(results[0]["query"])
            sets = [first.clean(p) for p in first.sample(param_sets, seed=1)]
            router = measure_router(first.name, sets)
            report["router"] = router
            self.stdout.write(f"router ({first.name}): " + ", ".join(f"{k} {v:.4g}" for k, v in router.items()))
        if previous is not None:
            lines = slower_than(report, previous, tolerance)
            if lines:
                self.stdout.write("\n".join([f"slower than {baseline} by more than {tolerance:.0%}:", *lines]))
            else:
                self.stdout.write(f"nothing slower than {baseline} by more than {tolerance:.0%}")
        if json_path:
            with open(json_path, "w") as handle:
                json.dump(report, handle, indent=2, default=str)
        if options["plot_path"]:
            self.plot(results, options["plot_path"], scale)

    def growth_dbs(self, urls, names, iterations, warmup, param_sets, options, json_path):
        """Each query on each database, each run in its own process (its own connections and plans), in
        GROWTH_PASSES passes whose order of databases mirrors the last (A B, B A): a load that rises or falls
        during a query's passes weighs on every database alike. The passes' results are merged per database
        (merged_passes) and the reports per database."""
        reports = [None] * len(urls)
        arguments = ["--iterations", iterations, "--warmup", warmup, "--param-sets", param_sets, "--seed"]
        arguments = [*map(str, arguments), str(options["seed"]), "--skip-router"]
        manage = Path(settings.BASE_DIR) / "manage.py"
        with tempfile.TemporaryDirectory() as scratch:
            path = str(Path(scratch) / "report.json")
            for name in tqdm(names, desc="queries", file=sys.stderr, disable=None):
                passes = [[] for _ in urls]
                for turn in range(GROWTH_PASSES):
                    order = list(enumerate(urls))
                    for index, url in order if turn % 2 == 0 else reversed(order):
                        run = subprocess.run(
                            [sys.executable, str(manage), "benchmark_orm_performance", "--queries", name, *arguments]
                            + ["--json", path],
                            env={**os.environ, "DATABASE_URL": url},
                            capture_output=True,
                            text=True,
                        )
                        if run.returncode:
                            raise CommandError(f"--growth-db {url}: {name} failed: {run.stderr.strip()[-500:]}")
                        passes[index].append(self.read_report(path, "--growth-db"))
                for index, runs in enumerate(passes):
                    report = {**runs[0], "queries": [merged_passes([r["queries"][0] for r in runs])]}
                    if reports[index] is None:
                        reports[index] = report
                    else:
                        reports[index]["queries"] += report["queries"]
        for report in reports:
            self.stdout.write(f"dataset: {report['dataset']} ({report['jobneeds']:,} jobneeds)")
            self.stdout.write(self.table(report["queries"]))
        self.stdout.write("\n".join(growth(reports)))
        if json_path:
            with open(json_path, "w") as handle:
                json.dump(reports, handle, indent=2, default=str)

    def router_only(self, names, rounds, param_sets, seed):
        """What routing adds to a call, per query: dispatch ÷ a direct call of the function (the router's own
        work: cleaning, deciding, timing, counting), pairs interleaved and alternating, on rotating sets."""
        from rollout.routing.benchmark import measure_router

        with open("/proc/loadavg") as handle:
            load = " ".join(handle.read().split()[:3])
        self.stdout.write(f"router: {rounds} rounds per pair, up to {param_sets} rotating parameter sets, load {load}")
        self.stdout.write(
            f"{'query':<24} {'sets':>4} {'direct ms':>9} {'dispatch ms':>11} {'router µs':>9} {'dispatch/direct':>15} "
            f"{'decision µs':>11} {'shadow/none':>11}"
        )
        for name in names:
            definition = REGISTRY.get(name)
            sets = [definition.clean(p) for p in definition.sample(param_sets, seed=seed)]
            if not sets:
                self.stdout.write(f"{name}: no parameters to sample in this dataset")
                continue
            r = measure_router(name, sets, rounds)
            self.stdout.write(
                f"{name:<24} {len(sets):>4} {r['direct_ms_median']:>9.3f} {r['dispatch_ms_median']:>11.3f} "
                f"{r['router_us']:>9.1f} {r['dispatch/direct']:>15.3f} {r['decision_us_median']:>11.2f} "
                f"{r['shadow/no_shadow']:>11.3f}"
            )

    def explain(self, names, seed):
        from query_backends.explain import plans

        for name in names:
            definition = REGISTRY.get(name)
            sampled = definition.sample(1, seed)
            if not sampled:
                self.stdout.write(f"{name}: no parameters to sample in this dataset")
                continue
            params = definition.clean(sampled[0])
            self.stdout.write(f"== {name} {params}")
            for side, lines in plans(definition, params).items():
                self.stdout.write(f"-- {side}")
                self.stdout.write("\n".join(lines))

    def read_report(self, path, option):
        [report] = self.read_reports(path, option, many=False)
        return report

    def read_reports(self, path, option, many=True):
        """The reports a --json file holds: one, or (from --growth-db, when `many`) a list of them."""
        try:
            with open(path) as handle:
                found = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CommandError(f"{option}: cannot read {path}: {exc}") from None
        reports = found if many and isinstance(found, list) else [found]
        if not reports or not all(isinstance(r, dict) and isinstance(r.get("queries"), list) for r in reports):
            raise CommandError(f"{option}: {path} is not a report written by --json")
        return reports

    def shapes(self, specs, json_path):
        from query_backends.shape_benchmark import measure_shape

        reports = []
        self.stdout.write(
            f"{'shape':<20}{'call':<22}{'rows':>8}{'fn s':>8}{'twin s':>8}{'twin/fn':>8}{'fn MiB':>8}"
            f"{'twin MiB':>9}  equal"
        )
        for spec in specs:
            try:
                report = measure_shape(spec)
            except ValueError as error:
                raise CommandError(str(error)) from None
            reports.append(report)
            for label, r in report["calls"].items():
                self.stdout.write(
                    f"{spec:<20}{label:<22}{r['rows']:>8}{r['function_s']:>8.2f}{r['twin_s']:>8.2f}"
                    f"{r['twin/function']:>8.2f}{r['function_peak_mib']:>8.0f}{r['twin_peak_mib']:>9.0f}  {r['equal']}"
                )
        if json_path:
            with open(json_path, "w") as handle:
                json.dump(reports, handle, indent=2, default=str)

    def table(self, results):
        head = f"{'query':<24}" + "".join(f"{h:>{w}}" for h, w, _ in COLUMNS) + f"{'q':>3}{'rows':>6}  verdicts"
        lines = [head]
        for r in results:
            verdicts = " ".join(f"{k}:{verdict(r[k], t)}" for k, t in TARGETS.items() if r[k] is not None)
            lines.append(
                f"{r['query']:<24}"
                + "".join(cell(r, key, w) for _, w, key in COLUMNS)
                + f"{r['queries_per_twin_call']:>3}{r['rows_median']:>6.0f}  {verdicts} "
                + f"queries:{verdict(r['queries_per_twin_call'], 2)}"
            )
        reasons = {}
        for r in results:
            for side, why in r["not_measured"].items():
                reasons.setdefault((side, why), []).append(r["query"])
        lines += [f"n/a {side} ({', '.join(queries)}): {why}" for (side, why), queries in reasons.items()]
        lines += [
            f"{r['query']}: {r['param_sets']} of {r['param_sets_asked']} parameter sets: {r['fewer_param_sets']}"
            for r in results
            if r.get("fewer_param_sets")
        ]
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
        hits = [r["redis_hit/function"] or 0 for r in results]  # a query never cached has no bar
        ax.bar([x + width / 2 for x in xs], hits, width, label="Redis hit / function (none: never cached)")
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_xticks(list(xs), names, rotation=30, ha="right")
        ax.set_ylabel("median latency ratio (lower is faster)")
        ax.set_title(f"ORM twin vs PostgreSQL function, {scale} data")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
