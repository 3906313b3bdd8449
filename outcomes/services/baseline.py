"""The one reference every change is reported from (docs/baseline.md).

Within a course, the **baseline** of a measure is its last scorable score on or before the
day (clinic time) of the course's first infusion, and no more than ``BASELINE_WINDOW_DAYS``
days before that day. Without one, change is reported **since first**: from the patient's
first scorable score of the measure, never called a baseline. Which course applies to a score: the latest course
whose baseline window had opened when the score was given (a score inside the window is a
baseline itself, not a change); before any course, there is no baseline and change runs
since the patient's first score. Only current records count (a
correction replaces what it corrects), and the first infusion is the one its latest recorded
version says.

Every page, chart, summary, export and the outcomes figures ask this module; none restates
the rule. The choosing functions are plain: they take records oldest first and a way to read
each one's moment, so the outcomes page can feed them POSIX seconds and the pages datetimes.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

import instruments

from ..clock import clinic_zone, local_date, local_midnight
from ..models import Assessment, Course, Patient

#: Local policy (the clinical reference gives the rule, no source gives the span): a score
#: older than this many days before the day of the first infusion no longer describes the
#: patient as treatment began.
BASELINE_WINDOW_DAYS = 30
BASELINE = "baseline"
SINCE_FIRST = "since first"

R = TypeVar("R")
M = TypeVar("M", dt.datetime, float)


@dataclass(frozen=True)
class Window(Generic[M]):
    """Where a course's baseline can lie: from ``opens`` (the start of the day
    ``BASELINE_WINDOW_DAYS`` days before the first infusion's day) to ``closes`` (the end of
    the first infusion's day, exclusive), in the clinic's days."""

    opens: M
    closes: M

    def as_seconds(self) -> Window[float]:
        """The same window in POSIX seconds (the outcomes page's unit)."""
        return Window(self.opens.timestamp(), self.closes.timestamp())  # type: ignore[union-attr]


def baseline_window(first_infusion: dt.datetime, zone: dt.tzinfo) -> Window[dt.datetime]:
    """The baseline window of a course whose first infusion was given at ``first_infusion``,
    its days counted whole in ``zone`` (the clinic's)."""
    day = local_date(first_infusion, zone)
    return Window(local_midnight(zone, day - dt.timedelta(days=BASELINE_WINDOW_DAYS)),
                  local_midnight(zone, day + dt.timedelta(days=1)))


@dataclass(frozen=True)
class Reference(Generic[R]):
    """The record change is reported from, and what to call it."""

    record: R
    #: ``BASELINE`` or ``SINCE_FIRST``.
    kind: str
    #: The window of the course it belongs to; None before any course began.
    window: Window | None = None
    #: Which of the patient's courses that is, counting from 1; None before any.
    course: int | None = None

    @property
    def is_baseline(self) -> bool:
        return self.kind == BASELINE


def course_baseline(records: Sequence[R], moment_of: Callable[[R], M],
                    window: Window[M], at: M | None = None) -> R | None:
    """The course's baseline: the last of ``records`` (oldest first) inside ``window`` (and,
    with ``at``, given no later than ``at``: the baseline as it stood then)."""
    found = None
    for record in records:
        moment = moment_of(record)
        if moment >= window.closes or (at is not None and moment > at):
            break
        if moment >= window.opens:
            found = record
    return found


def choose_reference(records: Sequence[R], moment_of: Callable[[R], M],
                     windows: Sequence[Window[M]], at: M) -> Reference[R] | None:
    """The reference for a score given at ``at``, from ``records`` (the current scorable
    records of one measure, oldest first, ties by id) and the baseline ``windows`` of the
    patient's courses. The course is the latest whose window had opened by ``at``; a score
    inside the window is its own reference (treatment has not begun: nothing to compare).
    None when no record came at or before ``at``."""
    ordered = sorted(windows, key=lambda w: w.opens)
    number = sum(w.opens <= at for w in ordered)
    course = ordered[number - 1] if number else None
    if course is not None:
        baseline = course_baseline(records, moment_of, course, at)
        if baseline is not None:
            return Reference(baseline, BASELINE, course, number)
    # Literally the patient's first score: an honest start for the change, named as such.
    first = records[0] if records and moment_of(records[0]) <= at else None
    return Reference(first, SINCE_FIRST, course, number or None) if first is not None else None


# --- records of the database --------------------------------------------------------------

def first_infusion_of(course: Course) -> dt.datetime | None:
    """When the course's first infusion was given, as the latest version records it."""
    return min((infusion.current.administered_at for infusion in course.infusions
                if infusion.versions), default=None)


def course_windows(courses: Iterable[Course], zone: dt.tzinfo) -> list[Window[dt.datetime]]:
    """The baseline window of every course that has had an infusion."""
    return windows_from((first for course in courses
                         if (first := first_infusion_of(course)) is not None), zone)


def windows_from(first_infusions: Iterable[dt.datetime],
                 zone: dt.tzinfo) -> list[Window[dt.datetime]]:
    """The baseline windows of the courses whose first infusions (as their latest versions
    record them) were given at ``first_infusions``: for readers of plain rows (the scores
    export, the migration that filled the summary's reference kind)."""
    return [baseline_window(first, zone) for first in sorted(first_infusions)]


def measure_records(assessments: Iterable[Assessment], measure: str) -> list[Assessment]:
    """The scorable records of ``measure`` among ``assessments`` (which must be the current
    ones), oldest first."""
    return sorted((a for a in assessments
                   if a.scorable and instruments.get(a.instrument_key).measure == measure),
                  key=lambda a: (a.administered_at, a.id))


def administered(assessment: Assessment) -> dt.datetime:
    """An assessment's moment, for the choosing functions."""
    return assessment.administered_at


def reference_for(assessments: Sequence[Assessment], courses: Sequence[Course],
                  zone: dt.tzinfo, measure: str,
                  at: dt.datetime | None = None) -> Reference[Assessment] | None:
    """The reference of ``measure`` for a score given at ``at`` (default: the measure's latest
    scorable record), from the patient's current assessments and courses."""
    return reference_among(assessments, course_windows(courses, zone), measure, at)


def reference_among(assessments: Iterable[Assessment], windows: Sequence[Window[dt.datetime]],
                    measure: str, at: dt.datetime | None = None) -> Reference[Assessment] | None:
    """``reference_for`` given the baseline windows of the patient's courses rather than the
    courses (for readers of plain rows with an assessment's fields)."""
    records = measure_records(assessments, measure)
    if not records:
        return None
    moment = at if at is not None else records[-1].administered_at
    return choose_reference(records, administered, windows, moment)


def reference_total(session: Session, patient_id: int, measure: str,
                    at: dt.datetime) -> int | None:
    """The reference total that a new score of ``measure`` given at ``at`` is compared with
    (None without one), from the patient's current records and courses as stored now."""
    keys = [i.key for i in instruments.all() if i.measure == measure]
    correction = aliased(Assessment)
    current = session.scalars(select(Assessment).where(
        Assessment.patient_id == patient_id, Assessment.instrument_key.in_(keys),
        Assessment.scorable.is_(True),
        ~exists().where(correction.amends_id == Assessment.id))).all()
    courses = session.scalars(select(Course).where(Course.patient_id == patient_id)).all()
    zone = clinic_zone(session.get(Patient, patient_id).clinic)
    reference = reference_for(current, courses, zone, measure, at)
    return reference.record.total if reference is not None else None
