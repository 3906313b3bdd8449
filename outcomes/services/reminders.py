"""Patient reminders from the schedule (issue 11): which questionnaires are due, and the
reminder deliveries for them.

``queue_reminders`` runs every minute (outcomes/jobs). The summary rows narrow the search to
patients with something due by their clinic's today; for each, the schedule's rules
(``schedule.outstanding``) say what is outstanding, the cadence (``reminder_rules``) says
whether a reminder is due now given when the earlier ones were sent, and a delivery is
written for each channel the patient chose, the settings carry and the patient has an
address for. The delivery's key (occurrence, reminder number, channel) makes a second tick,
a retry or a second worker write nothing more; ``deliveries.send_pending`` sends them.

Reminders go to patients under the clinic's care (none once discharged: nothing is due for
them, ``schedule.outstanding``) with an active account (the message asks them to sign in),
with reminders on and a channel chosen.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import clock
from ..channels import CHANNELS
from ..models import Clinic, Delivery, Patient, PatientSummary, User
from .deliveries import addresses, carrier, write_delivery
from .records import current_assessments, patient_assessments, patient_courses, plan_for
from .reminder_rules import ReminderPolicy, in_quiet_hours, reminder_due
from .schedule import Occurrence, outstanding, timeline_of


def queue_reminders(session: Session, now: dt.datetime,
                    config: Mapping[str, Any] | None = None) -> int:
    """Write the reminder deliveries due at ``now`` for every clinic's patients (the app's
    settings unless ``config`` is given); how many were written. Never commits."""
    config = current_app.config if config is None else config
    written = 0
    for clinic in session.scalars(select(Clinic).order_by(Clinic.id)):
        policy = ReminderPolicy.of(clinic)
        if policy.max_reminders == 0 or in_quiet_hours(now, clinic, policy):
            continue
        for patient in session.scalars(
                select(Patient).join(PatientSummary).join(User, Patient.user_id == User.id)
                .where(Patient.clinic_id == clinic.id, Patient.reminders_enabled,
                       Patient.discharged_at.is_(None), User.active,
                       PatientSummary.next_due_on <= clock.clinic_today(clinic, now))
                .order_by(Patient.id)):
            written += remind_patient(session, patient, clinic, policy, now, config)
    return written


def remind_patient(session: Session, patient: Patient, clinic: Clinic, policy: ReminderPolicy,
                   now: dt.datetime, config: Mapping[str, Any]) -> int:
    """Write the patient's reminder deliveries due at ``now``: for each questionnaire due
    (one occurrence per questionnaire, the earliest: one PHQ-9 answers two timings), the
    reminder the cadence calls for, once per reachable channel. How many were written."""
    channels = [name for name in CHANNELS if name in patient.reminder_channels
                and carrier(name, config) is not None
                and addresses(session, name, patient=patient)]
    if not channels:
        return 0
    courses = patient_courses(session, patient.id)
    timeline = timeline_of(patient, courses,
                           current_assessments(patient_assessments(session, patient.id)))
    written = 0
    reminded: set[str] = set()
    for occurrence in outstanding(plan_for(session, patient.id), timeline, now):
        if not occurrence.is_due(now) or occurrence.instrument_key in reminded:
            continue
        reminded.add(occurrence.instrument_key)
        number = reminder_due(occurrence, reminded_at(session, patient, occurrence, now), now,
                              clinic, policy)
        if number is None:
            continue
        for channel in channels:
            written += write_delivery(
                session, reminder_key(patient, occurrence, number, channel),
                clinic_id=clinic.id, purpose="reminder", channel=channel,
                patient_id=patient.id, instrument_key=occurrence.instrument_key,
                schedule=occurrence.schedule, occurrence_opens_at=occurrence.opens_at,
                reminder_number=number)
    return written


def reminder_key(patient: Patient, occurrence: Occurrence, number: int, channel: str) -> str:
    """A reminder delivery's key: the occurrence, the reminder's number and the channel."""
    return (f"reminder:{patient.id}:{occurrence.instrument_key}:{occurrence.schedule}:"
            f"{occurrence.opens_at.isoformat()}:{number}:{channel}")


def reminded_at(session: Session, patient: Patient, occurrence: Occurrence,
                now: dt.datetime) -> Sequence[dt.datetime]:
    """When each earlier reminder of ``occurrence`` went out, one time per reminder number:
    its first channel's sending; ``now`` while one is still pending (so no other is written
    beside it); when it was written, for one that failed on every channel (it counts: the
    cadence moves on rather than repeat it)."""
    rows = session.execute(
        select(Delivery.reminder_number, Delivery.status, Delivery.sent_at, Delivery.created_at)
        .where(Delivery.patient_id == patient.id, Delivery.purpose == "reminder",
               Delivery.instrument_key == occurrence.instrument_key,
               Delivery.schedule == occurrence.schedule,
               Delivery.occurrence_opens_at == occurrence.opens_at)).all()
    times: dict[int, dt.datetime] = {}
    for number, status, sent_at, created_at in rows:
        moment = sent_at if status == "sent" else now if status == "pending" else created_at
        times[number] = min(times.get(number, moment), moment)
    return [times[number] for number in sorted(times)]
