"""Each patient's measurement plan: the default one, and the changes clinicians make to it
(``schedule`` holds the rules of what a plan makes due and when).

The default plan (issue 4): PCL-5 (past month), PHQ-9 and GAD-7 at baseline, before the first
infusion; the PHQ-9 within 24 hours before each infusion; the after-infusion check the day
after each infusion; PCL-5 (past week) and PHQ-9 weekly during the course and for 12 weeks
after it, then every 4 weeks. Days are the clinic's calendar days.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import instruments

from ..models import SCHEDULES, Patient, PlanEntry
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

class PlanError(ValueError):
    """A plan change that cannot be made, with the reason."""


def add_default_plan(session: Session, patient: Patient) -> None:
    """Give a newly enrolled patient the default plan."""
    session.add_all(default_plan_entries(patient.id))


def default_plan_entries(patient_id: int | None) -> list[PlanEntry]:
    return [PlanEntry(patient_id=patient_id, instrument_key=d.instrument_key,
                      schedule=d.schedule, every_days=d.every_days,
                      follow_up_weeks=d.follow_up_weeks, then_every_days=d.then_every_days,
                      active=True)
            for d in DEFAULT_PLAN]


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
        summaries.touch(session, patient.id)


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
