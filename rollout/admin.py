"""Operator surfaces in the Django admin; every flag write is a thin layer over rollout.flags.writes."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from rollout import operations, reports
from rollout.experiments import query_name, registry, sides
from rollout.flags import writes
from rollout.flags.history import changed_by
from rollout.flags.state import PRECEDENCE
from rollout.models import ApiToken, Discrepancy, QueryFlag
from rollout.routing.actors import cohorts, percent_keys
from rollout.shadow.replay import replay


@admin.action(description="Send back to the control (kill)", permissions=["change"])
def kill(modeladmin, request, queryset):
    try:
        flags = writes.kill([query_name(f.name) for f in queryset], user=request.user, source="admin")
    except writes.OperationError as exc:  # busy or retired flags, named once every other flag is killed
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return
    modeladmin.message_user(request, f"{len(flags)} flag(s) sent back to the control.", messages.WARNING)


@admin.action(description="Shadow 100 %%", permissions=["change"])
def shadow_all(modeladmin, request, queryset):
    for flag in queryset:
        writes.set_shadow(query_name(flag.name), 100, user=request.user, source="admin")
    modeladmin.message_user(request, f"{queryset.count()} flag(s) compared on every call.")


@admin.action(description="Clear guard", permissions=["change"])
def clear_guard(modeladmin, request, queryset):
    for flag in queryset:
        writes.clear_guard(query_name(flag.name), user=request.user, source="admin")
    modeladmin.message_user(request, "Guard cleared; the flags stay as they are until you turn them on.")


def _cohort_field(cohort, excluded):
    return f"{'exclude' if excluded else 'cohort'}__{cohort}"


def _ids(text, field):
    try:
        return sorted({int(part) for part in text.replace(",", " ").split()})
    except ValueError:
        raise forms.ValidationError(f"{field}: ids are whole numbers separated by commas") from None


class QueryFlagForm(forms.ModelForm):
    """The flag's own fields, one text box of ids per cohort the resolver declares, and the version seen."""

    seen_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = QueryFlag
        # Cohorts and exclusions are edited through the per-cohort boxes below.
        fields = [
            f.name
            for f in [*QueryFlag._meta.concrete_fields, *QueryFlag._meta.many_to_many]
            if f.editable and f.name not in ("id", "cohorts", "exclusions")
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["percent_key"] = forms.ChoiceField(choices=[(k, k) for k in percent_keys()])
        self.fields["seen_version"].initial = self.instance.version
        # Without the version seen, a save could undo a change made since the form was opened.
        self.fields["seen_version"].required = self.instance.pk is not None
        for name, cohort in cohorts().items():
            for excluded, stored in ((False, self.instance.cohorts), (True, self.instance.exclusions)):
                self.fields[_cohort_field(name, excluded)] = forms.CharField(
                    required=False,
                    label=f"{'excluded ' if excluded else ''}{cohort.label} ids",
                    initial=", ".join(map(str, (stored or {}).get(name, []))),
                    help_text=f"{'Never' if excluded else 'The candidate serves'} these {cohort.label} ids.",
                )

    def clean(self):
        data = super().clean()
        for field, stored in (("cohorts", False), ("exclusions", True)):
            ids = {name: _ids(data.get(_cohort_field(name, stored)) or "", name) for name in cohorts()}
            try:
                writes.check_cohort_ids(ids)
            except writes.OperationError as exc:
                raise forms.ValidationError(str(exc)) from None
            setattr(self.instance, field, {name: found for name, found in ids.items() if found})
        return data

    def changed_fields(self):
        """The model fields the operator changed: only these are written."""
        changed = set(self.changed_data) - {"seen_version"}
        fields = {f for f in changed if "__" not in f}
        fields |= {"exclusions" if f.startswith("exclude__") else "cohorts" for f in changed if "__" in f}
        return fields - {"users", "groups"}


def _rule_lines():
    """The form fields of each rule of the chain, one line per rule, in precedence order."""
    shown, lines = set(), []
    for rule in PRECEDENCE:
        fields = []
        for field in rule.form:
            if field in ("cohorts", "exclusions"):
                fields += [_cohort_field(name, field == "exclusions") for name in cohorts()]
            else:
                fields.append(field)
        line = tuple(field for field in fields if field not in shown)
        shown.update(line)
        if line:
            lines.append(line)
    return tuple(lines)


def _precedence():
    return " → ".join(f"{rule.name} ({'candidate' if rule.verdict else 'control'})" for rule in PRECEDENCE) + (
        " → otherwise the control."
    )


@admin.register(QueryFlag)
class QueryFlagAdmin(admin.ModelAdmin):
    form = QueryFlagForm
    actions = [kill, shadow_all, clear_guard]
    search_fields = ("name", "note")
    filter_horizontal = ("users", "groups")
    # Narrow enough to read whole at 1400 px beside the admin's two sidebars (when it was changed: the history).
    list_display = ("name", "serving", "percent_by", "shadow", "fallback", "guard_state")
    list_filter = ("everyone", "fallback", "guard_tripped_at")
    readonly_fields = ("guard_tripped_at", "guard_reason", "history", "created", "modified")

    def get_fieldsets(self, request, obj=None):
        # The cohort lines come from the actor resolver the host configures.
        return (
            (None, {"fields": ("name", "note", "seen_version")}),
            (
                "Who is served: each line is a rule, the first with an opinion wins",
                {"fields": _rule_lines(), "description": _precedence()},
            ),
            (
                "Shadow, fallback and rescue",
                {
                    "fields": ("shadow_percent", "fallback", "rescue", "rescue_after"),
                    "description": "Fallback: the control serves when the candidate raises. Rescue (opt-in): "
                    "the candidate serves when the control raises, once the guard has seen it healthy for the "
                    "last `rescue after` comparisons.",
                },
            ),
            (
                "Guard",
                {
                    "fields": (
                        "guard_window",
                        "guard_min_sample",
                        "guard_max_discrepancy_rate",
                        "guard_max_error_rate",
                        "guard_max_latency_ratio",
                        "guard_tripped_at",
                        "guard_reason",
                    )
                },
            ),
            ("History", {"fields": ("history", "created", "modified")}),
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The cohort boxes are made per request from the resolver: not model fields, so not listed here.
        kwargs["fields"] = [
            *(f for f in QueryFlagForm.Meta.fields if f not in self.get_readonly_fields(request, obj)),
            "seen_version",
        ]
        return super().get_form(request, obj, change, **kwargs)

    def get_queryset(self, request):
        # serving() reads each flag's users and groups.
        return super().get_queryset(request).prefetch_related("users", "groups")

    @admin.display(description="serving")
    def serving(self, flag):
        # At least "candidate for everyone" wide: the list has nine or more such rows to read at a glance.
        return format_html('<span style="display:inline-block;min-width:12em">{}</span>', reports.serving(flag))

    @admin.display(description="percent", ordering="percent")
    def percent_by(self, flag):
        return format_html(
            '<span style="white-space:nowrap">{}</span>',
            f"{float(flag.percent):g} % by {flag.percent_key}" if flag.percent else "-",
        )

    @admin.display(description="shadow", ordering="shadow_percent")
    def shadow(self, flag):
        return format_html(
            '<span style="white-space:nowrap">{}</span>',
            f"{float(flag.shadow_percent):g} %" if flag.shadow_percent else "-",
        )

    @admin.display(description="guard")
    def guard_state(self, flag):
        # When and why are long: on hover here, in full on the flag's page.
        return format_html(
            '<span style="white-space:nowrap" title="{}">{}</span>',
            reports.guard_status(flag),
            "tripped" if flag.guard_tripped_at else reports.guard_status(flag),
        )

    @admin.display(description="history")
    def history(self, flag):
        rows = reports.history(query_name(flag.name), limit=20) if flag.pk else []
        if not rows:
            return "no change yet"
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", ((r["when"], r["by"], r["changes"]) for r in rows)
            ),
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # A refused write (the flag moved since the form was opened, the guard's trip, a lock held too
        # long) leaves the flag as it was: say why, and show the flag as it is now.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except writes.OperationError as exc:
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.path)

    def save_model(self, request, obj, form, change):
        if not change:
            with changed_by(request.user, "admin"):
                obj.save()
            return
        values = {field: getattr(obj, field) for field in form.changed_fields()}
        saved = writes.save_form(obj.name, values, form.cleaned_data["seen_version"], user=request.user)
        obj.version = saved.version

    def save_related(self, request, form, formsets, change):
        # Memberships only when the operator touched them; the history records each add and remove.
        if change and not {"users", "groups"} & set(form.changed_data):
            return
        with changed_by(request.user, "admin"):
            super().save_related(request, form, formsets, change)


def _set_status(status):
    @admin.action(description=f"Mark as {status}", permissions=["change"])
    def action(modeladmin, request, queryset):
        count = queryset.update(status=status, status_changed_by=request.user, status_changed_at=timezone.now())
        modeladmin.message_user(request, f"{count} discrepancy(ies) marked {status}.")

    action.__name__ = f"mark_{status}"
    return action


def _detail_rows(details):
    """Table rows of an experiment's JSON details: a part holding "control" and "candidate" shows them side by
    side; any other part (each item of a list) on a row of its own, under its name."""
    for name, part in details.items():
        if part in (None, False, [], {}, ""):
            continue
        for item in part if isinstance(part, list) else [part]:
            if isinstance(item, dict) and {"control", "candidate"} <= item.keys():
                rest = {k: v for k, v in item.items() if k not in ("control", "candidate")}
                label = " · ".join([name, *map(str, rest.values())])
                yield label, item["control"], item["candidate"]
            else:
                yield name, item, ""


@admin.register(Discrepancy)
class DiscrepancyAdmin(admin.ModelAdmin):
    list_display = ("id", "query", "kind", "status", "occurrences", "first_seen", "last_seen")
    list_filter = ("query", "kind", "status", "last_seen")
    date_hierarchy = "last_seen"
    actions = [_set_status(s) for s in ("acknowledged", "ignored", "fixed")]
    fields = (
        "query",
        "flag",
        "kind",
        "status",
        "occurrences",
        "first_seen",
        "last_seen",
        "status_changed_by",
        "status_changed_at",
        "difference",
        "fingerprint",
    )
    readonly_fields = tuple(field for field in fields if field != "status")  # an operator sets the status only

    def has_add_permission(self, request):
        return False

    @admin.display(description="latest occurrence")
    def difference(self, discrepancy):
        example = discrepancy.latest()
        if example is None:
            return "-"
        diff = example.diff
        control, candidate = sides(discrepancy.query)
        rows = [("parameters", example.params, ""), ("actor", example.actor, "")]
        if example.control_error or example.candidate_error:
            rows.append(("errors", example.control_error or "-", example.candidate_error or "-"))
        rows += list(_detail_rows(diff))
        rows = [
            (label, reports.as_json(control_value), reports.as_json(candidate_value))
            for label, control_value, candidate_value in rows
        ]
        return format_html(
            '<table class="rollout-diff"><tr><th></th><th>{} (control)</th><th>{} (candidate)</th></tr>{}</table>',
            control.label,
            candidate.label,
            format_html_join(
                "", '<tr><th>{}</th><td style="background:#fee">{}</td><td style="background:#efe">{}</td></tr>', rows
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The replay button (a POST form in the object tools) needs to know whether the query still exists.
        discrepancy = self.get_object(request, object_id)
        registered = discrepancy is not None and discrepancy.query in registry().names()
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "registered": registered})

    def get_urls(self):
        return [
            path(
                "<int:pk>/replay/",
                self.admin_site.admin_view(require_POST(self.replay_view)),
                name="rollout_discrepancy_replay",
            ),
            *super().get_urls(),
        ]

    def replay_view(self, request, pk):
        discrepancy = get_object_or_404(Discrepancy, pk=pk)
        if not self.has_view_permission(request, discrepancy):
            return HttpResponseRedirect(reverse("admin:index"))
        try:
            outcome = replay(pk)
        except operations.OperationError as exc:
            self.message_user(request, f"Cannot replay: {exc}", messages.ERROR)
        else:
            self.message_user(request, outcome["text"], messages.SUCCESS if outcome["agree"] else messages.WARNING)
        return HttpResponseRedirect(reverse("admin:rollout_discrepancy_change", args=[pk]))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issue (the key is shown once, on the page that follows) and revoke (delete) API tokens."""

    list_display = ("id", "user", "created")
    list_filter = ("created",)
    search_fields = ("user__username",)
    fields = ("user",)

    def has_change_permission(self, request, obj=None):
        return False  # a token is issued or revoked, never edited

    def save_model(self, request, obj, form, change):
        request._issued_key = ApiToken.issue(obj.user)
        obj.pk = ApiToken.objects.get(digest=ApiToken._digest(request._issued_key)).pk

    def response_add(self, request, obj, post_url_continue=None):
        # Rendered, never redirected: the key must not travel through the messages cookie or the session.
        context = {
            **self.admin_site.each_context(request),
            "title": "API token issued",
            "token": obj,
            "key": request._issued_key,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/rollout/apitoken/issued.html", context)
