"""Writing and sending deliveries (services/deliveries.py) against real servers on 127.0.0.1:
a delivery is written once; SMTP down means a retry with back-off and, once it is back, one
message, nothing lost; a refusal fails it; the last try fails it; two senders at once send
each delivery once; a push subscription the service forgot is removed; the outbox takes what
a channel that is off would have sent; a reminder waits out quiet hours and is withdrawn once
its questionnaire is done."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from outcomes.channels import OUTBOX_RECEIPT_PREFIX
from outcomes.extensions import db
from outcomes.models import AuditEvent, PushSubscription
from outcomes.services import deliveries as service
from outcomes.services.deliveries import MAX_ATTEMPTS, retry_wait, send_pending, write_delivery

from .channel_servers import (  # noqa: F401  (fixtures)
    Answer,
    Mailbox,
    certificates,
    free_port,
    https_server,
    smtp_server,
    trusted,
)
from .notification_world import (  # noqa: F401  (fixtures)
    push,
    subscription,
    crisis_alert,
    deliveries,
    mailbox,
    pinned,
    recipients,
    remindable_patient,
    tick,
)

ON_CALL = "on-call@clinic.example"


def on_call_delivery(app, world, alert, number: int = 1) -> bool:
    """A delivery of ``alert`` to the clinic's on-call address, keyed by ``number``."""
    with app.app_context():
        written = write_delivery(db.session, f"alert:{alert.id}:on-call:email:{number}",
                                 clinic_id=world.clinic.id, purpose="alert", channel="email",
                                 alert_id=alert.id)
        db.session.commit()
    return written


@pytest.fixture
def alert(session, factory, world, pinned):
    world.clinic.on_call_email = ON_CALL
    session.commit()
    return crisis_alert(factory, world.patient)


def send(app) -> int:
    with app.app_context():
        return send_pending(db.session, app.config)


def write_reminders(app) -> None:
    """The worker's tick with nothing listening for SMTP: the reminders due are written, and
    none leaves (the test sends them when it chooses)."""
    app.config["SMTP_PORT"], live_port = free_port(), app.config["SMTP_PORT"]
    tick(app)
    app.config["SMTP_PORT"] = live_port


def test_a_delivery_is_written_once(app, session, world, alert):
    assert on_call_delivery(app, world, alert)
    assert not on_call_delivery(app, world, alert)
    assert len(deliveries(session)) == 1


def test_smtp_down_is_retried_with_back_off_and_sent_once_it_is_back(
        app, session, world, alert, mailbox: Mailbox, pinned):
    live_port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = free_port()  # nothing listens there
    on_call_delivery(app, world, alert)
    send(app)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "pending", 1, "TemporaryFailure")
    assert delivery.next_attempt_at == pinned.now + dt.timedelta(minutes=1)

    assert send(app) == 0  # not before its time
    pinned.advance(minutes=1)
    send(app)
    [delivery] = deliveries(session)
    assert (delivery.attempts, delivery.next_attempt_at) == (
        2, pinned.now + dt.timedelta(minutes=2))

    app.config["SMTP_PORT"] = live_port
    pinned.advance(minutes=2)
    send(app)
    pinned.advance(minutes=10)
    send(app)
    assert recipients(mailbox) == [ON_CALL]
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.sent_at) == ("sent", 3, pinned.now
                                                                       - dt.timedelta(minutes=10))
    audited = session.scalars(select(AuditEvent).where(AuditEvent.action == "delivery.sent")).all()
    assert [(row.object_id, row.details) for row in audited] == [
        (str(delivery.id), {"purpose": "alert", "channel": "email", "attempts": 3,
                            "alert_id": alert.id})]


def test_the_waits_double_from_a_minute_up_to_an_hour_or_the_servers_own():
    assert [retry_wait(n) for n in (1, 2, 3, 7, 8, 9)] == [
        dt.timedelta(minutes=m) for m in (1, 2, 4, 60, 60, 60)]
    assert retry_wait(1, retry_after=600) == dt.timedelta(minutes=10)


def test_the_last_try_fails_it(app, session, world, alert, mailbox, pinned):
    app.config["SMTP_PORT"] = free_port()
    on_call_delivery(app, world, alert)
    for _ in range(MAX_ATTEMPTS):
        send(app)
        pinned.advance(hours=2)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.last_error, delivery.next_attempt_at) == (
        "failed", MAX_ATTEMPTS, "TemporaryFailure", None)
    assert send(app) == 0


def test_a_refused_recipient_fails_at_once_and_is_audited(app, session, world, alert,
                                                          mailbox, pinned):
    mailbox.replies[ON_CALL] = "550 5.1.1 No such user"
    on_call_delivery(app, world, alert)
    send(app)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed", 1, "PermanentFailure")
    [audited] = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "delivery.failed")).all()
    assert audited.details["error"] == "PermanentFailure"


def test_two_senders_at_once_send_each_delivery_once(app, session, world, alert, mailbox,
                                                     database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one transaction at a time: there is no race to lose")
    for number in range(40):
        on_call_delivery(app, world, alert, number)
    counts: list[int] = []
    start = threading.Barrier(2)

    def sender() -> None:
        start.wait()
        counts.append(send(app))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 40
    assert len(mailbox.received) == 40
    rows = deliveries(session)
    assert {row.status for row in rows} == {"sent"} and {row.attempts for row in rows} == {1}
    assert len({row.receipt for row in rows}) == 40


def test_a_subscription_the_push_service_forgot_is_removed(app, session, world, alert,
                                                           mailbox, push, pinned):
    subscription(session, world.clinician, f"{push.url}/gone")
    kept = subscription(session, world.clinician, f"{push.url}/kept").id
    push.answers.append(Answer(410))
    with app.app_context():
        write_delivery(db.session, "push-test", clinic_id=world.clinic.id, purpose="alert",
                       channel="push", user_id=world.clinician.id, alert_id=alert.id)
        db.session.commit()
    send(app)
    assert [request.path for request in push.requests] == ["/gone", "/kept"]
    [delivery] = deliveries(session, channel="push")
    assert (delivery.status, delivery.receipt) == ("sent", "https://push.example/m/1")
    session.expire_all()
    assert session.scalars(select(PushSubscription.id)).all() == [kept]


def test_the_outbox_takes_what_a_channel_that_is_off_would_send(app, session, factory, world,
                                                               mailbox, pinned):
    app.config["NOTIFICATION_OUTBOX"] = True
    patient = remindable_patient(factory, session, world.clinic, world.clinician,
                                 channels=("email", "sms"), contact_phone="+12025550143")
    tick(app)
    rows = deliveries(session, patient_id=patient.id)
    assert [(row.channel, row.status) for row in rows] == [("email", "sent"), ("sms", "sent")]
    assert not rows[0].receipt.startswith(OUTBOX_RECEIPT_PREFIX)  # email is on: it left
    assert rows[1].receipt.startswith(OUTBOX_RECEIPT_PREFIX)
    assert recipients(mailbox) == [patient.user.email]


def test_a_reminder_due_in_quiet_hours_waits_for_their_end(app, session, factory, world,
                                                           mailbox, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    pinned.set(dt.datetime(2026, 3, 3, 1, 30, tzinfo=dt.timezone.utc))  # 20:30 in New York
    write_reminders(app)
    pinned.set(dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.timezone.utc))  # 21:00: quiet
    send(app)
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.status, reminder.attempts) == ("pending", 1)
    assert reminder.next_attempt_at == dt.datetime(2026, 3, 3, 14, 0, tzinfo=dt.timezone.utc)
    pinned.set(reminder.next_attempt_at)
    send(app)
    assert recipients(mailbox) == [patient.user.email]


def questionnaire_done(session, factory, patient, pinned) -> None:
    factory.assessment(patient, "phq9", total=3)


def discharged(session, factory, patient, pinned) -> None:
    patient.discharged_at = pinned.now
    session.commit()


@pytest.mark.parametrize(("meanwhile", "reason"), [
    (questionnaire_done, service.QUESTIONNAIRE_DONE),
    (discharged, service.DISCHARGED),
], ids=["questionnaire done", "patient discharged"])
def test_a_reminder_no_longer_wanted_when_it_would_leave_is_withdrawn(
        app, session, factory, world, mailbox, pinned, meanwhile, reason):
    """A reminder written, then its questionnaire done or its patient discharged before it
    left: it is withdrawn (audited), not sent."""
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    write_reminders(app)
    meanwhile(session, factory, patient, pinned)
    pinned.advance(minutes=5)
    send(app)
    assert mailbox.received == []
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.status, reminder.last_error) == ("failed", reason)
    assert session.scalars(select(AuditEvent.action).where(
        AuditEvent.object_type == "delivery")).all() == ["delivery.withdrawn"]
