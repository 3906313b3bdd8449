"""What the delivery, reminder and alert-notification tests share (a plain helper module with
fixtures, as channel_servers.py is): the app set to send email through a real SMTP server
on 127.0.0.1, a pinned clock, the worker's tick, and the patients and alerts they remind of.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from outcomes import clock
from outcomes.channels.contacts import base64url_encode
from outcomes.jobs.loop import run_due_jobs
from outcomes.jobs.scheduled import enabled_jobs
from outcomes.models import (Alert, Clinic, Delivery, Patient, PlanEntry, PushSubscription,
                             User)
from outcomes.services import summaries

from .channel_servers import Answer, Mailbox, https_server, smtp_server
from .helpers import T0, Factory

#: The address messages link to.
BASE_URL = "https://outcomes.example.org"
SENDER = "outcomes@clinic.example"


@contextmanager
def email_to_mailbox(app: Flask, base_url: str) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 (aiosmtpd) that the app's email goes to, its links to
    ``base_url``, with the other channels and the outbox off."""
    box = Mailbox()
    with smtp_server(box) as port:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none",
                          SMTP_FROM=SENDER, PUBLIC_BASE_URL=base_url,
                          NOTIFICATION_OUTBOX=False, NOTIFICATION_TIMEOUT=5)
        yield box


@pytest.fixture
def mailbox(app: Flask) -> Iterator[Mailbox]:
    """``email_to_mailbox``, with links to ``BASE_URL`` (the browser tests' own fixture
    links to their server)."""
    with email_to_mailbox(app, BASE_URL) as box:
        yield box


class PinnedClock:
    """The app's one clock, pinned (``clock.utcnow``) and moved by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: dt.datetime) -> None:
        self.now = start
        monkeypatch.setattr(clock, "utcnow", lambda: self.now)

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now

    def set(self, moment: dt.datetime) -> dt.datetime:
        self.now = moment
        return moment


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    """The clock at T0: Monday 2 March 2026, 10:00 at the test clinics (New York)."""
    return PinnedClock(monkeypatch, T0)


def tick(app: Flask) -> None:
    """One tick of the worker at the pinned time: each enabled job runs once for its period,
    in the registry's order, as the SQLite loop runs them."""
    run_due_jobs(app, enabled_jobs(app.config), clock.utcnow(), {})


def recipients(mailbox: Mailbox) -> list[str]:
    """Who each message received went to, in order."""
    return [address for mail in mailbox.received for address in mail.recipients]


def deliveries(session: Session, **where: object) -> list[Delivery]:
    """The delivery rows (matching ``where``), oldest first, read afresh."""
    session.expire_all()
    return list(session.scalars(select(Delivery).filter_by(**where).order_by(Delivery.id)))


def remindable_patient(factory: Factory, session: Session, clinic: Clinic, clinician: User,
                       channels: tuple[str, ...] = ("email",), only: str | None = "phq9",
                       **attributes: object) -> Patient:
    """A patient with a login, enrolled now (their baseline questionnaires due at once), who
    chose ``channels``; with ``only``, their plan asks for that questionnaire alone."""
    patient = factory.patient(clinic, clinician)
    patient.reminder_channels = list(channels)
    for name, value in attributes.items():
        setattr(patient, name, value)
    if only is not None:
        for entry in session.scalars(select(PlanEntry).where(PlanEntry.patient_id == patient.id)):
            entry.active = entry.instrument_key == only and entry.schedule == "baseline"
    with factory.app.app_context():
        summaries.refresh(session, patient.id)
        session.commit()
    return patient


def crisis_alert(factory: Factory, patient: Patient) -> Alert:
    """The crisis alert a PHQ-9 answered with item 9 above 0 opens, now."""
    assessment = factory.assessment(patient, "phq9", total=14, item9=2)
    alert = factory.session.scalars(select(Alert).where(Alert.assessment_id == assessment.id)).one()
    assert alert.crisis
    return alert


def subscription(session, user, endpoint: str) -> PushSubscription:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    row = PushSubscription(user_id=user.id, endpoint=endpoint,
                           p256dh=base64url_encode(key.public_bytes(
                               Encoding.X962, PublicFormat.UncompressedPoint)),
                           auth=base64url_encode(os.urandom(16)))
    session.add(row)
    session.commit()
    return row


@pytest.fixture
def push(app, trusted):
    """Web push switched on, through a local HTTPS push service."""
    vapid = ec.generate_private_key(ec.SECP256R1())
    app.config.update(VAPID_PRIVATE_KEY=base64url_encode(
        vapid.private_numbers().private_value.to_bytes(32, "big")),
        VAPID_SUBJECT="mailto:it@clinic.example")
    with https_server(trusted, Answer(201, headers={"Location": "https://push.example/m/1"})
                      ) as server:
        yield server
