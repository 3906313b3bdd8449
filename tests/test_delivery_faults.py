"""Faults while sending (issue 11 item 7; docs/notifications.md, "Faults"): a ``flask worker``
killed while a message is out, then restarted, sends each reminder once — except a message
the server had accepted before the worker could record it, which goes twice (SMTP offers no
way to ask whether a message arrived); SMTP hanging, then down, loses nothing and leaves the
web app serving; a push service's 5xx is retried after its Retry-After; a server answering
QUIT with an error does not get the message again; a push subscription the service forgot
is removed.

The worker processes run ``fast_worker_app``: production's app and jobs, with the
``deliveries`` job every ``SEND_EVERY`` seconds instead of every minute, so that the test waits
seconds, not minutes, for the periods after a restart.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import signal
import threading

import pytest
from flask import Flask
from sqlalchemy import Interval, create_engine, literal, select, update

from outcomes import clock, create_app
from outcomes.extensions import db
from outcomes.jobs.scheduled import JOBS
from outcomes.models import Alert, Delivery, PushSubscription
from outcomes.services.deliveries import CLAIM
from outcomes.services.reminders import queue_reminders

from .channel_servers import (  # noqa: F401  (fixtures)
    HOST,
    Answer,
    Mailbox,
    StallingMailbox,
    certificates,
    free_port,
    silent_server,
    smtp_server,
    trusted,
)
from .conftest import sign_in
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    SENDER,
    deliveries,
    mailbox,
    pinned,
    recipients,
    remindable_patient,
    tick,
)
from .helpers import answers_form
from .notification_world import push, subscription  # noqa: F401  (fixture)
from .worker_processes import wait_for, workers  # noqa: F401  (fixture)

#: How often the test workers' ``deliveries`` job runs, in seconds.
SEND_EVERY = 2
ON_CALL = "on-call@clinic.example"


def fast_worker_app() -> Flask:
    """The app of ``flask --app tests.test_delivery_faults:fast_worker_app worker``: settings
    from the environment, as production's ``wsgi``, and ``deliveries`` every ``SEND_EVERY``
    seconds."""
    JOBS["deliveries"] = dataclasses.replace(JOBS["deliveries"],
                                             schedule=f"* * * * * */{SEND_EVERY}")
    return create_app()


def lapse_claims(database_url: str) -> list[int]:
    """Let a dead worker's claims lapse now rather than ``CLAIM`` (five minutes) later: each
    claimed delivery (pending, tried, held into the future) moves back by ``CLAIM``. Their ids."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        lapsed = connection.scalars(
            update(Delivery)
            .where(Delivery.status == "pending", Delivery.attempts > 0,
                   Delivery.next_attempt_at > clock.utcnow())
            .values(next_attempt_at=Delivery.next_attempt_at - literal(CLAIM, Interval()))
            .returning(Delivery.id)).all()
    engine.dispose()
    return sorted(lapsed)


def test_a_worker_killed_mid_send_and_restarted_sends_each_reminder_once(
        app, session, factory, database_url, workers):
    """50 patients due a first reminder, worker processes and a real SMTP server. Worker A is
    killed while the server holds the 10th message unanswered: it never was the server's,
    and worker B sends it once. B is killed after the server accepted the 21st but before B
    recorded it: worker C sends that one again, the one duplicate SMTP cannot rule out.
    Every other patient gets exactly one reminder, and every delivery ends sent."""
    if not database_url.startswith("postgresql"):
        pytest.skip("worker processes share a database on PostgreSQL only")
    clinic = factory.clinic("Harbour Clinic")
    clinician = factory.staff(clinic)
    clinic.quiet_from = clinic.quiet_until  # no quiet hours, whatever the hour of the run
    clinic.reminder_limit = 1  # the first reminder only, however long the test takes
    session.commit()
    email_of = {patient.id: patient.user.email for patient in (
        remindable_patient(factory, session, clinic, clinician) for _ in range(50))}
    box = StallingMailbox()
    with smtp_server(box) as port:
        settings = {"PUBLIC_BASE_URL": BASE_URL, "SMTP_HOST": HOST, "SMTP_PORT": str(port),
                    "SMTP_SECURITY": "none", "SMTP_FROM": SENDER, "NOTIFICATION_OUTBOX": "no",
                    # A message held by the test is not timed out meanwhile.
                    "NOTIFICATION_TIMEOUT": "60",
                    # A killed worker's run is put back in the queue 4 s after it died.
                    "JOBS_STALLED_SECONDS": "4"}
        with app.app_context():
            queue_reminders(db.session, clock.utcnow(),
                            {**app.config, "SMTP_HOST": HOST, "NOTIFICATION_OUTBOX": False})
            db.session.commit()
        # The order the worker sends them in (services/deliveries.py: oldest due first).
        order = [email_of[row.patient_id] for row in sorted(
            deliveries(session), key=lambda row: (row.next_attempt_at, row.id))]
        assert sorted(order) == sorted(email_of.values())

        def state() -> dict[str, tuple[str, int]]:
            return {email_of[row.patient_id]: (row.status, row.attempts)
                    for row in deliveries(session)}

        box.hold(order[9], accepted=False)
        first = workers("tests.test_delivery_faults:fast_worker_app", **settings)
        wait_for(box.holding.is_set, "message held before acceptance", [first])
        assert recipients(box) == order[:9]
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        box.release()
        wait_for(lambda: box.dropped, "message dropped by the server", [])
        assert box.dropped == [order[9]]
        assert [state()[email] for email in order[:11]] == [("sent", 1)] * 9 + [
            ("pending", 1), ("pending", 0)]  # the 10th claimed, never recorded
        assert len(lapse_claims(database_url)) == 1

        box.hold(order[20], accepted=True)
        second = workers("tests.test_delivery_faults:fast_worker_app", **settings)
        wait_for(box.holding.is_set, "message held after acceptance", [second])
        assert recipients(box) == order[:9] + order[10:21]
        assert second.stop(signal.SIGKILL) == -signal.SIGKILL
        box.release()
        assert state()[order[20]] == ("pending", 1)  # accepted, never recorded
        assert len(lapse_claims(database_url)) == 1

        third = workers("tests.test_delivery_faults:fast_worker_app", **settings)
        wait_for(lambda: all(status == "sent" for status, _ in state().values()),
                 "every reminder sent", [third])
        assert third.stop() == 0
    assert collections.Counter(recipients(box)) == {
        **{email: 1 for email in order}, order[20]: 2}
    tries = state()
    assert tries.pop(order[9]) == tries.pop(order[20]) == ("sent", 2)
    assert set(tries.values()) == {("sent", 1)}
    rows = deliveries(session)
    assert len({row.receipt for row in rows}) == 50


def test_smtp_hanging_then_down_leaves_the_web_app_serving_and_loses_nothing(
        app, session, factory, world, client, mailbox: Mailbox, pinned):
    """While the sender waits on a hung SMTP server, a patient opens their home and submits a
    PHQ-9 (a crisis one, which notifies the clinic): both served as usual, since nothing is
    sent in a request and no lock is held while a message is out. The server then refuses
    connections for a while: every delivery waits with back-off, and once it is back each
    goes, once."""
    app.config["NOTIFICATION_TIMEOUT"] = 3  # each reminder waits 3 s on the hung server
    world.clinic.on_call_email = ON_CALL
    session.commit()
    patients = [remindable_patient(factory, session, world.clinic, world.clinician)
                for _ in range(3)]
    live_port = app.config["SMTP_PORT"]
    with silent_server() as hung_port:
        app.config["SMTP_PORT"] = hung_port
        sender = threading.Thread(target=tick, args=(app,))
        sender.start()
        wait_for(lambda: deliveries(session, attempts=1), "a claimed reminder", [])
        sign_in(client, world.patient_user)
        assert client.get("/me/").status_code == 200
        response = client.post("/me/questionnaires/phq9", data=answers_form([1] * 8 + [2]))
        assert response.status_code == 302
        assert client.get(response.location).status_code == 200
        assert sender.is_alive()  # still waiting on the hung server: the requests did not
        sender.join()
    assert session.scalars(select(Alert.crisis)).all() == [True]
    assert [(row.purpose, row.status, row.attempts, row.last_error)
            for row in deliveries(session)] == [
        ("reminder", "pending", 1, "TemporaryFailure")] * 3

    app.config["SMTP_PORT"] = free_port()  # nothing listens: down
    pinned.advance(minutes=1)
    tick(app)
    assert [(row.purpose, row.attempts, row.next_attempt_at) for row in deliveries(session)] == [
        ("reminder", 2, pinned.now + dt.timedelta(minutes=2))] * 3 + [
        ("alert", 1, pinned.now + dt.timedelta(minutes=1))] * 2

    app.config["SMTP_PORT"] = live_port
    pinned.advance(minutes=2)
    tick(app)
    pinned.advance(minutes=10)
    tick(app)
    assert sorted(recipients(mailbox)) == sorted(
        [patient.user.email for patient in patients] + [world.clinician.email, ON_CALL])
    assert {row.status for row in deliveries(session)} == {"sent"}


def test_a_push_service_answering_5xx_is_tried_again_after_its_retry_after(
        app, session, factory, world, mailbox, push, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician,
                                 channels=("push",))
    subscription(session, patient.user, f"{push.url}/patient")
    push.answers.append(Answer(503, headers={"Retry-After": "300"}))
    tick(app)
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.status, reminder.attempts, reminder.last_error) == (
        "pending", 1, "TemporaryFailure")
    # The service's five minutes, not the one minute of a first retry.
    assert reminder.next_attempt_at == pinned.now + dt.timedelta(minutes=5)
    pinned.advance(minutes=4)
    tick(app)
    assert len(push.requests) == 1
    pinned.advance(minutes=1)
    tick(app)
    assert len(push.requests) == 2
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.status, reminder.attempts) == ("sent", 2)


def test_a_patients_only_push_subscription_answering_410_is_removed_and_not_tried_again(
        app, session, factory, world, mailbox, push, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician,
                                 channels=("push",))
    subscription(session, patient.user, f"{push.url}/gone")
    push.answers.append(Answer(410))
    tick(app)
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.status, reminder.attempts, reminder.last_error) == (
        "failed", 1, "SubscriptionGone")
    assert session.scalars(select(PushSubscription)).all() == []
    pinned.advance(days=1)
    tick(app)
    assert len(push.requests) == 1


class AnswersQuitWithAnError(Mailbox):
    """Takes each message, then answers QUIT with an error (a server shutting down)."""

    async def handle_QUIT(self, server, session, envelope):
        return "421 4.3.2 Service shutting down"


def test_a_message_the_server_accepted_is_sent_once_whatever_it_answers_to_quit(
        app, session, factory, world, mailbox, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    box = AnswersQuitWithAnError()
    with smtp_server(box) as port:
        app.config["SMTP_PORT"] = port
        tick(app)
        pinned.advance(minutes=10)
        tick(app)
    assert recipients(box) == [patient.user.email]
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.status, reminder.attempts) == ("sent", 1)
