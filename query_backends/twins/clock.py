"""The database transaction's clock, as expressions: the twins never read Python's clock.

The legacy functions use now() and current_date, which PostgreSQL fixes at the
transaction's start. Django's Now() is STATEMENT_TIMESTAMP() on PostgreSQL, a
different clock inside a transaction, so the twins use these instead. With the
session time zone UTC (Django sets it under USE_TZ) current_date is the UTC date.
"""

from datetime import timedelta

from django.db.models import DateField, DateTimeField, DurationField, ExpressionWrapper, Func, Value

MINUTE = Value(timedelta(minutes=1), output_field=DurationField())


class TransactionNow(Func):
    template = "CURRENT_TIMESTAMP"
    output_field = DateTimeField()


class TransactionToday(Func):
    template = "CURRENT_DATE"
    output_field = DateField()


def now():
    return TransactionNow()


def today():
    return TransactionToday()


def today_plus(days):
    return ExpressionWrapper(today() + Value(days), output_field=DateField())


def minutes(expression):
    """An integer column of minutes as an interval."""
    return ExpressionWrapper(expression * MINUTE, output_field=DurationField())
