"""Every command in README.md and docs/*.md works as written, and prints what the docs show.

Each document's command blocks run in order, from the repository root, on its own copy of one seeded database.
tests/docs/blocks.py says how a block is marked as not run or as the output of a command."""

import re
import shlex
import shutil

import pytest
from django.core.management import CommandError, get_commands, load_command_class

from tests.docs.blocks import blocks, matches
from tests.docs.conftest import shell
from tests.rollout_helpers import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDERS = re.compile(r"[\[…<]|\.\.\.|\b[A-Z][A-Z_]*\b")  # [optional], …, <name>, QUERY: a synopsis


def manage_py_lines(text):
    """The argv after `manage.py` on each command line, comments and what follows `&&`, `;` or `|` left out."""
    for line in text.replace("\\\n", " ").splitlines():
        if "manage.py " not in line:
            continue
        tail = line.split("manage.py ", 1)[1]
        for separator in ("&&", ";", "|", " & ", ")"):
            tail = tail.split(separator, 1)[0]
        yield line, tail.split(" #", 1)[0].strip()


def parse_error(line, argv):
    """Why a not-run block's `manage.py` line would fail before it starts, or None."""
    words = argv.split()
    commands = get_commands()
    if not words or words[0] not in commands:
        return f"no such command: {line.strip()}"
    if PLACEHOLDERS.search(argv):
        return None  # a synopsis: the command exists, its arguments are placeholders
    try:
        words = shlex.split(argv)
    except ValueError:
        return None  # a quoted argument that goes on over the next lines (a script): the command exists
    command = load_command_class(commands[words[0]], words[0])
    try:
        command.create_parser("manage.py", words[0]).parse_args(words[1:])
    except CommandError as error:
        return f"{line.strip()}: {error}"
    return None


def run(command, database):
    done = shell(command, database)
    if done.returncode:
        return None, f"exit {done.returncode}: {command}\n{done.stdout[-1500:]}{done.stderr[-3000:]}"
    return done.stdout, None


@pytest.mark.django_db
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_command_in_the_document_works_as_written(document, scratch_database):
    failures = []
    for block in blocks(document):
        if "not-run" in block.markers:
            if not block.markers["not-run"]:
                failures.append(f"{block.where}: not-run needs a reason")
            failures += [
                f"{block.where}: {e}" for e in (parse_error(*line) for line in manage_py_lines(block.text)) if e
            ]
            continue
        if "needs" in block.markers and not shutil.which(block.markers["needs"]):
            continue  # like the tests that use it, skipped where the program is not installed
        if "output-of" in block.markers:
            steps = [(block.markers["output-of"], block.text)]
        elif block.is_command:
            steps = block.steps()
        else:
            continue
        for command, expected in steps:
            out, error = run(command, scratch_database())
            if error:
                failures.append(f"{block.where}: {error}")
                break
            if expected is not None and not matches(expected, out):
                failures.append(f"{block.where}: `{command}` printed\n{out}\nbut the doc shows\n{expected}")
    assert not failures, "\n\n".join(failures)
