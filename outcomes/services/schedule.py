"""The scheduling rules: what a patient's plan asks for and when, from their records.

Pure functions of a plan, a ``Timeline`` and a moment: no session, no clock of their own, so
the patient's home, the dashboard's summary and reminders all ask the same rules. Days are the
clinic's calendar days (``plans`` describes the default plan these rules run).
"""
from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import instruments

from ..clock import local_date, local_midnight
from ..models import Assessment, Course, Patient, PlanEntry
from .records import current_course_of


#: Days after a questionnaire falls due before it counts as overdue (local policy).
GRACE_DAYS = 2
#: The PHQ-9 before an infusion counts when completed in this window before it.
BEFORE_INFUSION_WINDOW = dt.timedelta(hours=24)
#: An after-infusion check not done within this many days is no longer asked for.
AFTER_INFUSION_EXPIRY_DAYS = 7
#: A recurring questionnaire done up to this many days early counts for its due day.
EARLY_DAYS = 2


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
    #: When the clinic discharged the patient; None while under its care. Nothing is asked
    #: of a discharged patient (no due item, no reminder), and nothing from that moment on
    #: counts as asked.
    discharged_at: dt.datetime | None = None


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


def timeline_of(patient: Patient, courses: Sequence[Course],
                assessments: Iterable[Assessment]) -> Timeline:
    """What the patient's schedule is anchored to, from their records."""
    course = current_course_of(courses)
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
        discharged_at=patient.discharged_at,
    )


def outstanding(entries: Iterable[PlanEntry], timeline: Timeline,
                now: dt.datetime) -> list[Occurrence]:
    """Every questionnaire the plan asks for and that is not done: due now, or next to fall
    due, one per plan entry; earliest first. Nothing for a discharged patient."""
    if timeline.discharged_at is not None:
        return []
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
    return local_date(occurrences[0].opens_at, timeline.timezone)


def overdue_before(today: dt.date) -> dt.date:
    """A questionnaire due before this day is overdue (past the grace window)."""
    return today - dt.timedelta(days=GRACE_DAYS)


def _grace(opens_at: dt.datetime) -> dt.datetime:
    return opens_at + dt.timedelta(days=GRACE_DAYS + 1)


def _baseline(entry: PlanEntry, timeline: Timeline, now: dt.datetime) -> Occurrence | None:
    done = timeline.completed.get(entry.instrument_key, ())
    first_infusion = timeline.infusions[0] if timeline.infusions else None
    if any(first_infusion is None or moment <= first_infusion for moment in done):
        return None
    if first_infusion is not None:
        return None  # the course has begun: a baseline can no longer be had
    opens_at = local_midnight(timeline.timezone,
                              local_date(timeline.enrolled_at, timeline.timezone))
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
    opens_at = local_midnight(timeline.timezone,
                              local_date(last, timeline.timezone) + dt.timedelta(days=1))
    if now > opens_at + dt.timedelta(days=AFTER_INFUSION_EXPIRY_DAYS):
        return None
    return Occurrence(entry.instrument_key, entry.schedule, opens_at, _grace(opens_at),
                      "The day after your infusion")


def _recurring(entry: PlanEntry, timeline: Timeline, now: dt.datetime) -> Occurrence | None:
    zone = timeline.timezone
    anchor = local_date(timeline.infusions[0] if timeline.infusions else timeline.enrolled_at,
                        zone)
    today = local_date(now, zone)
    days = _recurring_days(entry, anchor, timeline.course_ended_on, today)
    if not days:
        return None
    current, upcoming = days
    done = [local_date(moment, zone) for moment in timeline.completed.get(
        entry.instrument_key, ())]
    if current is not None and not any(day >= current - dt.timedelta(days=EARLY_DAYS)
                                       for day in done):
        opens_at = local_midnight(zone, current)
        return Occurrence(entry.instrument_key, entry.schedule, opens_at, _grace(opens_at),
                          "Your regular check-in")
    if upcoming is None or any(day >= upcoming - dt.timedelta(days=EARLY_DAYS) for day in done):
        return None
    return Occurrence(entry.instrument_key, entry.schedule, local_midnight(zone, upcoming),
                      _grace(local_midnight(zone, upcoming)), "Your regular check-in")


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


# --- What the plan asked for over a past window (completion, services.completion) -------------

#: What became of an occurrence the plan asked for, by a given moment.
ON_TIME = "on time"    # done before it was overdue
LATE = "late"          # done, after it was overdue
MISSED = "missed"      # not done, and past its grace or no longer asked for
OPEN = "open"          # not done, still asked for and not yet overdue
OUTCOMES = (ON_TIME, LATE, MISSED, OPEN)


@dataclass(frozen=True)
class Asked:
    """One occurrence the plan asked for, and what became of it by the moment asked about."""

    occurrence: Occurrence
    #: When the plan stopped asking for it (the infusion was given, the next one fell due, it
    #: expired); None while it still may be done.
    closes_at: dt.datetime | None
    #: The completion that answered it, as the rules above count one; None when not done.
    done_at: dt.datetime | None
    outcome: str


def asked_between(entries: Iterable[PlanEntry], timeline: Timeline, start: dt.datetime,
                  now: dt.datetime) -> list[Asked]:
    """Every occurrence the plan asked for that fell due from ``start`` up to ``now``, with
    what became of it by ``now``; earliest first.

    The same rules as ``outstanding``, replayed: an occurrence is asked for from when it falls
    due until the rule at that moment would stop listing it, and it is done by the first
    completion the rule counts for it (a completion counts for every occurrence it answers,
    as the rules count it: one PHQ-9 serves two timings, and one done two days early serves
    the next check-in). Only completions up to ``now`` count. Each recorded infusion was
    preceded by its before-infusion window; the booked next infusion's window counts once
    open. The plan's active entries, the courses and the timeline are taken as they stand;
    for a discharged patient, only what fell due before the discharge."""
    until = now if timeline.discharged_at is None else min(now, timeline.discharged_at)
    asked: list[Asked] = []
    for entry in entries:
        if entry.active:
            asked.extend(found for found in _ASKED_RULES[entry.schedule](entry, timeline, start,
                                                                         now)
                         if start <= found.occurrence.opens_at <= until)
    return sorted(asked, key=lambda a: (a.occurrence.opens_at, a.occurrence.instrument_key,
                                        a.occurrence.schedule))


@dataclass(frozen=True)
class _Counting:
    """Which completions answer an occurrence: those from ``since`` (after it, when not
    ``since_included``; any, when None) until ``until`` (up to it when ``until_included``;
    no end, when None)."""

    since: dt.datetime | None
    until: dt.datetime | None
    since_included: bool = True
    until_included: bool = False

    def first(self, done: Sequence[dt.datetime], now: dt.datetime) -> dt.datetime | None:
        """The earliest of ``done`` (sorted) that counts, up to ``now``."""
        if self.since is None:
            start = 0
        else:
            start = (bisect_left if self.since_included else bisect_right)(done, self.since)
        if start == len(done) or done[start] > now:
            return None
        moment = done[start]  # the earliest candidate: if it is too late, so are the rest
        if self.until is not None and (moment > self.until or (
                moment == self.until and not self.until_included)):
            return None
        return moment


def _asked(occurrence: Occurrence, closes_at: dt.datetime | None, done: Sequence[dt.datetime],
           counting: _Counting, now: dt.datetime) -> Asked:
    """The occurrence with its first counting completion up to ``now`` and its outcome."""
    done_at = counting.first(done, now)
    if done_at is not None:
        outcome = LATE if occurrence.is_overdue(done_at) else ON_TIME
    elif occurrence.is_overdue(now) or (closes_at is not None and closes_at <= now):
        outcome = MISSED
    else:
        outcome = OPEN
    return Asked(occurrence, closes_at, done_at, outcome)


def _completions(entry: PlanEntry, timeline: Timeline) -> list[dt.datetime]:
    return sorted(timeline.completed.get(entry.instrument_key, ()))


def _baseline_asked(entry: PlanEntry, timeline: Timeline, start: dt.datetime,
                    now: dt.datetime) -> list[Asked]:
    opens_at = local_midnight(timeline.timezone,
                              local_date(timeline.enrolled_at, timeline.timezone))
    first_infusion = timeline.infusions[0] if timeline.infusions else None
    if first_infusion is not None and first_infusion <= opens_at:
        return []  # the course began before the patient was enrolled: never asked
    occurrence = Occurrence(entry.instrument_key, entry.schedule, opens_at, _grace(opens_at),
                            "Before your first infusion")
    return [_asked(occurrence, first_infusion, _completions(entry, timeline),
                   _Counting(None, first_infusion, until_included=True), now)]


def _before_infusion_asked(entry: PlanEntry, timeline: Timeline, start: dt.datetime,
                           now: dt.datetime) -> list[Asked]:
    booked = timeline.next_infusion_at
    infusions = [*timeline.infusions, *([booked] if booked is not None and booked > now else [])]
    done = _completions(entry, timeline)
    asked = []
    for infusion_at in infusions:
        opens_at = infusion_at - BEFORE_INFUSION_WINDOW
        if opens_at < start:
            continue
        occurrence = Occurrence(entry.instrument_key, entry.schedule, opens_at, infusion_at,
                                "Before your infusion")
        asked.append(_asked(occurrence, infusion_at, done,
                            _Counting(opens_at, infusion_at, until_included=True), now))
    return asked


def _after_infusion_asked(entry: PlanEntry, timeline: Timeline, start: dt.datetime,
                          now: dt.datetime) -> list[Asked]:
    zone = timeline.timezone
    done = _completions(entry, timeline)
    given = list(timeline.infusions)
    asked = []
    for given_at, next_given in zip(given, [*given[1:], None]):
        opens_at = local_midnight(zone, local_date(given_at, zone) + dt.timedelta(days=1))
        if opens_at < start:
            continue
        closes_at = opens_at + dt.timedelta(days=AFTER_INFUSION_EXPIRY_DAYS)
        if next_given is not None:
            closes_at = min(closes_at, next_given)  # the next infusion's check replaces it
        if closes_at <= opens_at:
            continue  # replaced before it fell due: never asked
        occurrence = Occurrence(entry.instrument_key, entry.schedule, opens_at,
                                _grace(opens_at), "The day after your infusion")
        asked.append(_asked(occurrence, closes_at, done,
                            _Counting(given_at, closes_at, since_included=False), now))
    return asked


def _recurring_asked(entry: PlanEntry, timeline: Timeline, start: dt.datetime,
                     now: dt.datetime) -> list[Asked]:
    """Before the first infusion the series runs from enrolment, and the first infusion ends
    it; from then on, from the first infusion (as ``_recurring`` anchors it at each moment)."""
    zone = timeline.timezone
    first_infusion = timeline.infusions[0] if timeline.infusions else None
    phases = [(local_date(timeline.enrolled_at, zone), first_infusion)]
    if first_infusion is not None:
        phases.append((local_date(first_infusion, zone), None))
    done = _completions(entry, timeline)
    from_day = local_date(start, zone)
    today = local_date(now, zone)
    asked = []
    for anchor, ends_at in phases:
        days = _series(entry, anchor, timeline.course_ended_on, from_day)
        day = next(days, None)
        while day is not None and day <= today:
            following = next(days, None)
            opens_at = local_midnight(zone, day)
            if ends_at is not None and opens_at >= ends_at:
                break
            closes_at = local_midnight(zone, following) if following is not None else None
            if ends_at is not None:
                closes_at = min(closes_at, ends_at) if closes_at is not None else ends_at
            occurrence = Occurrence(entry.instrument_key, entry.schedule, opens_at,
                                    _grace(opens_at), "Your regular check-in")
            early = local_midnight(zone, day - dt.timedelta(days=EARLY_DAYS))
            asked.append(_asked(occurrence, closes_at, done, _Counting(early, closes_at), now))
            day = following
    return asked


def _series(entry: PlanEntry, anchor: dt.date, course_ended_on: dt.date | None,
            from_day: dt.date) -> Iterator[dt.date]:
    """The due days of a recurring entry anchored at ``anchor``, from ``from_day`` on, in
    order: every ``every_days`` (until the follow-up after the course ends), then every
    ``then_every_days`` (``_recurring_days``' series, listed)."""
    every = dt.timedelta(days=entry.every_days)
    first = anchor + every
    if course_ended_on is None:
        yield from _steps(first, every, None, from_day)
        return
    dense_until = course_ended_on + dt.timedelta(weeks=entry.follow_up_weeks or 0)
    yield from _steps(first, every, dense_until, from_day)
    if entry.then_every_days:
        last_dense = _around(first, every, dense_until, dense_until)[0] or dense_until
        later = dt.timedelta(days=entry.then_every_days)
        yield from _steps(last_dense + later, later, None, from_day)


def _steps(start: dt.date, step: dt.timedelta, stop: dt.date | None,
           from_day: dt.date) -> Iterator[dt.date]:
    """start, start + step, ... up to ``stop`` (endless without one), from ``from_day`` on."""
    skipped = max(0, -(-(from_day - start).days // step.days))
    day = start + step * skipped
    while stop is None or day <= stop:
        yield day
        day += step


_ASKED_RULES: dict[str, Callable[[PlanEntry, Timeline, dt.datetime, dt.datetime],
                                 list[Asked]]] = {
    "baseline": _baseline_asked,
    "before_infusion": _before_infusion_asked,
    "after_infusion": _after_infusion_asked,
    "recurring": _recurring_asked,
}
