"""The per-patient summary row the dashboard reads.

Every writer that changes what the summary depends on (a submission, an alert, an infusion,
a course, a plan, an enrolment) marks the patient with ``touch``; just before the transaction
commits, each touched patient's summary is recomputed once from their own rows, in the same
transaction (the audit trail's own pattern, ``services.audit``). So the dashboard stays one
row per patient, whatever the length of their history, and no writer refreshes by hand. A
rollback drops the marks with everything else.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

import instruments

from ..clock import clinic_zone
from ..models import Alert, Assessment, Course, Patient, PatientSummary, PlanEntry, utcnow
from .baseline import Window, course_windows, measure_records, reference_among
from .records import current_assessments, current_course_of, patient_assessments, plan_for
from .schedule import next_due_on, timeline_of

#: The measures whose reference (baseline or first) and latest totals the dashboard shows.
SUMMARY_MEASURES = {"PCL-5": "pcl5", "PHQ-9": "phq9"}


@dataclass(frozen=True)
class Signal:
    """A change threshold met between a baseline and a later total."""

    key: str
    label: str
    signals: str
    source: str


def change_signals(instrument_key: str, baseline: int | None,
                   current: int | None) -> list[Signal]:
    """The improvement or worsening thresholds (from the instrument's definition) that the
    change from ``baseline`` to ``current`` meets."""
    if baseline is None or current is None:
        return []
    instrument = instruments.get(instrument_key)
    change = instruments.change(instrument_key, baseline, current)
    return [Signal(t.key, t.label, t.signals, t.source) for t in instrument.change_thresholds
            if t.signals != "status" and change.fields.get(t.key) is True]


def summary_values(patient: Patient, assessments: Sequence[Assessment],
                   courses: Sequence[Course], open_alerts: int, plan: Sequence[PlanEntry],
                   now: dt.datetime) -> dict[str, Any]:
    """The summary row's values from the patient's records (current assessments only)."""
    values: dict[str, Any] = {"patient_id": patient.id, "clinic_id": patient.clinic_id,
                              "open_alerts": open_alerts}
    ordered = sorted(assessments, key=lambda a: (a.administered_at, a.id))
    values.update(score_values(ordered, course_windows(courses, clinic_zone(patient.clinic))))
    course = current_course_of(courses)
    values.update(
        course_status=course.status if course else None,
        infusions_done=len(course.infusions) if course else 0,
        infusions_planned=course.planned_infusions if course else None,
        next_infusion_at=course.next_infusion_at if course else None,
    )
    values["next_due_on"] = next_due_on(plan, timeline_of(patient, courses, ordered), now)
    activity = [a.submitted_at for a in ordered] + [
        v.recorded_at for c in courses for i in c.infusions for v in i.versions]
    values["last_activity_at"] = max(activity) if activity else None
    return values


def score_values(assessments: Sequence[Assessment],
                 windows: Sequence[Window[dt.datetime]]) -> dict[str, Any]:
    """The summary's columns that come from scores, from the patient's current assessments
    (or rows with their fields) and the baseline windows of their courses: per measure the
    reference's total, date and kind, the latest total and date; and whether the latest totals
    meet an improvement or a worsening threshold against their references."""
    values: dict[str, Any] = {"improving": False, "worsening": False}
    for measure, column in SUMMARY_MEASURES.items():
        scored = measure_records(assessments, measure)
        latest = scored[-1] if scored else None
        # The one reference (services.baseline): the course baseline, else the first score.
        reference = reference_among(scored, windows, measure)
        baseline = reference.record if reference is not None else None
        values[f"{column}_baseline"] = baseline.total if baseline else None
        values[f"{column}_baseline_at"] = baseline.administered_at if baseline else None
        values[f"{column}_reference_kind"] = reference.kind if reference else None
        values[f"{column}_latest"] = latest.total if latest else None
        values[f"{column}_latest_at"] = latest.administered_at if latest else None
        if baseline is not None and latest is not baseline:
            kinds = {s.signals for s in change_signals(latest.instrument_key, baseline.total,
                                                       latest.total)}
            values["improving"] |= "improvement" in kinds
            values["worsening"] |= "worsening" in kinds
    return values


def refresh(session: Session, patient_id: int, now: dt.datetime | None = None) -> PatientSummary:
    """Recompute one patient's summary from their own rows only. Writers ``touch`` instead:
    the commit recomputes each touched patient once."""
    session.flush()
    patient = session.get(Patient, patient_id)
    courses = list(session.scalars(select(Course).where(Course.patient_id == patient_id)))
    open_alerts = session.scalar(select(func.count(Alert.id)).where(
        Alert.patient_id == patient_id, Alert.acknowledged_at.is_(None)))
    values = summary_values(
        patient, current_assessments(patient_assessments(session, patient_id)), courses,
        open_alerts, plan_for(session, patient_id), now or utcnow(),
    )
    summary = session.get(PatientSummary, patient_id)
    if summary is None:
        summary = PatientSummary(**values)
        session.add(summary)
    else:
        for name, value in values.items():
            setattr(summary, name, value)
    session.flush()
    return summary


_TOUCHED = "outcomes.summaries.touched"


def touch(session: Session, patient_id: int) -> None:
    """Mark the patient's summary as out of date: it is recomputed once, just before the
    session's transaction commits, however often the transaction touches the patient."""
    session.info.setdefault(_TOUCHED, set()).add(patient_id)


# First among the before-commit listeners: a summary written here is flushed before the audit
# trail's listener (services.audit) chains the transaction's audit rows.
@event.listens_for(Session, "before_commit", insert=True)
def _refresh_touched(session: Session) -> None:
    # A savepoint's release fires this too: only the outer commit recomputes.
    if session.in_nested_transaction():
        return
    for patient_id in sorted(session.info.pop(_TOUCHED, ())):
        refresh(session, patient_id)


@event.listens_for(Session, "after_transaction_end")
def _drop_touched(session: Session, transaction: SessionTransaction) -> None:
    # The outer transaction ended without its commit (a rollback, a closed session): the
    # changes the marks stood for are gone. A savepoint rolled back keeps the marks: the
    # transaction's earlier changes stand, and a recompute of an unchanged patient is harmless.
    if transaction.parent is None:
        session.info.pop(_TOUCHED, None)
