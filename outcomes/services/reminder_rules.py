"""When a patient is reminded of a questionnaire: pure rules, no session, no clock of their own.

The schedule (``services.schedule``) says which questionnaires are outstanding; these rules say
whether one of them should be reminded of at a given moment. The cadence is the one clinics
compare us with (the leading ketamine EHR's): a first reminder when the questionnaire falls
due, then at most one a clinic day, at most three per occurrence, never in quiet hours. The
numbers are local policy — no clinical source gives them — so each is a clinic setting with
these defaults. A questionnaire done, or no longer asked for (the schedule stops listing it:
an infusion that passed, an after-infusion check that expired), is reminded of no more.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from ..clock import Where, local_date, to_local
from .schedule import Occurrence

#: Local policy defaults (issue 11): reminders per occurrence, and the quiet hours in clinic
#: time during which none is sent.
DEFAULT_MAX_REMINDERS = 3
DEFAULT_QUIET_FROM = dt.time(21, 0)
DEFAULT_QUIET_UNTIL = dt.time(9, 0)


@dataclass(frozen=True)
class ReminderPolicy:
    """A clinic's reminder settings."""

    max_reminders: int = DEFAULT_MAX_REMINDERS
    #: Quiet hours, clinic wall time: from ``quiet_from`` to ``quiet_until`` (may wrap past
    #: midnight; equal times mean no quiet hours).
    quiet_from: dt.time = DEFAULT_QUIET_FROM
    quiet_until: dt.time = DEFAULT_QUIET_UNTIL

    def __post_init__(self) -> None:
        if self.max_reminders < 0:
            raise ValueError("The number of reminders cannot be negative.")


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
