from datetime import UTC, datetime

import pytest

from query_backends.models import Asset, BusinessUnit, JobNeed
from query_backends.twins.compiled import _UNCOMPILABLE, CompiledQuery

pytestmark = pytest.mark.django_db


def plain(queryset, columns):
    return [dict(zip(columns, row)) for row in queryset.values_list(*columns)]


def test_a_shape_compiles_once_and_later_values_answer_like_the_queryset():
    def build(site, since, ids):
        return Asset.objects.filter(bu_id=site, mdtz__gte=since, id__in=ids).order_by("id")

    query = CompiledQuery(build)
    columns = ("id", "assetcode", "capacity", "uuid", "mdtz")
    sites = list(BusinessUnit.objects.filter(id__gt=0).values_list("id", flat=True)[:6])
    since = datetime(2000, 1, 1, tzinfo=UTC)
    for site in sites:
        ids = list(Asset.objects.filter(bu_id=site).values_list("id", flat=True)[:3])
        ids += [0] * (3 - len(ids))
        assert query.rows(columns, site=site, since=since, ids=ids) == plain(build(site, since, ids), columns)
    assert len(query._plans) == 1 and next(iter(query._plans.values())) is not _UNCOMPILABLE


def test_what_cannot_be_mapped_safely_runs_the_queryset():
    unused = CompiledQuery(lambda site, ignored: JobNeed.objects.filter(bu_id=site).order_by("id")[:5])
    assert unused.rows(("id",), site=1, ignored=7) == plain(JobNeed.objects.filter(bu_id=1).order_by("id")[:5], ("id",))
    assert list(unused._plans.values()) == [_UNCOMPILABLE]
    empty = CompiledQuery(lambda ids: JobNeed.objects.filter(id__in=ids))
    assert empty.rows(("id",), ids=[]) == []
    assert list(empty._plans.values()) == [_UNCOMPILABLE]


def test_booleans_and_list_lengths_are_part_of_the_shape():
    shape = CompiledQuery.shape
    assert shape(("id",), {"a": 1, "b": True}) != shape(("id",), {"a": 1, "b": False})
    assert shape(("id",), {"ids": [1, 2]}) != shape(("id",), {"ids": [1, 2, 3]})
    assert shape(("id",), {"a": 1}) == shape(("id",), {"a": 2})
