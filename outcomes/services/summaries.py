"""The per-patient summary rows the dashboard reads: one ``PatientSummary`` per patient and
one ``MeasureSummary`` per patient and measure with a scorable total.

Every writer that changes what the summary depends on (a submission, an alert, an infusion,
a course, a plan, an enrolment) marks the patient with ``touch``; just before the transaction
commits, each touched patient's summary is recomputed once from their own rows, in the same
transaction (the audit trail's own pattern, ``services.audit``). So the dashboard stays one
row per patient and headline measure, whatever the length of their history, and no writer
refreshes by hand. A rollback drops the marks with everything else.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

import instruments

from ..clock import clinic_zone
from ..models import (Alert, Assessment, Course, MeasureSummary, Patient, PatientSummary,
                      PlanEntry, utcnow)
from .baseline import Window, course_windows, measure_records, reference_among
from .records import current_assessments, current_course_of, patient_assessments, plan_for
from .schedule import next_due_on, timeline_of

SummaryRow = TypeVar("SummaryRow", PatientSummary, MeasureSummary)


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


@dataclass(frozen=True)
class SummaryValues:
    """A patient's summary as column values: the patient's row and a row per measure."""

    patient: dict[str, Any]
    measures: list[dict[str, Any]]


def summary_values(patient: Patient, assessments: Sequence[Assessment],
                   courses: Sequence[Course], open_alerts: int, plan: Sequence[PlanEntry],
                   now: dt.datetime) -> SummaryValues:
    """The summary rows' values from the patient's records (current assessments only)."""
    values: dict[str, Any] = {"patient_id": patient.id, "clinic_id": patient.clinic_id,
                              "open_alerts": open_alerts}
    ordered = sorted(assessments, key=lambda a: (a.administered_at, a.id))
    scores = measure_values(ordered, course_windows(courses, clinic_zone(patient.clinic)))
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
    return SummaryValues(values, [
        {"patient_id": patient.id, "clinic_id": patient.clinic_id, "measure": measure, **row}
        for measure, row in scores.items()])


def measure_values(assessments: Sequence[Assessment],
                   windows: Sequence[Window[dt.datetime]]) -> dict[str, dict[str, Any]]:
    """Per measure with a scorable total, from the patient's current assessments (or rows
    with their fields) and the baseline windows of their courses: the reference's total,
    date and kind, the latest total and date, and whether the latest total meets an
    improvement or a worsening threshold against the reference. Measures in name order."""
    measures = sorted({instruments.get(a.instrument_key).measure
                       for a in assessments if a.scorable})
    values: dict[str, dict[str, Any]] = {}
    for measure in measures:
        scored = measure_records(assessments, measure)
        latest = scored[-1]
        # The one reference (services.baseline): the course baseline, else the first score.
        reference = reference_among(scored, windows, measure)
        baseline = reference.record
        kinds = set() if latest is baseline else {
            s.signals for s in change_signals(latest.instrument_key, baseline.total, latest.total)}
        values[measure] = {
            "baseline": baseline.total, "baseline_at": baseline.administered_at,
            "reference_kind": reference.kind,
            "latest": latest.total, "latest_at": latest.administered_at,
            "improving": "improvement" in kinds, "worsening": "worsening" in kinds,
        }
    return values


def refresh(session: Session, patient_id: int, now: dt.datetime | None = None) -> PatientSummary:
    """Recompute one patient's summary rows from their own rows only. Writers ``touch``
    instead: the commit recomputes each touched patient once."""
    session.flush()
    patient = session.get(Patient, patient_id)
    courses = list(session.scalars(select(Course).where(Course.patient_id == patient_id)))
    open_alerts = session.scalar(select(func.count(Alert.id)).where(
        Alert.patient_id == patient_id, Alert.acknowledged_at.is_(None)))
    values = summary_values(
        patient, current_assessments(patient_assessments(session, patient_id)), courses,
        open_alerts, plan_for(session, patient_id), now or utcnow(),
    )
    summary = _upsert(session, session.get(PatientSummary, patient_id), PatientSummary,
                      values.patient)
    stored = {row.measure: row for row in session.scalars(
        select(MeasureSummary).where(MeasureSummary.patient_id == patient_id))}
    for row in values.measures:
        _upsert(session, stored.pop(row["measure"], None), MeasureSummary, row)
    for gone in stored.values():  # a measure whose only scores were corrected away
        session.delete(gone)
    session.flush()
    return summary


def _upsert(session: Session, row: SummaryRow | None, model: type[SummaryRow],
            values: dict[str, Any]) -> SummaryRow:
    if row is None:
        row = model(**values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    return row


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
