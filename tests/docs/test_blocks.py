import pytest

from tests.docs.blocks import blocks, matches


def document(tmp_path, text):
    path = tmp_path / "doc.md"
    path.write_text(text)
    return path


def test_indented_and_fenced_blocks_with_their_markers(tmp_path):
    found = blocks(
        document(
            tmp_path,
            "Run:\n\n    .venv/bin/python manage.py migrate\n\n"
            "<!-- not-run: serves until Ctrl-C -->\n\n    .venv/bin/python manage.py demo --serve\n\n"
            "<!-- output-of: .venv/bin/python manage.py rollout status -->\n```\nquery  serving\n```\n"
            "A table:\n\n    a  b\n",
        )
    )
    assert [(b.line, b.markers, b.is_command) for b in found] == [
        (3, {}, True),
        (7, {"not-run": "serves until Ctrl-C"}, True),
        (11, {"output-of": ".venv/bin/python manage.py rollout status"}, False),
        (15, {}, False),
    ]


def test_prompts_split_a_block_into_commands_and_what_each_prints(tmp_path):
    (block,) = blocks(document(tmp_path, "\n    $ echo a\n    a\n    $ true\n    $ echo b; echo c\n    b\n    c\n"))
    assert block.steps() == [("echo a", "a"), ("true", ""), ("echo b; echo c", "b\nc")]


@pytest.mark.parametrize(
    "text",
    [
        "<!-- not-run: x -->\nSome prose.\n\n    ls\n",
        "    ls\n\n<!-- not-run: x -->\n",
        "<!-- needs: a -->\n<!-- needs: b -->\n",
    ],
)
def test_a_marker_that_marks_no_block_is_an_error(tmp_path, text):
    with pytest.raises(ValueError, match=r"marker|twice"):
        blocks(document(tmp_path, text))


def test_shown_output_matches_word_for_word_with_ellipses_for_what_is_left_out():
    assert matches("a  b\nc", "a  b  \nc\n")
    assert not matches("a  b\nc", "a b\nc")
    assert not matches("a\nc", "a\nb\nc")
    assert matches("a …\n…\nz", "a 1 2\nb\nc\nz")
    assert matches("a\n…", "a")
    assert not matches("a\n…\nz", "a\nb")
