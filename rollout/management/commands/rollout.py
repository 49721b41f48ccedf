import argparse
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.template.defaultfilters import pluralize

from rollout import reports
from rollout.api import tokens
from rollout.experiments import query_name, registry
from rollout.flags import transfer, writes
from rollout.lifecycle import autopilot, plan, readiness, retire
from rollout.lifecycle.report import plan_report
from rollout.lifecycle.report import text as plan_text
from rollout.metrics.rollups import metrics
from rollout.operations import OperationError, flags_for
from rollout.postgres import inventory
from rollout.postgres.adopt import adopt
from rollout.retention import purge
from rollout.shadow.replay import replay
from rollout.validation import sample_cases, validate_query


def _cohort_ids(pairs, option):
    """["site=23,24", "client=4"] → {"site": [23, 24], "client": [4]}."""
    ids = {}
    for pair in pairs:
        name, _, values = pair.partition("=")
        try:
            ids.setdefault(name, []).extend(int(v) for v in values.split(",") if v)
        except ValueError:
            raise OperationError(f"{option}: {pair!r} is not COHORT=ID[,ID…] with whole-number ids") from None
        if not name or not values:
            raise OperationError(f"{option}: {pair!r} is not COHORT=ID[,ID…]")
    return ids


def _within(kind, low, high, what):
    """An argparse type: a number of `kind` between low and high, or a one-line error naming what it is."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value

    return parse


PLAN_MOVES = {
    "start": "put the query at its plan's first stage",
    "pause": "the autopilot leaves it alone until --resume",
    "resume": "let the autopilot drive again",
    "skip": "on to the next stage now, whatever the evidence",
    "back": "back to the previous stage",
    "stop": "off the plan: the autopilot leaves it, its flag stays as it is",
}


def _read_json(path, option):
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise OperationError(f"{option}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise OperationError(f"{option}: {path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text, parse_constant=_not_a_json_number)
    except (json.JSONDecodeError, ValueError) as exc:
        raise OperationError(f"{option}: {path} is not JSON: {exc}") from None


def _not_a_json_number(constant):
    # Python's json reads NaN and Infinity, which JSON does not have (nor PostgreSQL's jsonb, where history goes).
    raise ValueError(f"{constant} is not a JSON number")


def _number(value):
    return f"{float(value):g}"


class Command(BaseCommand):
    help = (
        "Operate the rollout: status, enable, disable, percent, cohort, shadow, kill, rescue, history, replay, "
        "purge, clear-guard, forget, plan, autopilot, flags, token, functions, adopt, validate."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="what serves whom, per query")
        for name, text in (("enable", "the candidate for everyone"), ("disable", "back to the cohort rules")):
            sub.add_parser(name, help=text).add_argument("queries", nargs="+")
        sub.add_parser("kill", help="every query (or those named) back to the control").add_argument(
            "queries", nargs="*"
        )
        percent = sub.add_parser("percent", help="sticky percentage of actors on the candidate")
        percent.add_argument("query")
        percent.add_argument("percent")
        percent.add_argument("--key", help="what the percentage sticks to: user or a declared cohort")
        shadow = sub.add_parser("shadow", help="percentage of calls compared in shadow")
        shadow.add_argument("query")
        shadow.add_argument("percent")
        cohort = sub.add_parser(
            "cohort",
            help="add or remove ids of the cohorts the actor resolver declares: --add site=23 --remove client=4",
        )
        cohort.add_argument("query")
        for verb in ("add", "remove"):
            cohort.add_argument(f"--{verb}", nargs="+", default=[], metavar="COHORT=ID[,ID…]")
        cohort.add_argument("--exclude", action="store_true", help="change the exclusions instead")
        rescue = sub.add_parser("rescue", help="let the candidate serve when the control raises (opt-in)")
        rescue.add_argument("query")
        rescue.add_argument("switch", choices=("on", "off"))
        rescue.add_argument("--after", type=int, metavar="N", help="healthy comparisons the guard must have seen")
        history = sub.add_parser("history", help="flag changes, newest first")
        history.add_argument("query", nargs="?")
        history.add_argument("--limit", type=_within(int, 1, 100_000, "whole number"), default=50)
        sub.add_parser("replay", help="run a recorded discrepancy again").add_argument("id", type=int)
        purge = sub.add_parser("purge", help="delete discrepancies not seen for DAYS days")
        purge.add_argument(
            "--older-than", type=_within(int, 0, 36_500, "whole number of days"), required=True, metavar="DAYS"
        )
        sub.add_parser("clear-guard", help="forget a guard trip").add_argument("query")
        metrics_purge = sub.add_parser("purge-metrics", help="delete metric rollups older than HOURS hours")
        metrics_purge.add_argument(
            "--older-than",
            type=_within(float, 0, 876_000, "number of hours"),
            metavar="HOURS",
            help="default: the retention setting",
        )
        sub.add_parser(
            "forget", help="delete the flag and discrepancies of a query that is no longer registered"
        ).add_argument("query")
        plan = sub.add_parser(
            "plan",
            help="a query's rollout plan, its stage, the evidence against each gate; --export/--apply; moves",
        )
        plan.add_argument("query", nargs="?")
        moves = plan.add_mutually_exclusive_group()
        moves.add_argument("--export", action="store_true", help="print the plan as JSON (a starting plan if none)")
        moves.add_argument("--apply", metavar="FILE", help="store the plan in FILE (JSON; - reads stdin)")
        for move, text in PLAN_MOVES.items():
            moves.add_argument(f"--{move}", action="store_true", help=text)
        plan.add_argument("--reason", default="", help="why (with --pause)")
        plan.add_argument(
            "--force", action="store_true", help="with --start: replace the cohorts, percent or shadow set on the flag"
        )
        sub.add_parser("autopilot", help="advance or pause every query with a started plan, once (for cron)")
        retire = sub.add_parser(
            "retire", help="write the migration that drops a query's function (reversible); --check: ready or not"
        )
        retire.add_argument("query")
        retire.add_argument("--check", action="store_true", help="say ready or not, with every reason (exit 1: not)")
        retire.add_argument("--force", action="store_true", help="write the migration even when not ready")
        flags_io = sub.add_parser("flags", help="flags' state as JSON: --export [QUERY…] or --apply FILE")
        flags_io.add_argument("queries", nargs="*")
        flags_way = flags_io.add_mutually_exclusive_group(required=True)
        flags_way.add_argument("--export", action="store_true")
        flags_way.add_argument("--apply", metavar="FILE", help="JSON of `rollout flags --export` (- reads stdin)")
        functions = sub.add_parser("functions", help="the database's functions: adopted, serving, calls, missing")
        functions.add_argument("--check", action="store_true", help="exit 1 when a registered function is missing")
        validate = sub.add_parser(
            "validate", help="compare both sides on a query's cases (default: the calls compared)"
        )
        validate.add_argument("query")
        validate.add_argument("--limit", type=int, default=5000, help="at most N cases, sampled deterministically")
        adopting = sub.add_parser("adopt", help="scaffold a twin, its declaration and its test for a function")
        adopting.add_argument("function", help="name, schema.name, or name(types) for an overload")
        adopting.add_argument("--app", help="the app to write into (default: this project's only app)")
        adopting.add_argument("--name", dest="query", help="the query's name (default: the function's)")
        token = sub.add_parser("token", help="API tokens: issue USER, list [USER], revoke ID")
        token_sub = token.add_subparsers(dest="token_action", required=True)
        token_sub.add_parser("issue", help="a new key for USER, shown once").add_argument("user")
        token_sub.add_parser("list", help="tokens (never their keys), newest first").add_argument("user", nargs="?")
        token_sub.add_parser("revoke", help="delete a token by its id").add_argument("id", type=int)
        for leaf in (*sub.choices.values(), *token_sub.choices.values()):
            # --json after the subcommand too (`rollout status --json`); SUPPRESS keeps the first one's answer.
            leaf.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")

    def handle(self, *args, action, **options):
        try:
            result = getattr(self, "do_" + action.replace("-", "_"))(**options)
        except OperationError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, cls=DjangoJSONEncoder, indent=2))
        elif isinstance(result, str):
            self.stdout.write(result)

    def do_status(self, **options):
        rows = reports.status()
        return rows if options["json"] else reports.status_table(rows)

    def _changed(self, flags, options, what):
        """One line per flag: what this command changed, then what serves whom now."""
        rows = [{**reports.flag_summary(f), "changed": what(f)} for f in flags]
        if options["json"]:
            return rows
        return "\n".join(f"{query_name(r['flag'])}: {r['changed']} (now: {r['serving']})" for r in rows)

    def do_enable(self, queries, **options):
        return self._changed(writes.enable(queries), options, lambda f: "candidate for everyone")

    def do_disable(self, queries, **options):
        return self._changed(writes.disable(queries), options, lambda f: "back to the cohort rules")

    def do_kill(self, queries, **options):
        return self._changed(writes.kill(queries), options, lambda f: "killed, the control serves everyone")

    def do_percent(self, query, percent, key, **options):
        flag = writes.set_percent(query, percent, key)
        return self._changed([flag], options, lambda f: f"{_number(f.percent)} % by {f.percent_key}")

    def do_shadow(self, query, percent, **options):
        flag = writes.set_shadow(query, percent)
        return self._changed([flag], options, lambda f: f"shadow {_number(f.shadow_percent)} %")

    def do_cohort(self, query, add, remove, exclude, **options):
        added, removed = _cohort_ids(add, "--add"), _cohort_ids(remove, "--remove")
        flag = writes.change_cohorts(query, added, removed, excluded=exclude)
        prefix = "excluded " if exclude else ""
        changes = [f"{prefix}{name} +{ids}" for name, ids in added.items()]
        changes += [f"{prefix}{name} -{ids}" for name, ids in removed.items()]
        return self._changed([flag], options, lambda f: ", ".join(changes))

    def do_rescue(self, query, switch, after, **options):
        flag = writes.set_rescue(query, switch == "on", after)
        said = f"rescue on, after {flag.rescue_after} healthy comparisons" if flag.rescue else "rescue off"
        return self._changed([flag], options, lambda f: said)

    def do_history(self, query, limit, **options):
        rows = reports.history(query, limit)
        return rows if options["json"] else reports.table(rows, reports.HISTORY_COLUMNS)

    def do_replay(self, id, **options):
        outcome = replay(id)
        return outcome if options["json"] else outcome["text"]

    def do_purge(self, older_than, **options):
        deleted = purge(older_than)
        return {"deleted": deleted} if options["json"] else f"deleted {deleted} discrepancies"

    def do_purge_metrics(self, older_than, **options):
        deleted = metrics.purge(older_than)
        return {"deleted": deleted} if options["json"] else f"deleted {deleted} metric rollups"

    def do_clear_guard(self, query, **options):
        flag = writes.clear_guard(query)
        return self._changed([flag], options, lambda f: "guard cleared and re-armed; the flag itself is unchanged")

    def do_forget(self, query, **options):
        deleted = writes.forget(query)
        return (
            deleted
            if options["json"]
            else f"{query}: deleted {deleted['flags']} flag{pluralize(deleted['flags'])} and "
            f"{deleted['discrepancies']} discrepanc{pluralize(deleted['discrepancies'], 'y,ies')}"
        )

    def do_plan(self, query, export, apply, reason, force, **options):
        if force and not options["start"]:
            raise OperationError("--force: only with --start")
        if apply:
            raw = _read_json(apply, "--apply")
            query = query or (raw.get("query") if isinstance(raw, dict) else None)
            if not query:
                raise OperationError('query: name the query, or put "query" in the file')
            if not isinstance(query, str):
                raise OperationError(f"query: {json.dumps(query)} is not a query name")
            flag = autopilot.set_plan(query, raw)
            return {"query": query, "applied": flag.plan} if options["json"] else f"{query}: plan applied"
        if not query:
            raise OperationError("query: name the query (only --apply FILE can take it from the file)")
        if export:
            [flag] = flags_for([query])
            stored = plan.of(flag) or plan.starting_plan()
            exported = {"query": query, **stored.as_dict()}
            return exported if options["json"] else json.dumps(exported, indent=2)
        for move in PLAN_MOVES:
            if options[move]:
                if move == "start":
                    autopilot.start(query, force=force)
                else:
                    getattr(autopilot, move)(*((query, reason) if move == "pause" else (query,)))
                break
        report = plan_report(query)
        return report if options["json"] else plan_text(report)

    def do_autopilot(self, **options):
        moves = autopilot.tick()
        if options["json"]:
            return [move.as_dict() for move in moves]
        return "\n".join(map(str, moves)) or "no query has a started, unpaused plan"

    def do_retire(self, query, check, force, **options):
        if check:
            found = readiness.check(query)
            shown = found.as_dict() if options["json"] else found.text()
            if not found.ready:  # the whole answer, then a non-zero exit (scripts and CI read either)
                self.stdout.write(json.dumps(shown, indent=2) if options["json"] else shown)
                sys.exit(1)
            return shown
        written = retire.write_migration(query, force=force)
        back = f"python manage.py migrate {written.app_label} {written.back_to}"
        if options["json"]:
            return {"query": query, "migration": str(written.path), "apply": written.name, "back_to": written.back_to}
        return (
            f"{query}: wrote {written.path}\n"
            f"apply it with `python manage.py migrate {written.app_label} {written.name}`; `{back}` migrates it back "
            "(the function and the flag restored)"
        )

    def do_flags(self, queries, export, apply, **options):
        if export:
            exported = transfer.export(queries)
            return exported if options["json"] else json.dumps(exported, indent=2)
        flags = transfer.apply(_read_json(apply, "--apply"))
        applied = [query_name(f.name) for f in flags]
        return {"applied": applied} if options["json"] else f"applied: {', '.join(applied)}"

    def do_functions(self, check, **options):
        found = inventory.inventory()
        if check and found["missing"]:
            raise OperationError("; ".join(f"query {m['query']}: {m['problem']}" for m in found["missing"]))
        return found if options["json"] else inventory.text(found)

    def do_validate(self, query, limit, **options):
        if query not in registry().names():
            raise OperationError(f"query: {query!r} is not registered")
        if limit < 1:
            raise OperationError("--limit: give at least 1")
        report = validate_query(query, sample_cases(query, limit))
        text = f"{query}: {report.cases} cases, {report.equal} equal, {report.different} different"
        if not report.cases:
            text += " (no cases: give cases= in its rollout.Query, or let shadow mode compare some calls first)"
        if report.different:
            raise OperationError(f"{text}; differences: {', '.join(report.examples)}")
        return report.as_dict() if options["json"] else text

    def do_adopt(self, function, app, query, **options):
        paths, notes = adopt(function, app, query)
        written = {"written": [str(p) for p in paths], "notes": notes}
        if options["json"]:
            return written
        return "\n".join(
            [*(f"wrote {p}" for p in paths), *notes, "next: write the twin, then `manage.py check` and run the test"]
        )

    def do_token(self, token_action, **options):
        return getattr(self, f"token_{token_action}")(**options)

    def token_issue(self, user, **options):
        token, key = tokens.issue(user)
        if options["json"]:
            return {"id": token.pk, "user": user, "key": key}
        return (
            f"token #{token.pk} for {user}: {key}\n"
            "Shown once: only its hash is stored. Send it as `Authorization: Token <key>`; "
            f"revoke it with `rollout token revoke {token.pk}`."
        )

    def token_list(self, user, **options):
        rows = tokens.listing(user)
        return rows if options["json"] else reports.table(rows, tokens.COLUMNS) if rows else "no tokens"

    def token_revoke(self, id, **options):
        user = tokens.revoke(id)
        return {"revoked": id, "user": user} if options["json"] else f"token #{id} of {user} revoked"
