"""Safety alerts: listing them and acknowledging them."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Alert, Patient, utcnow
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
    summaries.refresh(session, patient.id)
    return alert
