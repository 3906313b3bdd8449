"""Safety alerts: listing them and acknowledging them."""
from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..models import Alert, AlertAssessment, Patient, utcnow
from . import audit, summaries
from .audit import Actor


class AlertError(ValueError):
    """An alert action that cannot be carried out, with the reason."""


def patient_alerts(session: Session, patient_id: int) -> list[Alert]:
    """All the patient's alerts: open ones first, then newest first."""
    alerts = session.scalars(
        select(Alert).where(Alert.patient_id == patient_id).order_by(Alert.raised_at.desc())
    ).all()
    return sorted(alerts, key=lambda alert: not alert.is_open)


def assessment_alerts(session: Session, assessment_id: int) -> list[Alert]:
    """The alerts a record raised or repeated (it was linked to an alert already open)."""
    linked = select(AlertAssessment.alert_id).where(AlertAssessment.assessment_id == assessment_id)
    return list(session.scalars(
        select(Alert).where(or_(Alert.assessment_id == assessment_id, Alert.id.in_(linked)))
        .order_by(Alert.raised_at.desc())))


def acknowledge_alert(session: Session, actor: Actor, alert: Alert, note: str) -> Alert:
    """Record that a clinician has dealt with an alert, with what they did."""
    if actor.user is None or not actor.user.is_staff:
        raise AlertError("Only the clinic's staff can acknowledge an alert.")
    if not alert.is_open:
        raise AlertError("This alert was already acknowledged.")
    note = note.strip()
    if not note:
        raise AlertError("Say what was done about the alert.")
    # Conditional, so two clinicians acknowledging at once cannot overwrite each other.
    acknowledged = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.acknowledged_at.is_(None))
        .values(acknowledged_at=utcnow(), acknowledged_by_id=actor.user.id,
                acknowledgement_note=note)
        .execution_options(synchronize_session=False)
    )
    if acknowledged.rowcount != 1:
        raise AlertError("This alert was already acknowledged.")
    session.refresh(alert)
    patient = session.get(Patient, alert.patient_id)
    audit.record(session, actor, "alert.acknowledge", patient=patient, object_type="alert",
                 object_id=alert.id, details={"kind": alert.kind})
    summaries.touch(session, patient.id)
    return alert
