"""Patient reminders from the schedule (services/reminders.py), through the worker's jobs and
a real SMTP server: one reminder when a questionnaire is due, at most one a clinic day and
three an occurrence, none in quiet hours, none once done, none when the patient turned them
off, chose no channel or has no account."""
from __future__ import annotations

import datetime as dt

from outcomes.services.deliveries import WORDING

from .channel_servers import Mailbox
from .helpers import T0
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    deliveries,
    mailbox,
    pinned,
    recipients,
    remindable_patient,
    tick,
)


def test_a_due_phq9_gives_one_reminder_email_and_a_second_tick_that_day_none(
        app, session, factory, world, mailbox: Mailbox, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    tick(app)
    assert recipients(mailbox) == [patient.user.email]
    mail = mailbox.received[0].message
    assert mail["Subject"] == WORDING["reminder"].subject
    assert f"{BASE_URL}/me/" in mail.get_content()
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.instrument_key, reminder.schedule, reminder.reminder_number,
            reminder.channel, reminder.status, reminder.attempts) == (
        "phq9", "baseline", 1, "email", "sent", 1)
    assert reminder.receipt == mail["Message-ID"]

    pinned.advance(hours=3)
    tick(app)
    assert len(mailbox.received) == 1
    assert len(deliveries(session)) == 1


def test_one_a_day_then_none_after_the_clinics_limit(app, session, factory, world, mailbox,
                                                      pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    for day in range(5):
        pinned.set(T0 + dt.timedelta(days=day))
        tick(app)
    assert len(mailbox.received) == 3
    assert [row.reminder_number for row in deliveries(session, patient_id=patient.id)] == [
        1, 2, 3]


def test_done_means_no_more_reminders(app, session, factory, world, mailbox, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    tick(app)
    pinned.advance(hours=1)
    factory.assessment(patient, "phq9", total=5)
    pinned.set(T0 + dt.timedelta(days=1))
    tick(app)
    assert len(mailbox.received) == 1


def test_several_questionnaires_due_together_go_as_one_message(app, session, factory, world,
                                                               mailbox, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician, only=None)
    tick(app)
    assert len(mailbox.received) == 1
    rows = deliveries(session, patient_id=patient.id)
    assert sorted(row.instrument_key for row in rows) == ["gad7", "pcl5", "phq9"]
    assert {row.receipt for row in rows} == {mailbox.received[0].message["Message-ID"]}


def test_no_reminder_when_turned_off_without_a_channel_or_an_account(
        app, session, factory, world, mailbox, pinned):
    remindable_patient(factory, session, world.clinic, world.clinician,
                       reminders_enabled=False)
    remindable_patient(factory, session, world.clinic, world.clinician, channels=())
    remindable_patient(factory, session, world.clinic, world.clinician, channels=("sms",))
    without_account = factory.patient(world.clinic, world.clinician, with_login=False)
    without_account.contact_email = "no-account@example.org"
    without_account.reminder_channels = ["email"]
    session.commit()
    tick(app)
    assert mailbox.received == []
    assert deliveries(session) == []


def test_none_in_quiet_hours_then_one_when_they_end(app, session, factory, world, mailbox,
                                                   pinned):
    remindable_patient(factory, session, world.clinic, world.clinician)
    pinned.set(dt.datetime(2026, 3, 3, 3, 0, tzinfo=dt.timezone.utc))  # 22:00 in New York
    tick(app)
    pinned.set(dt.datetime(2026, 3, 3, 13, 59, tzinfo=dt.timezone.utc))  # 08:59
    tick(app)
    assert mailbox.received == []
    pinned.set(dt.datetime(2026, 3, 3, 14, 0, tzinfo=dt.timezone.utc))  # 09:00
    tick(app)
    assert len(mailbox.received) == 1
