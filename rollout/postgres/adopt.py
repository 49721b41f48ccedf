"""`manage.py rollout adopt FUNCTION [--app APP]`: the scaffold of a twin for a function read from pg_proc.

Writes into the host's app, beside its own code:
  twins.py                  a stub of the twin with the function's arguments (and defaults), to be written;
  rollout_queries.py        the declaration, rollout.register(rollout.Query(name=…, candidate=twins.…));
  test_rollout_<name>.py    a test that validates the twin against the function on parameter sets you give.
The generated code passes ruff (checked by tests/integration/test_adopting.py).
"""

import keyword
import re
import textwrap
from pathlib import Path

from django.apps import apps
from django.conf import settings

from rollout.flags.writes import ensure_flags
from rollout.operations import OperationError
from rollout.postgres import catalog
from rollout.query import param_for

# An example value of each parameter type for the generated test: (expression, import it needs).
EXAMPLES = {
    "int": ("1", None),
    "bool": ("True", None),
    "str": ('"a"', None),
    "float": ("1.0", None),
    "Decimal": ('Decimal("1")', "from decimal import Decimal"),
    "date": ("date(2024, 1, 1)", "from datetime import date"),
    "datetime": ("datetime(2024, 1, 1, tzinfo=UTC)", "from datetime import UTC, datetime"),
}
SHAPES = {
    catalog.SCALAR: "one value",
    catalog.ARRAY: "a list",
    catalog.JSON: "the JSON value (dicts, lists, numbers, text)",
    catalog.ROW: "one dict, keyed by column",
    catalog.SETOF: "a list of values",
    catalog.TABLE: "a list of dicts, one per row, keyed by column",
    catalog.VOID: "None",
}
LINE = 88  # ruff's default line length: the host's project may have no ruff configuration of its own


def _default(sql, kind):
    """The Python literal of a simple SQL default of a parameter of this type; None when there is none."""
    text = re.sub(r"::[\w\s\[\]]+$", "", sql.strip())
    if kind is bool and text.lower() in ("true", "false"):
        return text.capitalize()
    if kind in (int, float) and re.fullmatch(r"-?\d+" + (r"(\.\d+)?" if kind is float else ""), text):
        return text
    if kind is str and re.fullmatch(r"'(?:[^']|'')*'", text):
        return '"' + text[1:-1].replace("''", "'").replace("\\", "\\\\").replace('"', '\\"') + '"'
    return None


def _app(label):
    """The host's app to write into: the one named, or the only app of the project (under BASE_DIR)."""
    if label:
        try:
            return apps.get_app_config(label)
        except LookupError:
            raise OperationError(f"--app: no installed app {label!r}") from None
    base = Path(getattr(settings, "BASE_DIR", Path.cwd())).resolve()
    own = [c for c in apps.get_app_configs() if Path(c.path).resolve().is_relative_to(base) and c.name != "rollout"]
    if len(own) != 1:
        names = ", ".join(c.label for c in own) or "none"
        raise OperationError(f"--app: name the app to write into (this project's apps: {names})")
    return own[0]


def _python_name(name):
    return name if name.isidentifier() and not keyword.iskeyword(name) else None


def _fitted(head, items, tail, indent=""):
    """`head(a, b)tail` on one line when it fits ruff's 88 columns, else one item a line (a trailing comma keeps it)."""
    line = f"{indent}{head}{', '.join(items)}{tail}"
    if len(line) <= LINE:
        return [line]
    return [f"{indent}{head}", *(f"{indent}    {item}," for item in items), f"{indent}{tail.lstrip(',')}"]


def _docstring(paragraphs, indent="    "):
    lines = []
    for paragraph in paragraphs:
        lines += [*textwrap.wrap(paragraph, LINE - len(indent) - 3, break_on_hyphens=False), ""]
    lines = lines[:-1]
    if len(lines) == 1 and len(indent) + len(lines[0]) + 6 <= LINE:
        return [f'{indent}"""{lines[0]}"""']
    return [f'{indent}"""{lines[0]}', *(f"{indent}{line}" if line else "" for line in lines[1:]), f'{indent}"""']


def _stub(function, twin_name, params):
    """The twin's stub: the function's arguments as keyword parameters, with their defaults."""
    arguments, imports, notes = [], set(), []
    for argument, param in zip(function.arguments, params):
        kind = param.item if param.type is list else param.type
        hint = f"list[{kind.__name__}]" if param.type is list else kind.__name__
        needed = EXAMPLES[kind.__name__][1]
        if needed:
            imports.add(needed.replace("UTC, ", ""))
        if argument.default is None:
            arguments.append(f"{argument.name}: {hint}")
            continue
        literal = _default(argument.default, kind)
        if literal is None:
            arguments.append(f"{argument.name}: {hint} | None = None")
            notes.append(f"Left out, {argument.name} is None here and {argument.default} in the function.")
        else:
            arguments.append(f"{argument.name}: {hint} = {literal}")
    columns = ", ".join(name for name, _ in function.columns)
    returns = SHAPES[function.shape] + (f" ({columns})" if columns else "")
    body = [
        *_fitted(f"def {twin_name}(", arguments, "):"),
        *_docstring([f"The twin of {function.signature}.", f"Returns {returns}, as the function does.", *notes]),
        f'    raise NotImplementedError("write the twin of {function.name}")',
    ]
    return imports, body


def _imports(lines):
    """Import lines merged by module and sorted as isort (and ruff) sort them: `from m import A, b, c`."""
    plain, names = set(), {}
    for line in lines:
        if line.startswith("import "):
            plain.add(line)
        else:
            module, _, imported = line.removeprefix("from ").partition(" import ")
            names.setdefault(module, set()).update(n.strip() for n in imported.split(","))
    by_type = lambda n: (not n.isupper(), not n[:1].isupper(), n)  # noqa: E731 — constants, classes, the rest
    merged = [f"from {m} import {', '.join(sorted(n, key=by_type))}" for m, n in names.items()]
    return sorted(plain) + sorted(merged, key=lambda line: line.split()[1])


def _add_to_module(path, imports, lines):
    """Append a definition to a module of one-line docstring, imports and code, its imports kept at the top."""
    text = path.read_text()
    all_lines = text.splitlines()
    docstring = all_lines[:1] if all_lines and all_lines[0].startswith('"""') else []
    body = all_lines[len(docstring) :]
    head = [line for line in body if line.startswith(("import ", "from "))]
    rest = "\n".join(line for line in body if not line.startswith(("import ", "from "))).strip()
    code = [block for block in ("\n".join(_imports([*head, *imports])), rest, "\n".join(lines)) if block]
    text = "\n\n\n".join(code) + "\n"
    after_docstring = "\n\n" if text.startswith(("import ", "from ")) else "\n\n\n"  # as ruff format spaces it
    path.write_text("\n".join(docstring) + after_docstring + text if docstring else text)


def _found_as(name, using):
    try:
        return catalog.find(name, using).oid
    except catalog.FunctionNotFound:
        return None


def _declaration(config, function, query, twin_name, writes, using):
    path = Path(config.path) / "rollout_queries.py"
    text = path.read_text() if path.exists() else '"""Queries this app adopts (manage.py rollout adopt)."""\n'
    if f'name="{query}"' in text:
        raise OperationError(f"{query}: already declared in {path}")
    if "import rollout\n" not in text:
        text = text.rstrip("\n") + "\n\nimport rollout\n"
    if f"from {config.name} import twins\n" not in text:
        text = text.replace("import rollout\n", f"import rollout\n\nfrom {config.name} import twins\n", 1)
    options = [f'name="{query}"', f"candidate=twins.{twin_name}"]
    if query != function.name or _found_as(function.name, using) != function.oid:
        # Not found by its bare name on the search path (another schema, an overload): say which it is.
        options.insert(1, f'function="{function.signature}"')
    comment = []
    if writes:
        comment = [
            "# This function may write: shadow, rescue and caching are refused until you",
            "# declare read_only=True (only if it really only reads).",
        ]
    call = f"rollout.register(rollout.Query({', '.join(options)}))"
    if len(call) > 88:
        call = "rollout.register(\n    rollout.Query(\n" + "".join(f"        {o},\n" for o in options) + "    )\n)"
    path.write_text(text.rstrip("\n") + "\n\n" + "\n".join([*comment, call]) + "\n")
    return path


def _cases(values):
    """A tuple of one parameter set (a tuple: ruff wants no mutable class attribute), as ruff formats it."""
    one = "{" + ", ".join(values) + "}"
    if len(f"    cases = ({one},)") <= LINE:
        return [f"    cases = ({one},)"]
    return ["    cases = (", *_fitted("{", values, "},", "        "), "    )"]


def _test(config, function, query, params):
    path = Path(config.path) / f"test_rollout_{re.sub(r'[^0-9a-zA-Z_]', '_', query)}.py"
    imports, values = set(), []
    for param in params:
        kind = param.item if param.type is list else param.type
        expression, needed = EXAMPLES[kind.__name__]
        if needed:
            imports.add(needed)
        values.append(f'"{param.name}": ' + (f"[{expression}]" if param.type is list else expression))
    camel = "".join(part.capitalize() for part in re.split(r"[^0-9a-zA-Z]", query) if part)
    lines = [
        *_docstring([f"The twin of {function.signature} gives its answer (`manage.py rollout adopt`)."], ""),
        "",
        *_imports(imports),
        *([""] if imports else []),
        "from rollout.testing import TwinTestCase",
        "",
        "",
        f"class {camel}TwinTest(TwinTestCase):",
        f'    query = "{query}"',
        "    # Parameter sets to compare both sides on; create the rows they read in",
        "    # setUpTestData, so that the answers are worth comparing.",
        *_cases(values),
    ]
    if path.exists():
        raise OperationError(f"{query}: {path} exists already")
    path.write_text("\n".join(lines) + "\n")
    return path


def adopt(function_name, app_label=None, query=None, using="default"):
    """Write the twin stub, the declaration and the test for a function; returns (paths written, notes)."""
    try:
        function = catalog.find(function_name, using)
    except catalog.FunctionNotFound as exc:
        raise OperationError(f"function: {exc}") from None
    try:
        params = [param_for(argument) for argument in function.arguments]
    except ValueError as exc:
        raise OperationError(f"function {function.signature}: {exc}") from None
    unusable = [a.name for a in function.arguments if not _python_name(a.name) or re.fullmatch(r"arg\d+", a.name)]
    if unusable:
        raise OperationError(
            f"function {function.signature}: argument(s) {', '.join(unusable)} have no name a Python keyword "
            "parameter can take; name them in the function (CREATE OR REPLACE FUNCTION … (client_id bigint …))"
        )
    return scaffold(function, params, _app(app_label), query or function.name, using)


def scaffold(function, params, config, query, using="default"):
    """Write the three files into the app (an AppConfig, or anything with .name and .path)."""
    twin_name = _python_name(query) or re.sub(r"\W", "_", query)
    twins = Path(config.path) / "twins.py"
    if twins.exists() and re.search(rf"^def {twin_name}\(", twins.read_text(), re.MULTILINE):
        raise OperationError(f"{query}: {twins} already defines {twin_name}")
    writes = catalog.writes(function, using)
    declared = _declaration(config, function, query, twin_name, writes, using)
    imports, stub = _stub(function, twin_name, params)
    if not twins.exists():
        twins.write_text('"""Twins of this app\'s PostgreSQL functions (manage.py rollout adopt)."""\n')
    _add_to_module(twins, imports, stub)
    test = _test(config, function, query, params)
    ensure_flags("adopt", using, names=[query])  # inactive: the function serves until an operator says otherwise
    notes = [f"shadow, rescue and caching are refused: {writes}"] if writes else []
    return [twins, declared, test], notes
