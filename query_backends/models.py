"""The legacy schema. Table and column names are the contract (shared/spec/legacy-functions.md).

Foreign keys are real constraints (DO_NOTHING: the database, not Django, owns
referential integrity, as it did for the legacy application). related_name="+"
because the legacy tables reference each other many times over and the
functions never walk them backwards through Python.
"""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from query_backends.sentinels import SENTINEL_ID


def _fk(to, **kwargs):
    kwargs.setdefault("null", True)
    kwargs.setdefault("blank", True)
    return models.ForeignKey(to, on_delete=models.DO_NOTHING, related_name="+", **kwargs)


class Legacy(models.Model):
    class Meta:
        abstract = True


class Stamped(Legacy):
    cdtz = models.DateTimeField(default=timezone.now)
    mdtz = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class TypeAssist(Legacy):
    tacode = models.CharField(max_length=50)
    taname = models.CharField(max_length=100)
    tatype = models.CharField(max_length=50, null=True, blank=True)
    enable = models.BooleanField(default=True)

    class Meta:
        db_table = "typeassist"

    def __str__(self):
        return self.tacode


class BusinessUnit(Stamped):
    """Clients, customers, sites and zones: one tree through parent_id."""

    bucode = models.CharField(max_length=50)
    buname = models.CharField(max_length=200)
    identifier = _fk(TypeAssist)
    butype = _fk(TypeAssist)
    parent = _fk("self")
    enable = models.BooleanField(default=True)
    ctzoffset = models.IntegerField(default=0)
    cuser = _fk("People")
    muser = _fk("People")

    class Meta:
        db_table = "bt"

    def __str__(self):
        return self.bucode


class People(Stamped):
    peoplecode = models.CharField(max_length=50)
    peoplename = models.CharField(max_length=120)
    loginid = models.CharField(max_length=50, unique=True, null=True, blank=True)
    isadmin = models.BooleanField(default=False)
    enable = models.BooleanField(default=True)
    client = _fk(BusinessUnit)
    bu = _fk(BusinessUnit)
    people_extras = models.JSONField(default=dict)

    class Meta:
        db_table = "people"
        verbose_name_plural = "people"

    def __str__(self):
        return self.peoplecode


class PeopleGroup(Stamped):
    groupname = models.CharField(max_length=250)
    identifier = _fk(TypeAssist)
    client = _fk(BusinessUnit)
    bu = _fk(BusinessUnit)
    enable = models.BooleanField(default=True)

    class Meta:
        db_table = "pgroup"

    def __str__(self):
        return self.groupname


class MembershipQuerySet(models.QuerySet):
    def in_real_groups(self):
        """Only memberships of a group: a NULL or sentinel pgroup_id means "in no group" to every function."""
        return self.filter(pgroup_id__isnull=False).exclude(pgroup_id=SENTINEL_ID)


class GroupMembership(Stamped):
    pgroup = _fk(PeopleGroup)
    people = _fk(People)
    assignsites = _fk(BusinessUnit)
    isgrouplead = models.BooleanField(default=False)
    client = _fk(BusinessUnit)
    bu = _fk(BusinessUnit)

    objects = models.Manager.from_queryset(MembershipQuerySet)()

    class Meta:
        db_table = "pgbelonging"


class SitePeople(Legacy):
    people = _fk(People, null=False, blank=False)
    bu = _fk(BusinessUnit, null=False, blank=False)
    client = _fk(BusinessUnit)
    fromdt = models.DateField()
    uptodt = models.DateField()

    class Meta:
        db_table = "sitepeople"
        verbose_name_plural = "site people"


class Asset(Stamped):
    uuid = models.UUIDField(default=uuid.uuid4)
    assetcode = models.CharField(max_length=50)
    assetname = models.CharField(max_length=250)
    enable = models.BooleanField(default=True)
    iscritical = models.BooleanField(default=False)
    parent = _fk("self")
    runningstatus = models.CharField(max_length=50, null=True, blank=True)
    identifier = models.CharField(max_length=50, null=True, blank=True)
    type = _fk(TypeAssist)
    category = _fk(TypeAssist)
    subcategory = _fk(TypeAssist)
    brand = _fk(TypeAssist)
    unit = _fk(TypeAssist)
    capacity = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    servprov = _fk(BusinessUnit)
    location_id = models.BigIntegerField(null=True, blank=True)
    bu = _fk(BusinessUnit)
    client = _fk(BusinessUnit)
    ctzoffset = models.IntegerField(default=0)
    cuser = _fk(People)
    muser = _fk(People)

    class Meta:
        db_table = "asset"

    def __str__(self):
        return self.assetcode


class QuestionSet(Stamped):
    qsetname = models.CharField(max_length=200)
    type = models.CharField(max_length=50)
    parent = _fk("self")
    enable = models.BooleanField(default=True)
    assetincludes = ArrayField(models.CharField(max_length=50), null=True, blank=True)
    bu = _fk(BusinessUnit)
    client = _fk(BusinessUnit)

    class Meta:
        db_table = "questionset"

    def __str__(self):
        return self.qsetname


class Job(Stamped):
    jobname = models.CharField(max_length=200)
    jobdesc = models.CharField(max_length=500)
    identifier = models.CharField(max_length=50, null=True, blank=True)
    asset = _fk(Asset)
    qset = _fk(QuestionSet)
    people = _fk(People)
    pgroup = _fk(PeopleGroup)
    bu = _fk(BusinessUnit)
    client = _fk(BusinessUnit)
    fromdate = models.DateTimeField(null=True, blank=True)
    uptodate = models.DateTimeField(null=True, blank=True)
    planduration = models.IntegerField(default=0)
    gracetime = models.IntegerField(default=0)
    expirytime = models.IntegerField(default=0)
    priority = models.CharField(max_length=50, null=True, blank=True)
    scantype = models.CharField(max_length=50, null=True, blank=True)
    frequency = models.CharField(max_length=50, null=True, blank=True)
    enable = models.BooleanField(default=True)

    class Meta:
        db_table = "job"


class JobNeed(Stamped):
    """One planned instance of work."""

    uuid = models.UUIDField(default=uuid.uuid4)
    jobdesc = models.CharField(max_length=200)
    plandatetime = models.DateTimeField(null=True, blank=True)
    expirydatetime = models.DateTimeField(null=True, blank=True)
    gracetime = models.IntegerField(default=0)
    receivedonserver = models.DateTimeField(null=True, blank=True)
    starttime = models.DateTimeField(null=True, blank=True)
    endtime = models.DateTimeField(null=True, blank=True)
    remarks = models.TextField(null=True, blank=True)
    pgroup = _fk(PeopleGroup)
    asset = _fk(Asset)
    cuser = _fk(People)
    muser = _fk(People)
    performedby = _fk(People)
    people = _fk(People)
    frequency = models.CharField(max_length=50, null=True, blank=True)
    job = _fk(Job)
    jobstatus = models.CharField(max_length=60, null=True, blank=True)
    jobtype = models.CharField(max_length=50, null=True, blank=True)
    priority = models.CharField(max_length=50, null=True, blank=True)
    qset = _fk(QuestionSet)
    scantype = models.CharField(max_length=50, null=True, blank=True)
    attachmentcount = models.IntegerField(default=0)
    identifier = models.CharField(max_length=50, null=True, blank=True)
    parent = _fk("self")
    bu = _fk(BusinessUnit)
    client = _fk(BusinessUnit)
    seqno = models.SmallIntegerField(default=0)
    ticketcategory = _fk(TypeAssist)
    ctzoffset = models.IntegerField(default=0)
    multifactor = models.DecimalField(max_digits=10, decimal_places=6, default=1)
    other_info = models.JSONField(default=dict)
    ticket_id = models.BigIntegerField(null=True, blank=True)
    remarkstype = _fk(TypeAssist)

    class Meta:
        db_table = "jobneed"


class JobNeedDetails(Stamped):
    jobneed = _fk(JobNeed, null=False, blank=False)
    seqno = models.SmallIntegerField(default=0)
    question_id = models.BigIntegerField()
    answertype = models.CharField(max_length=50)
    answer = models.TextField(null=True, blank=True)
    ismandatory = models.BooleanField(default=False)

    class Meta:
        db_table = "jobneeddetails"
        verbose_name_plural = "jobneed details"


class Capability(Stamped):
    capscode = models.CharField(max_length=50)
    capsname = models.CharField(max_length=1000, null=True, blank=True)
    parent = _fk("self")
    cfor = models.CharField(max_length=10)
    client = _fk(BusinessUnit)
    enable = models.BooleanField(default=True)

    class Meta:
        db_table = "capability"
        verbose_name_plural = "capabilities"

    def __str__(self):
        return self.capscode
