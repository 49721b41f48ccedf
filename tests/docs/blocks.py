"""The code blocks of a Markdown document, with the markers that say how the docs test treats them.

A block is fenced (```) or indented by four spaces after a blank line. The HTML comment on the line before a
block (a blank line between is allowed) marks it:

    <!-- not-run: why -->        a command block the test does not run (its `manage.py` lines are still parsed)
    <!-- output-of: COMMAND -->  this block is what COMMAND prints; the test runs COMMAND and compares
    <!-- needs: PROGRAM -->      run only when PROGRAM is installed (like the tests that use it)

A block is a command block when a line starts with `$ `, names `.venv/bin/`, or starts with a program a reader
runs in a shell. In a block with `$ ` prompts, the lines after each command are what it prints. In shown
output `…` stands for any text, and a line of only `…` for any number of lines.
"""

import dataclasses
import re
from pathlib import Path

MARKER = re.compile(r"^<!--\s*(not-run|output-of|needs):\s*(.*?)\s*-->$")
SHELL_START = re.compile(r"^(\$ |\(cd |(?:[A-Z_]+=\S*\s+)*(?:\.venv/bin/|python3? |bash |promtool |uptime$|export ))")


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first line
    text: str
    markers: dict

    @property
    def where(self):
        return f"{self.path.name}:{self.line}"

    @property
    def is_command(self):
        return any(SHELL_START.match(line) or ".venv/bin/" in line for line in self.text.splitlines())

    def steps(self):
        """(command, expected output or None) in order: one step per `$ ` prompt, else the whole block."""
        lines = self.text.splitlines()
        if not any(line.startswith("$ ") for line in lines):
            return [(self.text, None)]
        steps = []
        for line in lines:
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        return [(command, "\n".join(output)) for command, output in steps]


def blocks(path: Path):
    lines = path.read_text().splitlines()
    found, markers, index = [], {}, 0
    while index < len(lines):
        line = lines[index]
        marker = MARKER.match(line.strip())
        if marker:
            if marker.group(1) in markers:
                raise ValueError(f"{path.name}:{index + 1}: {marker.group(1)} given twice")
            markers[marker.group(1)] = marker.group(2)
            index += 1
            continue
        if line.startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            found.append(Block(path, index + 2, "\n".join(lines[index + 1 : end]), markers))
            markers, index = {}, end + 1
            continue
        if line.startswith("    ") and (index == 0 or not lines[index - 1].strip()):
            end = index
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            text = "\n".join(line[4:] for line in lines[index:end]).rstrip()
            found.append(Block(path, index + 1, text, markers))
            markers, index = {}, end
            continue
        if line.strip() and markers:
            raise ValueError(f"{path.name}:{index + 1}: a marker must come right before a code block")
        index += 1
    if markers:
        raise ValueError(f"{path.name}: a marker at the end marks no block")
    return found


def matches(expected: str, actual: str):
    """Line by line, trailing spaces ignored; `…` in a line stands for any text, a line of only `…` for any lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "…" else "[^\n]*".join(map(re.escape, line.rstrip().split("…"))) + "\n"
        for line in expected.rstrip().splitlines()
    )
    return re.fullmatch(pattern, "".join(line.rstrip() + "\n" for line in actual.rstrip().splitlines())) is not None
