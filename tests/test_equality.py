from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from query_backends.equality import compare
from query_backends.errors import LegacyDataError, QueryTimeout

pytestmark = pytest.mark.smoke
T = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_numbers_by_value_timestamps_as_instants_json_by_value():
    control = [{"id": 1, "n": Decimal("1.50"), "at": T, "info": {"a": [1, 2]}}]
    candidate = [
        {
            "id": 1,
            "n": Decimal("1.5"),
            "at": T.astimezone(timezone(timedelta(hours=5, minutes=30))),
            "info": {"a": [1, 2]},
        }
    ]
    assert compare(control, candidate).equal


def test_text_is_byte_for_byte_and_json_true_is_not_one():
    assert not compare([{"id": 1, "s": "A"}], [{"id": 1, "s": "a"}]).equal
    assert not compare({"k": True}, {"k": 1}).equal
    assert not compare("\u00e9", "e\u0301").equal  # composed vs decomposed


def test_unordered_results_are_multisets_keyed_by_the_first_column():
    rows = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    assert compare(rows, list(reversed(rows))).equal
    assert not compare(rows, list(reversed(rows)), ordered=True).equal
    assert compare(rows, list(reversed(rows)), ordered=True).reordered


def test_difference_names_missing_extra_and_changed_fields_with_both_values():
    control = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    candidate = [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 4, "v": "d"}]
    difference = compare(control, candidate)
    assert difference.missing == ({"id": 3, "v": "c"},)
    assert difference.extra == ({"id": 4, "v": "d"},)
    [change] = difference.changed
    assert (change.key, change.field, change.control, change.candidate) == (2, "v", "b", "B")


def test_duplicate_rows_count_as_a_multiset():
    assert not compare([{"id": 1}, {"id": 1}], [{"id": 1}]).equal
    assert compare([{"id": 1}, {"id": 1}], [{"id": 1}, {"id": 1}]).equal


def test_errors_of_the_same_kind_are_equal_and_one_failing_is_not():
    assert compare(LegacyDataError("x"), LegacyDataError("y")).equal
    assert compare(LegacyDataError("x"), QueryTimeout("y")).errors == ("legacy_data", "timeout")
    assert compare([], LegacyDataError("y")).errors == (None, "legacy_data")


def test_scalars_and_json_objects():
    assert compare("1 2 3", "1 2 3").equal
    assert compare("1 2 3", "1 3").value == ("1 2 3", "1 3")
    assert compare(None, None).equal and not compare(None, {}).equal
    difference = compare({"1": {"bucode": "A"}}, {"1": {"bucode": "B"}, "2": {}})
    assert [c.key for c in difference.changed] == ["1", "2"]
    assert compare([1, 2], [1, 2], ordered=True).equal and not compare([1, 2], [2, 1], ordered=True).equal
