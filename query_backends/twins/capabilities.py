"""Twin of fn_get_web_caps: the web menu tree as one recursive CTE."""

from django.db.models import ExpressionWrapper, F, IntegerField, TextField, Value
from django.db.models.functions import Cast
from django_cte import CTE, with_cte

from query_backends.models import Capability
from query_backends.twins.compiled import CompiledQuery
from query_backends.twins.postgres import Glue, InArrayOf

CAPABILITY_COLUMNS = ("id", "capsname", "capscode", "parent_id", "cfor", "depth", "path", "xpath")
FIELDS = ("id", "capsname", "capscode", "parent_id", "cfor")


def _tree(root_id):
    def make(cte):
        root = Capability.objects.filter(id=root_id, cfor="WEB").values(
            *FIELDS,
            depth=Value(1, output_field=IntegerField()),
            path=Cast("capscode", TextField()),
            xpath=Cast("id", TextField()),
        )
        child_depth = ExpressionWrapper(cte.col.depth + Value(1), output_field=IntegerField())
        # Each level probes capability's parent_id index once per row of the walk (InArrayOf), whatever
        # the size of capability: the plain join hashed a sequential scan of the whole table per level.
        children = cte.join(Capability, InArrayOf(F("parent_id"), cte.col.id)).values(
            *FIELDS,
            depth=child_depth,
            path=Glue(cte.col.path, Value("->"), "capscode"),
            # The legacy xpath runs the child id and its depth together: "1>52" is child 5 at depth 2.
            xpath=Glue(cte.col.xpath, Value(">"), Cast("id", TextField()), Cast(child_depth, TextField())),
        )
        return root.union(children, all=True)

    tree = CTE.recursive(make, name="caps")
    return with_cte(tree, select=tree).order_by("xpath", "id")


_TREE = CompiledQuery(_tree)


def web_capabilities(root_id):
    return _TREE.rows(CAPABILITY_COLUMNS, root_id=root_id)
