"""Each patient's measurement plan and what it makes due."""
from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import instruments

from ..models import Assessment, Patient, PlanEntry, as_utc
from . import audit
from .audit import Actor

#: (instrument, every_days or None for once at baseline, first due this many days after
#: enrolment). PCL-5 past-month, PHQ-9 and GAD-7 at baseline; then PCL-5 weekly and PHQ-9
#: every 7 days.
DEFAULT_PLAN: tuple[tuple[str, int | None, int], ...] = (
    ("pcl5", None, 0),
    ("phq9", 7, 0),
    ("gad7", None, 0),
    ("pcl5-weekly", 7, 7),
)

#: Days after the due date before a questionnaire counts as overdue.
GRACE_DAYS = 2


class PlanError(ValueError):
    """A plan change that cannot be made, with the reason."""


@dataclass(frozen=True)
class DueQuestionnaire:
    instrument_key: str
    title: str
    due_on: dt.date
    overdue: bool


def add_default_plan(session: Session, patient: Patient) -> None:
    """Give a newly enrolled patient the clinic's default plan."""
    for key, every_days, starts_after in DEFAULT_PLAN:
        session.add(PlanEntry(patient_id=patient.id, instrument_key=key, every_days=every_days,
                              starts_after_days=starts_after))


def plan_for(session: Session, patient: Patient) -> list[PlanEntry]:
    """The patient's plan, in the order questionnaires are offered."""
    order = {key: position for position, (key, _, _) in enumerate(DEFAULT_PLAN)}
    entries = session.scalars(select(PlanEntry).where(PlanEntry.patient_id == patient.id)).all()
    return sorted(entries, key=lambda entry: (order.get(entry.instrument_key, 99),
                                              entry.instrument_key))


def last_completed(session: Session, patient_id: int) -> dict[str, dt.datetime]:
    """When each instrument was last administered to the patient."""
    rows = session.execute(
        select(Assessment.instrument_key, func.max(Assessment.administered_at))
        .where(Assessment.patient_id == patient_id)
        .group_by(Assessment.instrument_key)
    ).all()
    return {key: as_utc(value) for key, value in rows}


def due_questionnaires(
    entries: Iterable[PlanEntry],
    completed: Mapping[str, dt.datetime],
    enrolled_at: dt.datetime,
    now: dt.datetime,
    timezone: str,
) -> list[DueQuestionnaire]:
    """What the plan makes due today, in the clinic's calendar, given what was completed."""
    zone = zoneinfo.ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    due: list[DueQuestionnaire] = []
    for entry in entries:
        if not entry.active:
            continue
        last = completed.get(entry.instrument_key)
        if last is None:
            due_on = enrolled_at.astimezone(zone).date() + dt.timedelta(
                days=entry.starts_after_days)
        elif entry.every_days is None:
            continue
        else:
            due_on = last.astimezone(zone).date() + dt.timedelta(days=entry.every_days)
        if due_on <= today:
            due.append(DueQuestionnaire(
                instrument_key=entry.instrument_key,
                title=instruments.get(entry.instrument_key).title,
                due_on=due_on,
                overdue=(today - due_on).days > GRACE_DAYS,
            ))
    return due


def update_plan(
    session: Session, actor: Actor, patient: Patient,
    changes: Mapping[str, tuple[bool, int | None, int]],
) -> None:
    """Set the patient's plan: instrument key → (active, every_days or None, starts_after_days)."""
    entries = {entry.instrument_key: entry for entry in plan_for(session, patient)}
    before = {key: _describe(entry) for key, entry in entries.items()}
    for key, (active, every_days, starts_after) in changes.items():
        instruments.get(key)  # refuses unknown instruments
        if every_days is not None and not 1 <= every_days <= 365:
            raise PlanError("The interval must be between 1 and 365 days.")
        if not 0 <= starts_after <= 365:
            raise PlanError("The first-due offset must be between 0 and 365 days.")
        entry = entries.get(key)
        if entry is None:
            entry = PlanEntry(patient_id=patient.id, instrument_key=key)
            session.add(entry)
            entries[key] = entry
        entry.active, entry.every_days, entry.starts_after_days = active, every_days, starts_after
    session.flush()
    after = {key: _describe(entry) for key, entry in entries.items()}
    if after != before:
        audit.record(session, actor, "plan.update", patient=patient, object_type="patient",
                     object_id=patient.id, details={"old": before, "new": after})


def _describe(entry: PlanEntry) -> dict[str, object]:
    return {"active": entry.active, "every_days": entry.every_days,
            "starts_after_days": entry.starts_after_days}
