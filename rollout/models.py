"""The query flag (rollout's own model, beside waffle's) and its change history."""

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from rollout.flags.state import FlagState
from rollout.shadow.result import RECORDED_CHOICES


class QueryFlag(models.Model):
    """One flag per query: on for an actor → the candidate (ORM twin) serves; off → the control (function).

    Its own model: the host's waffle flags keep waffle's model and behaviour. Which rule decides is
    flags.state.PRECEDENCE, written there once (docs/rollout.md shows it as a table). Every write goes
    through flags.writes (locked row, only the fields it changes, one transaction with the history).
    """

    name = models.CharField(max_length=100, unique=True)
    everyone = models.BooleanField(
        null=True,
        blank=True,
        help_text="Yes: the candidate for everyone. No: the control for everyone (the kill switch). "
        "Unknown: the rules below decide.",
    )
    # Cohorts: {attribute: [ids]}, attributes declared by ROLLOUT_ACTOR_RESOLVER (rollout.routing.actors).
    cohorts = models.JSONField(default=dict, blank=True, help_text="The candidate serves actors in these cohorts.")
    exclusions = models.JSONField(
        default=dict, blank=True, help_text="Never the candidate for actors in these cohorts, whatever else matches."
    )
    groups = models.ManyToManyField(Group, blank=True, help_text="The candidate serves these Django user groups.")
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, help_text="The candidate serves these users.")
    staff = models.BooleanField(default=False, help_text="The candidate serves staff users.")
    superusers = models.BooleanField(default=False, help_text="The candidate serves superusers.")
    authenticated = models.BooleanField(default=False, help_text="The candidate serves every signed-in user.")
    percent = models.DecimalField(
        max_digits=3,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(99.9)],
        help_text="A sticky percentage (0–99.9) of actors the candidate serves.",
    )
    percent_key = models.CharField(
        max_length=40,
        default="user",
        help_text="What the sticky percentage hashes: the user, or one of the resolver's cohort attributes "
        "(a whole site, say, switching together).",
    )
    shadow_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Share of calls (0–100) that also run the other backend off the request path and compare.",
    )
    fallback = models.BooleanField(
        default=True, help_text="When the candidate raises while serving, serve the control."
    )
    rescue = models.BooleanField(
        default=False,
        help_text="When the control raises while serving, serve the candidate's answer instead — only while "
        "the guard has seen the candidate healthy for the last `rescue after` comparisons.",
    )
    rescue_after = models.PositiveIntegerField(
        default=200, help_text="Comparisons the guard must have seen healthy before the candidate may rescue."
    )
    guard_window = models.PositiveIntegerField(default=200, help_text="The guard looks at the last N comparisons.")
    guard_min_sample = models.PositiveIntegerField(default=50, help_text="The guard never trips on fewer comparisons.")
    guard_max_discrepancy_rate = models.FloatField(default=0.01, help_text="Trip at this share of discrepancies.")
    guard_max_error_rate = models.FloatField(default=0.05, help_text="Trip at this share of candidate errors.")
    guard_max_latency_ratio = models.FloatField(
        null=True, blank=True, default=10.0, help_text="Trip when candidate/control median latency reaches this."
    )
    guard_tripped_at = models.DateTimeField(null=True, blank=True)
    guard_reason = models.TextField(blank=True)
    # Who last turned the flag off for everyone ("guard" after a trip): the status says why it is off.
    killed_by = models.CharField(max_length=20, blank=True, editable=False)
    # What `everyone` was before the kill (Yes or unknown): the kill does not change the lifecycle stage, so the
    # stage of a killed flag is read with this value (set by flags.writes when `everyone` becomes No).
    killed_from = models.BooleanField(null=True, blank=True, editable=False)
    note = models.TextField(blank=True, help_text="Where this flag is used.")
    # The lifecycle (rollout.lifecycle): the query's plan, where it stands in it, and its retirement.
    plan = models.JSONField(
        default=dict, blank=True, editable=False, help_text="The rollout plan: its stages and their gates."
    )
    plan_stage = models.PositiveIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="The plan stage the flag is at (0 = the first); empty: not started.",
    )
    plan_paused = models.BooleanField(default=False, editable=False, help_text="The autopilot leaves it alone.")
    plan_paused_reason = models.TextField(blank=True, editable=False)
    # When the lifecycle stage (or the plan stage) last changed: set by flags.writes, read as "time in stage".
    stage_since = models.DateTimeField(null=True, blank=True, editable=False)
    # Set by a retirement migration: the candidate serves everyone, no decision, no shadow, no fallback.
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The flag's values before retirement: migrating back restores them.
    retired_from = models.JSONField(default=dict, blank=True, editable=False)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    modified = models.DateTimeField(default=timezone.now)
    # Bumped by every write (flags.writes): a form opened at version N is refused once the row is past N.
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = "query flag"
        verbose_name_plural = "query flags"

    def __str__(self):
        return self.name

    def save(self, *args, update_fields=None, **kwargs):
        # Every save is a new version (what stale forms and the flag cache's fingerprint compare).
        self.version = (self.version or 0) + 1 if self.pk else self.version
        self.modified = timezone.now()
        if update_fields is not None:
            update_fields = {*update_fields, "version", "modified"}
        super().save(*args, update_fields=update_fields, **kwargs)

    def state(self):
        return FlagState.from_flag(self)

    def is_active_for(self, actor):
        return self.state().is_active_for(actor)


class FlagChange(models.Model):
    """Who changed which flag, when, from what to what."""

    flag_name = models.CharField(max_length=100, db_index=True)
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.CharField(max_length=20)  # admin, cli, guard, migration, code
    changes = models.JSONField(default=dict)  # field → [before, after]
    version = models.PositiveIntegerField(null=True)  # the flag's version after this change
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self):
        return f"{self.flag_name} {self.changed_at:%Y-%m-%d %H:%M:%S} by {self.user or self.source}"


class Discrepancy(models.Model):
    """One kind of difference between control and candidate for one query, grouped by fingerprint."""

    KINDS = RECORDED_CHOICES
    STATUSES = [("new", "new"), ("acknowledged", "acknowledged"), ("fixed", "fixed"), ("ignored", "ignored")]

    query = models.CharField(max_length=100, db_index=True)
    flag = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=KINDS, db_index=True)
    fingerprint = models.CharField(max_length=64, unique=True)
    occurrences = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(auto_now_add=True, db_index=True)
    last_seen = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=20, choices=STATUSES, default="new", db_index=True)
    status_changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        verbose_name_plural = "discrepancies"

    def __str__(self):
        return f"{self.query} {self.kind} ×{self.occurrences}"

    def latest(self):
        return self.examples.order_by("-seen_at", "-id").first()


class DiscrepancyExample(models.Model):
    """One occurrence, with what it takes to reproduce it. At most DISCREPANCIES_PER_FINGERPRINT are kept."""

    discrepancy = models.ForeignKey(Discrepancy, on_delete=models.CASCADE, related_name="examples")
    seen_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.JSONField(default=dict)  # ids only
    params = models.JSONField(default=dict)
    diff = models.JSONField(default=dict)  # bounded; "cut" counts what was left out
    served_backend = models.CharField(max_length=20)
    control_duration = models.FloatField(null=True)
    candidate_duration = models.FloatField(null=True)
    control_error = models.TextField(blank=True)
    candidate_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-seen_at", "-id"]


class RecordedComparison(models.Model):
    """A comparison whose outcome is in the database: a redelivered task finds it here and counts once."""

    comparison_id = models.UUIDField(primary_key=True)
    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)


class RecordedCall(models.Model):
    """The parameters of a real call shadow mode compared: a query's validation cases when it names none."""

    query = models.CharField(max_length=100)
    digest = models.CharField(max_length=64)  # of the parameters' JSON: one row per distinct call
    params = models.JSONField()
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["query", "digest"], name="rollout_recordedcall_once")]


class GuardSample(models.Model):
    """One judged comparison in a flag's guard window (kept in PostgreSQL: a Redis outage cannot blind it)."""

    flag = models.CharField(max_length=100)
    discrepancy = models.BooleanField()
    candidate_error = models.BooleanField()
    control_duration = models.FloatField()
    candidate_duration = models.FloatField()
    # When it was judged: a plan's latency gate counts only the samples of the query's current stage. Empty on
    # samples from before this column, which therefore count for no stage.
    judged_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["flag", "-id"], name="rollout_guard_window")]


class MetricMinute(models.Model):
    """Counters and latency samples of one query and backend in one minute, summed over every process."""

    minute = models.BigIntegerField()  # minutes since the epoch, UTC
    query = models.CharField(max_length=100)
    backend = models.CharField(max_length=20)
    counts = models.JSONField(default=dict)
    samples = ArrayField(models.FloatField(), default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["minute", "query", "backend"], name="rollout_metric_minute_unique")
        ]
        indexes = [models.Index(fields=["minute"], name="rollout_metric_minute")]


class ApiToken(models.Model):
    """A bearer token for the JSON API. Only a hash is stored; the key is shown once, when issued."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("query_any_tenant", "Can query any client's data through the API")]

    @staticmethod
    def _digest(key):
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user):
        key = secrets.token_urlsafe(32)
        cls.objects.create(user=user, digest=cls._digest(key))
        return key

    @classmethod
    def user_for(cls, key):
        return cls.user_for_digest(cls._digest(key))

    @classmethod
    def user_for_digest(cls, digest):
        token = cls.objects.select_related("user").filter(digest=digest).first()
        return token.user if token and token.user.is_active else None


class SentBatch(models.Model):
    """A batch of shadow jobs handed to the broker and not yet settled (shadow/ledger.py): a worker that publishes
    it deletes the row with its results; a row left past SHADOW_LEDGER_SECONDS is counted as dropped."""

    id = models.UUIDField(primary_key=True)
    sent_at = models.DateTimeField(db_index=True)
    jobs = models.JSONField()  # [[query, candidate backend, number of jobs], ...]


class FunctionCallCount(models.Model):
    """PostgreSQL's call count of a function at one moment, with the application's own calls of that minute so far:
    two of them tell the calls made from outside the application in between (retirement readiness)."""

    function = models.CharField(max_length=300)  # regprocedure text
    taken_at = models.DateTimeField(default=timezone.now)
    database_calls = models.BigIntegerField()  # pg_stat_user_functions.calls
    own_calls = models.BigIntegerField()  # the application's runs counted in taken_at's minute and after, until then
    # Own runs counted while this reading was taken: the most a window from it can overstate outside calls by.
    own_in_flight = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-taken_at"]
        indexes = [models.Index(fields=["function", "-taken_at"], name="rollout_function_calls")]
