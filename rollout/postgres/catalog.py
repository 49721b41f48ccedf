"""What PostgreSQL's catalogs say about a function: its arguments, return shape, volatility, body and calls.

Read from pg_proc (with pg_type, pg_namespace, pg_language) and pg_stat_user_functions; never from a file.
"""

import dataclasses
import re
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
# Return shapes: how a caller reads the answer.
SCALAR, ARRAY, JSON, ROW, SETOF, TABLE, VOID = "scalar", "array", "json", "row", "setof", "table", "void"
_INPUT_MODES, _OUTPUT_MODES = ("i", "b", "v"), ("o", "b", "t")

_SELECT = """
SELECT p.oid, n.nspname, p.proname, p.oid::regprocedure::text, p.proretset, p.provolatile, l.lanname,
       coalesce(p.prosrc, ''), p.prorettype::regtype::text, t.typtype, t.typcategory,
       coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
       coalesce(p.proallargtypes::regtype[]::text[], p.proargtypes::oid[]::regtype[]::text[]),
       p.pronargdefaults, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
       coalesce(pg_get_expr(p.proargdefaults, 0), '')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
JOIN pg_type t ON t.oid = p.prorettype
WHERE p.prokind = 'f'
"""


@dataclass(frozen=True)
class Argument:
    name: str  # as PostgreSQL names it (arg1, arg2… when it has no name)
    type: str  # format_type's spelling, e.g. "bigint", "timestamp with time zone", "integer[]"
    default: str | None  # the SQL expression of its default, or None when it has none


@dataclass(frozen=True)
class Function:
    oid: int
    schema: str
    name: str
    signature: str  # regprocedure: name(types), schema-qualified when not on the search path
    returns_set: bool
    volatility: str
    language: str
    body: str
    return_type: str
    return_type_kind: str  # pg_type.typtype: b base, c composite, p pseudo (record, void), d domain, e enum
    return_category: str  # pg_type.typcategory: A array, U user (json, jsonb)…
    arguments: tuple[Argument, ...]
    columns: tuple[tuple[str, str], ...]  # (name, type) of OUT / TABLE columns
    arguments_sql: str  # pg_get_function_arguments
    result_sql: str  # pg_get_function_result

    @property
    def qualified_name(self):
        return f"{ident(self.schema)}.{ident(self.name)}"

    @property
    def shape(self):
        """How the answer reads: scalar, array, json, row (one composite), setof (scalars), table (rows), void."""
        if self.return_type == "void":
            return VOID
        composite = bool(self.columns) or self.return_type_kind == "c" or self.return_type == "record"
        if self.returns_set:
            return TABLE if composite else SETOF
        if composite:
            return ROW
        if self.return_type in ("json", "jsonb"):
            return JSON
        return ARRAY if self.return_category == "A" else SCALAR


def ident(name):
    """A catalog name quoted as an identifier: exact, whatever its case or whether it is a keyword (limit)."""
    return '"' + name.replace('"', '""') + '"'


def _split_defaults(text, count):
    """The last `count` default expressions of pg_get_expr(proargdefaults): a comma-separated list."""
    if not count:
        return []
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        if char == "," and not quoted and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts[-count:]


def _function(row):
    (oid, schema, name, signature, returns_set, volatility, language, body, return_type, kind, category,
     names, modes, types, n_defaults, arguments_sql, result_sql, defaults) = row  # fmt: skip
    modes = modes or ["i"] * len(types)
    names = list(names) + [""] * (len(types) - len(names))
    inputs = [(names[i] or f"arg{i + 1}", types[i]) for i, mode in enumerate(modes) if mode in _INPUT_MODES]
    given = [None] * (len(inputs) - n_defaults) + _split_defaults(defaults, n_defaults)
    columns = tuple((names[i] or f"column{i + 1}", types[i]) for i, mode in enumerate(modes) if mode in _OUTPUT_MODES)
    return Function(
        oid=oid,
        schema=schema,
        name=name,
        signature=signature,
        returns_set=returns_set,
        volatility=VOLATILITY[volatility],
        language=language,
        body=body,
        return_type=return_type,
        return_type_kind=kind,
        return_category=category,
        arguments=tuple(Argument(n, t, d) for (n, t), d in zip(inputs, given)),
        columns=columns,
        arguments_sql=arguments_sql,
        result_sql=result_sql,
    )


class FunctionNotFound(LookupError):
    pass


def as_data(function):
    """The Function as JSON data: what a retired query's flag keeps of its dropped function."""
    return dataclasses.asdict(function)


def from_data(data):
    """The Function that as_data() gave."""
    return Function(
        **{
            **data,
            "arguments": tuple(Argument(**argument) for argument in data["arguments"]),
            "columns": tuple(tuple(column) for column in data["columns"]),
        }
    )


def _matching(name, using):
    with connections[using].cursor() as cursor:
        if "(" in name:
            cursor.execute(_SELECT + " AND p.oid = to_regprocedure(%s)", [name])
        elif "." in name:
            schema, _, bare = name.partition(".")
            cursor.execute(_SELECT + " AND n.nspname = %s AND p.proname = %s", [schema, bare])
        else:
            cursor.execute(_SELECT + " AND p.proname = %s AND pg_function_is_visible(p.oid)", [name])
        return cursor.fetchall()


def find(name, using=DEFAULT_DB_ALIAS):
    """The function called `name` (schema.name, or found on the search path; name(types) picks an overload)."""
    rows = _matching(name, using)
    if not rows:
        others = [row[3] for row in _matching(name.partition("(")[0], using)] if "(" in name else []
        raise FunctionNotFound(
            f"no function {name} in the database (alias {using!r})"
            + (f"; installed with another signature: {', '.join(sorted(others))}" if others else "")
        )
    if len(rows) > 1:
        signatures = ", ".join(sorted(row[3] for row in rows))
        raise FunctionNotFound(f"{name} is overloaded ({signatures}): name one by its signature, e.g. {rows[0][3]}")
    return _function(rows[0])


def functions(using=DEFAULT_DB_ALIAS):
    """Every function of the database outside the system schemas and extensions, and not rollout's own (the
    answer cache's trigger functions), by schema and name."""
    from rollout.cache.triggers import FUNCTIONS as OWN

    with connections[using].cursor() as cursor:
        cursor.execute(
            _SELECT + " AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%' AND p.proname <> ALL(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
            "AND d.objid = p.oid AND d.deptype = 'e') ORDER BY n.nspname, p.proname, 4",
            [list(SYSTEM_SCHEMAS), list(OWN)],
        )
        return [_function(row) for row in cursor.fetchall()]


def call_counts(using=DEFAULT_DB_ALIAS):
    """({oid: calls} from pg_stat_user_functions, the track_functions setting): counts only while it is not 'none'."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT current_setting('track_functions')")
        setting = cursor.fetchone()[0]
        cursor.execute("SELECT funcid, calls FROM pg_stat_user_functions")
        return dict(cursor.fetchall()), setting


# What a function body may do that writes: statements, dynamic SQL, sequences, locks, notifications.
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|truncate|copy|create|drop|alter|grant|revoke|call|execute|notify|listen|"
    r"lock|nextval|setval|pg_advisory_\w+|dblink\w*|lo_\w+|set_config|refresh)\b",
    re.IGNORECASE,
)
_COMMENTS_AND_TEXT = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'", re.DOTALL)
_CALLS = re.compile(r"\b([A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)?)\s*\(")


def _code(body):
    """The body without comments and string literals: what it runs, not what it says."""
    return _COMMENTS_AND_TEXT.sub(" ", body)


def writes(function, using=DEFAULT_DB_ALIAS):
    """Why the function may write (a sentence), or None when it can be shown to only read.

    A STABLE or IMMUTABLE function in SQL or PL/pgSQL cannot write: PostgreSQL refuses it. A VOLATILE one
    only reads when its body holds no writing statement, no dynamic SQL, and calls no function that may write.
    """
    return _first_reason(function, _writes_itself, "may write", using)


def _writes_itself(function):
    if function.volatility != "volatile" and function.language in ("sql", "plpgsql"):
        return None, False
    if function.language not in ("sql", "plpgsql"):
        return (
            f"{function.signature} is written in {function.language}: its body cannot be read to show it only reads",
            False,
        )
    found = _WRITES.search(_code(function.body))
    if found:
        return f"{function.signature} is VOLATILE and its body says {found.group(1).upper()}", False
    return None, True


# What makes an answer change while no table it reads does: the clock, chance, the session.
_VARIES = re.compile(
    r"\b(now|current_date|current_time|current_timestamp|localtime|localtimestamp|clock_timestamp|"
    r"statement_timestamp|transaction_timestamp|timeofday|random|random_normal|setseed|gen_random_uuid|"
    r"uuid_generate_\w+|txid_current\w*|pg_current_xact_id\w*|current_user|session_user|current_role|"
    r"current_setting|current_schemas?|inet_client_\w+|pg_backend_pid)\b",
    re.IGNORECASE,
)


def varies(function, using=DEFAULT_DB_ALIAS):
    """Why the function's answer may change while its arguments and the rows it reads do not (a sentence), or
    None: what caching its answers needs. Its body, and those of the functions it calls, must not read the
    clock, chance or the session (now(), current_date, random(), current_user, current_setting…)."""
    return _first_reason(function, _varies_itself, "may answer differently", using)


def _varies_itself(function):
    if function.language not in ("sql", "plpgsql"):
        return (
            f"{function.signature} is written in {function.language}: its body cannot be read to show its "
            "answer depends only on its arguments and the rows it reads"
        ), False
    found = _VARIES.search(_code(function.body))
    if found:
        return f"{function.signature} reads {found.group(1)}", False
    return None, True


def _first_reason(function, itself, callee_does, using, seen=frozenset()):
    """The first reason found in the function (itself(function) -> (reason or None, whether to read the
    functions it calls)) or, depth first, in a function it calls — every overload of a called name: which
    one a call picks is decided at run time."""
    reason, deeper = itself(function)
    if reason or not deeper:
        return reason
    seen = seen | {function.oid}
    for callee in sorted({match.group(1) for match in _CALLS.finditer(_code(function.body))}):
        for called in map(_function, _matching(callee, using)):
            if called.oid in seen or called.schema in SYSTEM_SCHEMAS:
                continue
            reason = _first_reason(called, itself, callee_does, using, seen)
            if reason:
                return f"{function.signature} calls {called.signature}, which {callee_does} ({reason})"
    return None
