"""A query's lifecycle stage, read off its flag: not started → shadow → cohorts → percentage → everyone → retired.

The stage is what the flag's rules make of it (the kill switch does not change it: `serving` says killed);
flags.writes stamps `stage_since` whenever a write changes it, which is the "time in stage" every surface shows.
"""

from django.utils import timezone

NOT_STARTED, SHADOW, COHORTS, PERCENTAGE, EVERYONE, RETIRED = (
    "not started",
    "shadow",
    "cohorts",
    "percentage",
    "everyone",
    "retired",
)
STAGES = (NOT_STARTED, SHADOW, COHORTS, PERCENTAGE, EVERYONE, RETIRED)


def stage_of(values, members=False, killed_from=None):
    """The stage of a flag's tracked values (flags.history.values_of); members: it has users or groups;
    killed_from: what `everyone` was before the kill (QueryFlag.killed_from), read in its place while killed."""
    if values.get("retired_at"):
        return RETIRED
    if values.get("everyone") or (values.get("everyone") is False and killed_from):
        return EVERYONE
    if values.get("percent"):
        return PERCENTAGE
    if (
        members
        or any(values.get("cohorts") or {})
        or any(values.get(f) for f in ("staff", "superusers", "authenticated"))
    ):
        return COHORTS
    if values.get("shadow_percent"):
        return SHADOW
    return NOT_STARTED


def stage(flag):
    """The stage of a QueryFlag (prefetch users and groups to read many)."""
    from rollout.flags.history import values_of

    members = bool(flag.pk) and (bool(flag.users.all()) or bool(flag.groups.all()))
    return stage_of(values_of(flag), members, flag.killed_from)


def since(flag):
    """When the flag entered its stage: its last stage change, else its creation."""
    return flag.stage_since or flag.created


def time_in_stage(flag, now=None):
    return (now or timezone.now()) - since(flag)


def duration(delta):
    """A timedelta for people: '3d 4h', '2h 5m', '4m 10s', '12s'."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def summary(flag, now=None):
    """{"stage", "stage_since", "time_in_stage" (seconds), "time_in_stage_text"} for status, dashboard and API."""
    if flag is None:
        return {"stage": NOT_STARTED, "stage_since": None, "time_in_stage": None, "time_in_stage_text": "-"}
    delta = time_in_stage(flag, now)
    return {
        "stage": stage(flag),
        "stage_since": since(flag),
        "time_in_stage": delta.total_seconds(),
        "time_in_stage_text": duration(delta),
    }
