"""Each patient's measurement plan, anchored to their infusion course, and what it makes due.

The default plan (issue 4): PCL-5 (past month), PHQ-9 and GAD-7 at baseline, before the first
infusion; the PHQ-9 within 24 hours before each infusion; the after-infusion check the day
after each infusion; PCL-5 (past week) and PHQ-9 weekly during the course and for 12 weeks
after it, then every 4 weeks. Days are the clinic's calendar days.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

import instruments

from ..models import SCHEDULES, Assessment, Course, Patient, PlanEntry
from . import audit, submissions, summaries
from .audit import Actor
from .patients import lock_patient


@dataclass(frozen=True)
class PlanDefault:
    instrument_key: str
    schedule: str
    every_days: int | None = None
    follow_up_weeks: int | None = None
    then_every_days: int | None = None


DEFAULT_PLAN: tuple[PlanDefault, ...] = (
    PlanDefault("pcl5", "baseline"),
    PlanDefault("phq9", "baseline"),
    PlanDefault("gad7", "baseline"),
    PlanDefault("phq9", "before_infusion"),
    PlanDefault("after-infusion", "after_infusion"),
    PlanDefault("pcl5-weekly", "recurring", 7, 12, 28),
    PlanDefault("phq9", "recurring", 7, 12, 28),
)

#: Days after a questionnaire falls due before it counts as overdue (local policy).
GRACE_DAYS = 2
#: The PHQ-9 before an infusion counts when completed in this window before it.
BEFORE_INFUSION_WINDOW = dt.timedelta(hours=24)
#: An after-infusion check not done within this many days is no longer asked for.
AFTER_INFUSION_EXPIRY_DAYS = 7
#: A recurring questionnaire done up to this many days early counts for its due day.
EARLY_DAYS = 2

SCHEDULE_LABELS = {
    "baseline": "Before the first infusion",
    "before_infusion": "Within 24 hours before each infusion",
    "after_infusion": "The day after each infusion",
    "recurring": "At a regular interval",
}


class PlanError(ValueError):
    """A plan change that cannot be made, with the reason."""


@dataclass(frozen=True)
class Timeline:
    """What the schedule is anchored to, for one patient."""

    enrolled_at: dt.datetime
    timezone: str
    #: When each recorded infusion was given, oldest first.
    infusions: Sequence[dt.datetime] = ()
    next_infusion_at: dt.datetime | None = None
    #: The day the course ended, when it is completed or stopped.
    course_ended_on: dt.date | None = None
    #: When each instrument was administered, by key.
    completed: Mapping[str, Sequence[dt.datetime]] = field(default_factory=dict)


@dataclass(frozen=True)
class Occurrence:
    """One questionnaire the plan asks for, not yet done."""

    instrument_key: str
    schedule: str
    opens_at: dt.datetime
    overdue_at: dt.datetime | None
    #: Plain words for the patient and the clinician, e.g. "Before your infusion".
    reason: str

    def is_due(self, now: dt.datetime) -> bool:
        return self.opens_at <= now

    def is_overdue(self, now: dt.datetime) -> bool:
        return self.overdue_at is not None and self.overdue_at <= now


@dataclass(frozen=True)
class DueQuestionnaire:
    instrument_key: str
    title: str
    reason: str
    opens_at: dt.datetime
    overdue: bool


def add_default_plan(session: Session, patient: Patient) -> None:
    """Give a newly enrolled patient the default plan."""
    session.add_all(default_plan_entries(patient.id))


def default_plan_entries(patient_id: int | None) -> list[PlanEntry]:
    return [PlanEntry(patient_id=patient_id, instrument_key=d.instrument_key,
                      schedule=d.schedule, every_days=d.every_days,
                      follow_up_weeks=d.follow_up_weeks, then_every_days=d.then_every_days,
                      active=True)
            for d in DEFAULT_PLAN]


def plan_for(session: Session, patient_id: int) -> list[PlanEntry]:
    """The patient's plan entries, in schedule order."""
    entries = session.scalars(select(PlanEntry).where(PlanEntry.patient_id == patient_id)).all()
    return sorted(entries, key=lambda e: (SCHEDULES.index(e.schedule), e.instrument_key))


def timeline_of(patient: Patient, courses: Sequence[Course],
                assessments: Iterable[Assessment]) -> Timeline:
    """What the patient's schedule is anchored to, from their records."""
    course = summaries.current_course_of(courses)
    completed: dict[str, list[dt.datetime]] = {}
    for assessment in sorted(assessments, key=lambda a: a.administered_at):
        completed.setdefault(assessment.instrument_key, []).append(assessment.administered_at)
    return Timeline(
        enrolled_at=patient.enrolled_at,
        timezone=patient.clinic.timezone,
        infusions=sorted(i.current.administered_at for c in courses for i in c.infusions),
        next_infusion_at=course.next_infusion_at if course else None,
        course_ended_on=course.ended_on if course else None,
        completed=completed,
    )


def outstanding(entries: Iterable[PlanEntry], timeline: Timeline,
                now: dt.datetime) -> list[Occurrence]:
    """Every questionnaire the plan asks for and that is not done: due now, or next to fall
    due, one per plan entry; earliest first."""
    occurrences = []
    for entry in entries:
        if not entry.active:
            continue
        occurrence = _OCCURRENCE_RULES[entry.schedule](entry, timeline, now)
        if occurrence is not None:
            occurrences.append(occurrence)
    return sorted(occurrences, key=lambda o: o.opens_at)


def due_questionnaires(entries: Iterable[PlanEntry], timeline: Timeline,
                       now: dt.datetime) -> list[DueQuestionnaire]:
    """What is due now, one line per questionnaire (one PHQ-9 serves two timings)."""
    due: dict[str, DueQuestionnaire] = {}
    for occurrence in outstanding(entries, timeline, now):
        if not occurrence.is_due(now) or occurrence.instrument_key in due:
            continue
        due[occurrence.instrument_key] = DueQuestionnaire(
            instrument_key=occurrence.instrument_key,
            title=instruments.get(occurrence.instrument_key).title,
            reason=occurrence.reason,
            opens_at=occurrence.opens_at,
            overdue=occurrence.is_overdue(now),
        )
    return list(due.values())


def next_due_on(entries: Iterable[PlanEntry], timeline: Timeline,
                now: dt.datetime) -> dt.date | None:
    """The clinic-calendar day of the earliest outstanding questionnaire (past or future)."""
    occurrences = outstanding(entries, timeline, now)
    if not occurrences:
        return None
    return occurrences[0].opens_at.astimezone(zoneinfo.ZoneInfo(timeline.timezone)).date()


def _local_midnight(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), zoneinfo.ZoneInfo(timezone)).astimezone(
        dt.timezone.utc)


def _local_date(moment: dt.datetime, timezone: str) -> dt.date:
    return moment.astimezone(zoneinfo.ZoneInfo(timezone)).date()


def _grace(opens_at: dt.datetime) -> dt.datetime:
    return opens_at + dt.timedelta(days=GRACE_DAYS + 1)


def _baseline(entry: PlanEntry, timeline: Timeline, now: dt.datetime) -> Occurrence | None:
    done = timeline.completed.get(entry.instrument_key, ())
    first_infusion = timeline.infusions[0] if timeline.infusions else None
    if any(first_infusion is None or moment <= first_infusion for moment in done):
        return None
    if first_infusion is not None:
        return None  # the course has begun: a baseline can no longer be had
    opens_at = _local_midnight(_local_date(timeline.enrolled_at, timeline.timezone),
                               timeline.timezone)
    return Occurrence(entry.instrument_key, entry.schedule, opens_at, _grace(opens_at),
                      "Before your first infusion")


def _before_infusion(entry: PlanEntry, timeline: Timeline,
                     now: dt.datetime) -> Occurrence | None:
    infusion_at = timeline.next_infusion_at
    if infusion_at is None or infusion_at <= now:
        return None
    opens_at = infusion_at - BEFORE_INFUSION_WINDOW
    done = timeline.completed.get(entry.instrument_key, ())
    if any(opens_at <= moment <= infusion_at for moment in done):
        return None
    return Occurrence(entry.instrument_key, entry.schedule, opens_at, infusion_at,
                      "Before your next infusion")


def _after_infusion(entry: PlanEntry, timeline: Timeline,
                    now: dt.datetime) -> Occurrence | None:
    if not timeline.infusions:
        return None
    last = timeline.infusions[-1]
    if any(moment > last for moment in timeline.completed.get(entry.instrument_key, ())):
        return None
    opens_at = _local_midnight(_local_date(last, timeline.timezone) + dt.timedelta(days=1),
                               timeline.timezone)
    if now > opens_at + dt.timedelta(days=AFTER_INFUSION_EXPIRY_DAYS):
        return None
    return Occurrence(entry.instrument_key, entry.schedule, opens_at, _grace(opens_at),
                      "The day after your infusion")


def _recurring(entry: PlanEntry, timeline: Timeline, now: dt.datetime) -> Occurrence | None:
    zone = timeline.timezone
    anchor = _local_date(timeline.infusions[0] if timeline.infusions else timeline.enrolled_at,
                         zone)
    today = _local_date(now, zone)
    days = _recurring_days(entry, anchor, timeline.course_ended_on, today)
    if not days:
        return None
    current, upcoming = days
    done = [_local_date(moment, zone) for moment in timeline.completed.get(
        entry.instrument_key, ())]
    if current is not None and not any(day >= current - dt.timedelta(days=EARLY_DAYS)
                                       for day in done):
        opens_at = _local_midnight(current, zone)
        return Occurrence(entry.instrument_key, entry.schedule, opens_at, _grace(opens_at),
                          "Your regular check-in")
    if upcoming is None or any(day >= upcoming - dt.timedelta(days=EARLY_DAYS) for day in done):
        return None
    return Occurrence(entry.instrument_key, entry.schedule, _local_midnight(upcoming, zone),
                      _grace(_local_midnight(upcoming, zone)), "Your regular check-in")


def _recurring_days(entry: PlanEntry, anchor: dt.date, course_ended_on: dt.date | None,
                    today: dt.date) -> tuple[dt.date | None, dt.date | None] | None:
    """The latest due day on or before today and the next one after it, either None where
    there is none; None when the plan never asks."""
    every = dt.timedelta(days=entry.every_days)
    first = anchor + every
    if course_ended_on is None:
        return _around(first, every, today, None)
    dense_until = course_ended_on + dt.timedelta(weeks=entry.follow_up_weeks or 0)
    latest, upcoming = _around(first, every, today, dense_until)
    if not entry.then_every_days:
        return None if latest is upcoming is None else (latest, upcoming)
    last_dense = _around(first, every, dense_until, dense_until)[0] or dense_until
    later = dt.timedelta(days=entry.then_every_days)
    sparse_latest, sparse_upcoming = _around(last_dense + later, later, today, None)
    return sparse_latest or latest, upcoming or sparse_upcoming


def _around(start: dt.date, step: dt.timedelta, today: dt.date,
            stop: dt.date | None) -> tuple[dt.date | None, dt.date | None]:
    """In the series start, start + step, ... (up to stop): the last day on or before today
    and the first after it."""
    if stop is not None and start > stop:
        return None, None
    if today < start:
        return None, start
    latest = start + step * ((min(today, stop or today) - start).days // step.days)
    upcoming = latest + step if latest + step > today else None
    if stop is not None and upcoming is not None and upcoming > stop:
        upcoming = None
    return latest, upcoming


_OCCURRENCE_RULES = {
    "baseline": _baseline,
    "before_infusion": _before_infusion,
    "after_infusion": _after_infusion,
    "recurring": _recurring,
}


def update_plan(session: Session, actor: Actor, patient: Patient,
                changes: Mapping[tuple[str, str], tuple[bool, int | None, int | None, int | None]],
                submission_key: str | None = None) -> None:
    """Set plan entries: (instrument key, schedule) → (active, every_days, follow_up_weeks,
    then_every_days); the last three only for recurring entries.

    Two changes sent at once for one patient are made one after the other (on the patient's
    row lock), each audited against the plan the other left. Raises RepeatedSubmission when
    the form with ``submission_key`` was stored before."""
    claim = submissions.claim(session, actor, "plan.update", submission_key,
                              [patient.id, sorted(changes.items())])
    lock_patient(session, patient.id)
    # Read again under the lock: entries loaded before it may be another change's past.
    entries = {(e.instrument_key, e.schedule): e for e in session.scalars(
        select(PlanEntry).where(PlanEntry.patient_id == patient.id)
        .execution_options(populate_existing=True))}
    before = {_name(key): _describe(entry) for key, entry in entries.items()}
    for (key, schedule), (active, every, follow_up, then_every) in changes.items():
        try:
            instruments.get(key)
        except instruments.UnknownInstrument:
            raise PlanError(f"Unknown questionnaire {key!r}.") from None
        if schedule not in SCHEDULES:
            raise PlanError(f"Unknown timing {schedule!r}.")
        if schedule == "recurring":
            _check_interval(every, "The interval", required=True)
            _check_interval(then_every, "The later interval", required=False)
            if follow_up is None or not 0 <= follow_up <= 104:
                raise PlanError("The follow-up must be between 0 and 104 weeks.")
        else:
            every = follow_up = then_every = None
        entry = entries.get((key, schedule))
        if entry is None:
            entry = PlanEntry(patient_id=patient.id, instrument_key=key, schedule=schedule)
            session.add(entry)
            entries[(key, schedule)] = entry
        entry.active, entry.every_days = active, every
        entry.follow_up_weeks, entry.then_every_days = follow_up, then_every
    session.flush()
    claim.stored(patient.id)
    after = {_name(key): _describe(entry) for key, entry in entries.items()}
    if after != before:
        audit.record(session, actor, "plan.update", patient=patient, object_type="patient",
                     object_id=patient.id, old=before, new=after)
        summaries.refresh(session, patient.id)


def _check_interval(days: int | None, what: str, required: bool) -> None:
    if days is None and not required:
        return
    if days is None or not 1 <= days <= 365:
        raise PlanError(f"{what} must be between 1 and 365 days.")


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]}:{key[1]}"


def _describe(entry: PlanEntry) -> dict[str, object]:
    return {"active": entry.active, "every_days": entry.every_days,
            "follow_up_weeks": entry.follow_up_weeks, "then_every_days": entry.then_every_days}
