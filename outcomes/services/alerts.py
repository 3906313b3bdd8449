"""Safety alerts: listing them and acknowledging them."""
from __future__ import annotations

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

import instruments

from ..models import Alert, AlertAssessment, Patient, utcnow
from . import audit, summaries
from .assessments import hold_submissions
from .audit import Actor
from .triage import LINKED_ANSWERS

#: Refused acknowledgement: a record was linked to the alert after the page was drawn.
NEW_ANSWERS = "New answers arrived for this alert — review them, then acknowledge."


class AlertError(ValueError):
    """An alert action that cannot be carried out, with the reason."""


def patient_alerts(session: Session, patient_id: int) -> list[Alert]:
    """All the patient's alerts: open ones first, then newest first."""
    alerts = session.scalars(
        select(Alert).where(Alert.patient_id == patient_id).options(*LINKED_ANSWERS)
        .order_by(Alert.raised_at.desc())
    ).all()
    return sorted(alerts, key=lambda alert: not alert.is_open)


def assessment_alerts(session: Session, assessment_id: int) -> list[Alert]:
    """The alerts a record raised or repeated (it was linked to an alert already open)."""
    linked = select(AlertAssessment.alert_id).where(AlertAssessment.assessment_id == assessment_id)
    return list(session.scalars(
        select(Alert).where(or_(Alert.assessment_id == assessment_id, Alert.id.in_(linked)))
        .options(*LINKED_ANSWERS).order_by(Alert.raised_at.desc())))


def acknowledge_alert(session: Session, actor: Actor, alert: Alert, note: str,
                      seen: int = 0) -> Alert:
    """Record that a clinician has dealt with an alert, with what they did.

    ``seen`` is how many linked records (later forms repeating the disclosure) the clinician
    was shown; if more are linked by now, nothing changes and :data:`NEW_ANSWERS` is raised,
    so a note about earlier answers never closes a newer one. The check runs under the lock
    submissions take, so a record cannot be linked between the check and the write.
    """
    if actor.user is None or not actor.user.is_staff:
        raise AlertError("Only the clinic's staff can acknowledge an alert.")
    if not alert.is_open:
        raise AlertError("This alert was already acknowledged.")
    note = note.strip()
    if not note:
        raise AlertError("Say what was done about the alert.")
    try:
        measure = instruments.get(alert.instrument_key).measure
    except instruments.UnknownInstrument:
        measure = alert.instrument_key
    hold_submissions(session, alert.patient_id, measure)
    linked = session.scalar(select(func.count()).select_from(AlertAssessment)
                            .where(AlertAssessment.alert_id == alert.id))
    if linked != seen:
        raise AlertError(NEW_ANSWERS)
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
