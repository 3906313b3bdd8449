"""When a patient is reminded of a questionnaire: pure rules, no session, no clock of their own.

The schedule (``services.schedule``) says which questionnaires are outstanding; these rules say
whether one of them should be reminded of at a given moment. The cadence is the one clinics
compare us with (the leading ketamine EHR's): a first reminder when the questionnaire falls
due, then at most one a clinic day, at most three per occurrence, never in quiet hours. The
numbers are local policy — no clinical source gives them — so each is a clinic setting with
these defaults. A questionnaire done, or no longer asked for (the schedule stops listing it:
an infusion that passed, an after-infusion check that expired, a patient discharged), is
reminded of no more.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from ..clock import Where, local_date, to_local
from ..models import DEFAULT_QUIET_FROM, DEFAULT_QUIET_UNTIL, DEFAULT_REMINDER_LIMIT, Clinic
from .schedule import Occurrence


@dataclass(frozen=True)
class ReminderPolicy:
    """A clinic's reminder settings (its defaults are the models')."""

    max_reminders: int = DEFAULT_REMINDER_LIMIT
    #: Quiet hours, clinic wall time: from ``quiet_from`` to ``quiet_until`` (may wrap past
    #: midnight; equal times mean no quiet hours).
    quiet_from: dt.time = DEFAULT_QUIET_FROM
    quiet_until: dt.time = DEFAULT_QUIET_UNTIL

    def __post_init__(self) -> None:
        if self.max_reminders < 0:
            raise ValueError("The number of reminders cannot be negative.")

    @classmethod
    def of(cls, clinic: Clinic) -> ReminderPolicy:
        """The clinic's own settings."""
        return cls(clinic.reminder_limit, clinic.quiet_from, clinic.quiet_until)


def in_quiet_hours(now: dt.datetime, where: Where, policy: ReminderPolicy) -> bool:
    """Whether ``now`` falls in the clinic's quiet hours (clinic wall time)."""
    wall = to_local(now, where).time()
    start, end = policy.quiet_from, policy.quiet_until
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def reminder_due(occurrence: Occurrence, sent: Sequence[dt.datetime], now: dt.datetime,
                 where: Where, policy: ReminderPolicy) -> int | None:
    """The number (1 for the first) of the reminder to send now for ``occurrence``, an
    outstanding questionnaire of the schedule, given when its earlier reminders were sent;
    None when none is due now."""
    if not occurrence.is_due(now) or len(sent) >= policy.max_reminders:
        return None
    if in_quiet_hours(now, where, policy):
        return None
    if sent and local_date(max(sent), where) >= local_date(now, where):
        return None  # one a clinic day at most
    return len(sent) + 1
