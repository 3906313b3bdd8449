"""Telling clinicians of crisis alerts at once (issue 11): the deliveries for an alert that
opened, and its escalation when it stays unacknowledged.

``queue_alert_notifications`` runs every minute (outcomes/jobs). For each open crisis alert
(``Alert.crisis``: the patient was shown crisis resources) it writes, once each, a delivery
to the patient's assigned clinician (email, and web push where they subscribed) — or, when
the patient has no active clinician, to each of the clinic's active admins — and to the
clinic's on-call address; once the alert has stayed open for the clinic's
``escalation_minutes``, one to each of the clinic's active admins. An acknowledged alert gets
nothing more (a pending escalation of it is withdrawn when its turn to be sent comes). The
keys name the alert, the recipient and the channel, so a second tick or worker writes
nothing twice; ``deliveries.send_pending`` sends them.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from ..models import Alert, Clinic, Delivery, Patient, User
from .deliveries import addresses, carrier, write_delivery

#: The channels that reach a staff account, in order.
STAFF_CHANNELS = ("email", "push")


def queue_alert_notifications(session: Session, now: dt.datetime,
                              config: Mapping[str, Any] | None = None) -> int:
    """Write the notifications and escalations due at ``now`` for open crisis alerts (the
    app's settings unless ``config`` is given); how many deliveries were written. Never
    commits."""
    config = current_app.config if config is None else config
    written = 0
    for alert, patient, clinic in session.execute(_open_crisis_alerts_without("alert")):
        clinician = patient.assigned_clinician
        # With no active clinician of theirs, nobody would hear of it until the escalation,
        # up to a day later: the admins are told at once instead.
        first_told = [clinician] if clinician is not None and clinician.active \
            else _active_admins(session, clinic)
        for user in first_told:
            written += _notify_staff(session, alert, clinic, user, "alert", config)
        if clinic.on_call_email and carrier("email", config) is not None:
            written += write_delivery(session, f"alert:{alert.id}:on-call:email",
                                      clinic_id=clinic.id, purpose="alert", channel="email",
                                      alert_id=alert.id)
    for alert, patient, clinic in session.execute(_open_crisis_alerts_without("escalation")):
        if alert.raised_at + dt.timedelta(minutes=clinic.escalation_minutes) > now:
            continue
        for admin in _active_admins(session, clinic):
            written += _notify_staff(session, alert, clinic, admin, "escalation", config)
    return written


def _active_admins(session: Session, clinic: Clinic) -> list[User]:
    return list(session.scalars(select(User).where(
        User.clinic_id == clinic.id, User.role == "admin", User.active).order_by(User.id)))


def _open_crisis_alerts_without(purpose: str) -> Select[tuple[Alert, Patient, Clinic]]:
    """Open crisis alerts with no delivery yet for ``purpose``, with patient and clinic."""
    return (select(Alert, Patient, Clinic).join(Alert.patient).join(Patient.clinic)
            .where(Alert.crisis, Alert.acknowledged_at.is_(None),
                   ~exists().where(Delivery.alert_id == Alert.id, Delivery.purpose == purpose))
            .order_by(Alert.id))


def _notify_staff(session: Session, alert: Alert, clinic: Clinic, user: User, purpose: str,
                  config: Mapping[str, Any]) -> int:
    written = 0
    for channel in STAFF_CHANNELS:
        if carrier(channel, config) is None or not addresses(session, channel, user=user):
            continue
        written += write_delivery(session, f"{purpose}:{alert.id}:user:{user.id}:{channel}",
                                  clinic_id=clinic.id, purpose=purpose, channel=channel,
                                  user_id=user.id, alert_id=alert.id)
    return written
