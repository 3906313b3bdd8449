"""Questionnaire completion, measured from the schedule (issue 11, "Measured"): of every
questionnaire the plans asked for over the last 30 and 90 days, how many were done on time,
late or missed, and how many reminders went out; for the clinic, per clinician (the patients
assigned to them) and per patient.

``schedule.asked_between`` classes each occurrence (the scheduling rules, replayed); this
module feeds it. Whatever the number of patients it reads the clinic's patients, plan
entries, courses, infusion times, questionnaire times and sent reminders in one statement
each, plain columns only, then counts in Python. docs/completion.md defines the figures.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from ..clock import clinic_today, local_midnight
from ..models import (Assessment, Clinic, Course, Delivery, Infusion, InfusionVersion, Patient,
                      PlanEntry, User)
from .records import current_course_of
from .schedule import EARLY_DAYS, LATE, MISSED, ON_TIME, Timeline, asked_between

#: The windows measured, in clinic days (today included).
WINDOWS = (30, 90)
#: What each outcome means, in the words the pages show, by the name they show it under.
DEFINITIONS = {
    "On time": "done before it was overdue (by the end of the grace days after it fell due, or "
               "before the infusion for the questionnaire asked for before one)",
    "Late": "done after it was overdue, while it was still asked for",
    "Missed": "not done, and overdue or no longer asked for (the infusion was given, the next "
              "check-in fell due, or the after-infusion check expired)",
    "Still open": "fell due recently, not done yet and not yet overdue: not counted in the "
                  "percentages",
}


@dataclass
class Completion:
    """Counts over one window: occurrences by outcome, and reminders sent."""

    on_time: int = 0
    late: int = 0
    missed: int = 0
    open: int = 0
    #: Reminder deliveries sent in the window (one per channel a reminder went through).
    reminders_sent: int = 0

    @property
    def judged(self) -> int:
        """Occurrences with an outcome: on time, late or missed (open ones are not yet)."""
        return self.on_time + self.late + self.missed

    def count(self, outcome: str) -> int:
        """The occurrences with ``outcome`` (``schedule.OUTCOMES``)."""
        return int(getattr(self, outcome.replace(" ", "_")))

    def percent(self, outcome: str) -> float | None:
        """The share of judged occurrences with ``outcome``; None when none is judged."""
        if not self.judged:
            return None
        return 100 * self.count(outcome) / self.judged

    @property
    def percents(self) -> dict[str, float | None]:
        """Each judged outcome's share, in the order the pages show them."""
        return {outcome: self.percent(outcome) for outcome in (ON_TIME, LATE, MISSED)}

    def add(self, other: Completion) -> None:
        for counted in fields(self):
            setattr(self, counted.name,
                    getattr(self, counted.name) + getattr(other, counted.name))


ByWindow = dict[int, Completion]


@dataclass(frozen=True)
class ClinicianCompletion:
    #: The clinician's login (email); None for the patients assigned to no one.
    clinician: str | None
    patients: int
    windows: ByWindow


@dataclass(frozen=True)
class CompletionReport:
    windows: tuple[int, ...]
    clinic: ByWindow
    clinicians: list[ClinicianCompletion]
    patients: dict[int, ByWindow]

    @property
    def definitions(self) -> dict[str, str]:
        """What each outcome means, for the page that shows the counts."""
        return DEFINITIONS


def clinic_completion(session: Session, clinic: Clinic, now: dt.datetime,
                      windows: Sequence[int] = WINDOWS) -> CompletionReport:
    """The clinic's completion over each window (clinic days ending today), whole and per
    clinician (their assigned patients), with each patient's own."""
    return _report(session, clinic, now, tuple(windows), patient_id=None)


def patient_completion(session: Session, patient: Patient, now: dt.datetime,
                       windows: Sequence[int] = WINDOWS) -> ByWindow:
    """One patient's completion over each window."""
    report = _report(session, patient.clinic, now, tuple(windows), patient_id=patient.id)
    return report.patients.get(patient.id, _empty(report.windows))


def _empty(windows: Iterable[int]) -> ByWindow:
    return {days: Completion() for days in windows}


def _report(session: Session, clinic: Clinic, now: dt.datetime, windows: tuple[int, ...],
            patient_id: int | None) -> CompletionReport:
    today = clinic_today(clinic, now)
    starts = {days: local_midnight(clinic, today - dt.timedelta(days=days - 1))
              for days in windows}
    earliest = min(starts.values())
    records = _Records.read(session, _Scope(clinic.id, patient_id), starts)
    per_patient: dict[int, ByWindow] = {}
    for patient in records.patients:
        counts = _empty(windows)
        timeline = records.timeline(patient, clinic.timezone)
        for asked in asked_between(records.plans.get(patient.id, ()), timeline, earliest, now):
            for days, start in starts.items():
                if asked.occurrence.opens_at >= start:
                    _count(counts[days], asked.outcome)
        for days, sent in records.reminders.get(patient.id, {}).items():
            counts[days].reminders_sent = sent
        per_patient[patient.id] = counts
    return CompletionReport(windows, _total(per_patient.values(), windows),
                            _by_clinician(records.patients, per_patient, windows), per_patient)


def _count(counts: Completion, outcome: str) -> None:
    setattr(counts, outcome.replace(" ", "_"), counts.count(outcome) + 1)


def _total(parts: Iterable[ByWindow], windows: Iterable[int]) -> ByWindow:
    total = _empty(windows)
    for part in parts:
        for days, counts in part.items():
            total[days].add(counts)
    return total


def _by_clinician(patients: Sequence[_PatientRow], per_patient: Mapping[int, ByWindow],
                  windows: tuple[int, ...]) -> list[ClinicianCompletion]:
    """One row per clinician with assigned patients, by login, then the unassigned."""
    groups: dict[str | None, list[int]] = defaultdict(list)
    for patient in patients:
        groups[patient.clinician_email].append(patient.id)
    order = sorted(groups, key=lambda email: (email is None, email or ""))
    return [ClinicianCompletion(email, len(groups[email]),
                                _total((per_patient[p] for p in groups[email]), windows))
            for email in order]


@dataclass(frozen=True)
class _PatientRow:
    id: int
    enrolled_at: dt.datetime
    clinician_email: str | None
    discharged_at: dt.datetime | None


@dataclass(frozen=True)
class _Scope:
    """The clinic's patients, or one of them: what each statement is narrowed to."""

    clinic_id: int
    patient_id: int | None

    def __call__(self, statement: Select[Any], patient_column: Any) -> Select[Any]:
        statement = statement.where(Patient.clinic_id == self.clinic_id)
        if self.patient_id is not None:
            statement = statement.where(patient_column == self.patient_id)
        return statement


@dataclass
class _Records:
    """What the schedule needs of the clinic's patients, one statement per kind of record."""

    patients: list[_PatientRow]
    plans: dict[int, list[PlanEntry]]
    courses: dict[int, list[Course]]
    infusions: dict[int, list[dt.datetime]]
    completed: dict[int, dict[str, list[dt.datetime]]]
    reminders: dict[int, dict[int, int]]

    @classmethod
    def read(cls, session: Session, scope: _Scope,
             starts: Mapping[int, dt.datetime]) -> _Records:
        clinician = aliased(User)
        patients = [_PatientRow(*row) for row in session.execute(
            scope(select(Patient.id, Patient.enrolled_at, clinician.email, Patient.discharged_at)
                  .outerjoin(clinician, clinician.id == Patient.assigned_clinician_id),
                  Patient.id).order_by(Patient.id))]
        plans: dict[int, list[PlanEntry]] = defaultdict(list)
        for entry in session.scalars(scope(
                select(PlanEntry).join(Patient, Patient.id == PlanEntry.patient_id)
                .where(PlanEntry.active.is_(True)), PlanEntry.patient_id)):
            plans[entry.patient_id].append(entry)
        courses: dict[int, list[Course]] = defaultdict(list)
        for course in session.scalars(scope(
                select(Course).join(Patient, Patient.id == Course.patient_id),
                Course.patient_id)):
            courses[course.patient_id].append(course)
        earliest = min(starts.values())
        return cls(patients, plans, courses, _infusions(session, scope),
                   _completed(session, scope, earliest), _reminders(session, scope, starts))

    def timeline(self, patient: _PatientRow, timezone: str) -> Timeline:
        course = current_course_of(self.courses.get(patient.id, []))
        return Timeline(
            enrolled_at=patient.enrolled_at, timezone=timezone,
            infusions=self.infusions.get(patient.id, []),
            next_infusion_at=course.next_infusion_at if course else None,
            course_ended_on=course.ended_on if course else None,
            completed=self.completed.get(patient.id, {}),
            discharged_at=patient.discharged_at)


def _infusions(session: Session, scope: _Scope) -> dict[int, list[dt.datetime]]:
    """Each patient's infusion times, oldest first, as each infusion's latest version
    records them."""
    latest: dict[int, tuple[int, int, dt.datetime]] = {}
    for row in session.execute(scope(
            select(Course.patient_id, InfusionVersion.infusion_id, InfusionVersion.version,
                   InfusionVersion.administered_at)
            .join(Infusion, Infusion.id == InfusionVersion.infusion_id)
            .join(Course, Course.id == Infusion.course_id)
            .join(Patient, Patient.id == Course.patient_id), Course.patient_id)):
        known = latest.get(row.infusion_id)
        if known is None or row.version > known[1]:
            latest[row.infusion_id] = (row.patient_id, row.version, row.administered_at)
    infusions: dict[int, list[dt.datetime]] = defaultdict(list)
    for patient_id, _version, given_at in latest.values():
        infusions[patient_id].append(given_at)
    return {patient_id: sorted(times) for patient_id, times in infusions.items()}


def _completed(session: Session, scope: _Scope,
               earliest: dt.datetime) -> dict[int, dict[str, list[dt.datetime]]]:
    """Each patient's questionnaire times by instrument, of the records no correction
    replaces: those that can answer an occurrence of the windows (from a few days before the
    earliest: a check-in done early reaches back), and all of a patient enrolled since
    (whose baseline a paper form dated before enrolment can answer)."""
    reach = earliest - dt.timedelta(days=EARLY_DAYS + 1)
    rows = session.execute(scope(
        select(Assessment.patient_id, Assessment.id, Assessment.amends_id,
               Assessment.instrument_key, Assessment.administered_at)
        .join(Patient, Patient.id == Assessment.patient_id)
        .where(or_(Assessment.administered_at >= reach, Patient.enrolled_at >= reach)),
        Assessment.patient_id)).all()
    replaced = {row.amends_id for row in rows if row.amends_id is not None}
    completed: dict[int, dict[str, list[dt.datetime]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.id not in replaced:
            completed[row.patient_id][row.instrument_key].append(row.administered_at)
    return completed


def _reminders(session: Session, scope: _Scope,
               starts: Mapping[int, dt.datetime]) -> dict[int, dict[int, int]]:
    """Each patient's reminder deliveries sent in each window."""
    sent = {days: func.sum(case((Delivery.sent_at >= start, 1), else_=0))
            for days, start in starts.items()}
    rows = session.execute(scope(
        select(Delivery.patient_id, *(total.label(f"sent_{days}")
                                      for days, total in sent.items()))
        .join(Patient, Patient.id == Delivery.patient_id)
        .where(Delivery.purpose == "reminder", Delivery.status == "sent",
               Delivery.sent_at >= min(starts.values()))
        .group_by(Delivery.patient_id), Delivery.patient_id))
    return {row.patient_id: {days: int(row._mapping[f"sent_{days}"]) for days in starts}
            for row in rows}
