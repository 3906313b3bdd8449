"""Crisis alerts reach clinicians at once (services/alert_notifications.py), through the
worker's jobs and a real SMTP server: the patient's clinician and the clinic's on-call
address within one tick, once each (the clinic's active admins instead of a clinician who is
deactivated, or of none); the clinic's active admins once the alert has stayed
unacknowledged for the clinic's escalation minutes, and not before; an acknowledged alert
escalates no more."""
from __future__ import annotations

import datetime as dt

import pytest

from outcomes.models import Clinic
from outcomes.services import alerts
from outcomes.services.audit import Actor
from outcomes.services.deliveries import WORDING

from .channel_servers import Mailbox
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    crisis_alert,
    deliveries,
    mailbox,
    pinned,
    recipients,
    tick,
)

ON_CALL = "on-call@clinic.example"
_MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def clinic(session, world) -> Clinic:
    world.clinic.on_call_email = ON_CALL
    session.commit()
    return world.clinic


def test_an_item9_alert_reaches_the_clinician_and_the_on_call_address_within_one_tick(
        app, session, factory, world, clinic, mailbox: Mailbox, pinned):
    admin = factory.staff(clinic, "admin")  # told only at the escalation
    alert = crisis_alert(factory, world.patient)
    tick(app)
    assert sorted(recipients(mailbox)) == sorted([world.clinician.email, ON_CALL])
    assert admin.email not in recipients(mailbox)
    for received in mailbox.received:
        assert received.message["Subject"] == WORDING["alert"].subject
        assert f"{BASE_URL}/clinic/alerts" in received.message.get_content()
    rows = deliveries(session, alert_id=alert.id)
    assert [(row.purpose, row.user_id, row.status) for row in rows] == [
        ("alert", world.clinician.id, "sent"), ("alert", None, "sent")]

    pinned.advance(minutes=1)
    tick(app)
    assert len(mailbox.received) == 2


@pytest.mark.parametrize("clinician", ["deactivated", "unassigned"])
def test_without_an_active_clinician_the_admins_are_told_at_once(
        app, session, factory, world, clinic, mailbox, pinned, clinician):
    """Nobody would hear of the alert until the escalation (up to a day away): its first
    notification goes to the clinic's active admins instead, once."""
    admins = [factory.staff(clinic, "admin"), factory.staff(clinic, "admin")]
    retired_admin = factory.staff(clinic, "admin")
    retired_admin.active = False
    if clinician == "deactivated":
        world.clinician.active = False
    else:
        world.patient.assigned_clinician_id = None
    session.commit()
    alert = crisis_alert(factory, world.patient)
    tick(app)
    assert sorted(recipients(mailbox)) == sorted([admin.email for admin in admins] + [ON_CALL])
    rows = deliveries(session, alert_id=alert.id)
    assert [(row.purpose, row.user_id, row.status) for row in rows] == [
        ("alert", admins[0].id, "sent"), ("alert", admins[1].id, "sent"), ("alert", None, "sent")]
    for received in mailbox.received:
        assert received.message["Subject"] == WORDING["alert"].subject
    pinned.advance(minutes=1)
    tick(app)
    assert len(mailbox.received) == 3


def test_escalation_fires_at_the_clinics_minutes_and_not_before(
        app, session, factory, world, clinic, mailbox, pinned):
    clinic.escalation_minutes = 20
    session.commit()
    admin = factory.staff(clinic, "admin")
    retired_admin = factory.staff(clinic, "admin")
    retired_admin.active = False
    session.commit()
    alert = crisis_alert(factory, world.patient)
    raised = pinned.now
    for minutes in range(20):  # a tick every minute up to the twentieth
        pinned.set(raised + minutes * _MINUTE)
        tick(app)
    assert admin.email not in recipients(mailbox)
    pinned.set(raised + 20 * _MINUTE)
    tick(app)
    assert recipients(mailbox).count(admin.email) == 1
    [escalation] = deliveries(session, purpose="escalation")
    assert (escalation.user_id, escalation.alert_id, escalation.status) == (
        admin.id, alert.id, "sent")
    pinned.advance(minutes=5)
    tick(app)
    assert recipients(mailbox).count(admin.email) == 1
    assert retired_admin.email not in recipients(mailbox)


def test_an_acknowledged_alert_escalates_no_more(app, session, factory, world, clinic,
                                                 mailbox, pinned):
    admin = factory.staff(clinic, "admin")
    alert = crisis_alert(factory, world.patient)
    tick(app)
    pinned.advance(minutes=10)
    with app.app_context():
        alerts.acknowledge_alert(session, Actor(world.clinician), alert, "Called; safe")
        session.commit()
    pinned.advance(hours=2)
    tick(app)
    assert admin.email not in recipients(mailbox)
    assert deliveries(session, purpose="escalation") == []


def test_an_alert_that_is_not_a_crisis_notifies_no_one(app, session, factory, world, clinic,
                                                       mailbox, pinned):
    factory.assessment(world.patient, "phq9", total=20)  # severe, but item 9 at 0
    pinned.advance(hours=2)
    tick(app)
    assert mailbox.received == []
