from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query_backends.errors import LegacyDataError, QueryTimeout
from rollout.equality import canonical, compare

pytestmark = pytest.mark.smoke
T = datetime(2024, 5, 1, 12, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))


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


def test_unordered_scalar_lists_are_multisets_not_sets_and_permutations_are_equal():
    assert compare([1, 2], [2, 1]).equal
    difference = compare([1, 1, 2], [1, 2, 2])
    assert (difference.missing, difference.extra, difference.reordered) == ((1,), (2,), False)
    assert compare([1, 2], [2, 1], ordered=True).reordered
    assert compare([Decimal("1.50")], [Decimal("1.5")]).equal and not compare([True], [1]).equal


def test_a_difference_has_no_truth_value_only_an_explicit_equal():
    with pytest.raises(TypeError, match=r"difference\.equal"):
        bool(compare([1], [1]))
    assert compare([1], [1]).equal is True and compare([1], [2]).equal is False


# --- properties of compare() itself -------------------------------------------------------------

SCALARS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([Decimal("1.0"), Decimal("1.50"), True, False, None, "a", "A", "é"]),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2024, 1, 2), timezones=st.sampled_from([UTC, IST])),
)
ROWS = st.fixed_dictionaries(
    {"id": st.integers(0, 4), "v": SCALARS, "info": st.dictionaries(st.sampled_from("ab"), SCALARS, max_size=2)}
)
ANSWERS = st.lists(SCALARS, max_size=8) | st.lists(ROWS, max_size=8)


@given(ANSWERS, st.randoms(use_true_random=False))
def test_an_unordered_answer_equals_every_permutation_of_itself(answer, rng):
    shuffled = list(answer)
    rng.shuffle(shuffled)
    assert compare(answer, shuffled).equal


@given(ANSWERS, st.data())
def test_adding_or_removing_one_element_or_one_duplicate_is_always_a_difference(answer, data):
    ordered = data.draw(st.booleans())
    element_type = ROWS if answer and isinstance(answer[0], dict) else SCALARS
    added = data.draw(st.sampled_from(answer) | element_type if answer else element_type)  # often a duplicate
    position = data.draw(st.integers(0, len(answer)))
    longer = [*answer[:position], added, *answer[position:]]
    assert not compare(answer, longer, ordered=ordered).equal
    assert not compare(longer, answer, ordered=ordered).equal
    if answer:
        removed = data.draw(st.integers(0, len(answer) - 1))
        shorter = answer[:removed] + answer[removed + 1 :]
        assert not compare(answer, shorter, ordered=ordered).equal


@given(ANSWERS, ANSWERS, st.booleans())
def test_missing_one_way_is_extra_the_other_way(a, b, ordered):
    forward, backward = compare(a, b, ordered=ordered), compare(b, a, ordered=ordered)
    assert Counter(map(canonical, forward.missing)) == Counter(map(canonical, backward.extra))
    assert Counter(map(canonical, forward.extra)) == Counter(map(canonical, backward.missing))
    assert forward.equal == backward.equal
    swapped = [(c.key, c.field, c.candidate, c.control) for c in backward.changed]
    assert Counter(map(canonical, [(c.key, c.field, c.control, c.candidate) for c in forward.changed])) == Counter(
        map(canonical, swapped)
    )
