"""Patient reminders from the schedule (services/reminders.py), through the worker's jobs and
a real SMTP server: one reminder when a questionnaire is due, at most one a clinic day and
three an occurrence, none in quiet hours, none once done, none when the patient turned them
off, chose no channel or has no account."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outcomes.services.deliveries import WORDING

from .channel_servers import Mailbox, smtp_server
from .conftest import base_config
from .helpers import T0, empty_the_queue
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

ROOT = Path(__file__).resolve().parents[1]


def test_a_due_phq9_gives_one_reminder_email_and_a_second_tick_that_day_none(
        app, session, factory, world, mailbox: Mailbox, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    tick(app)
    assert recipients(mailbox) == [patient.user.email]
    mail = mailbox.received[0].message
    assert mail["Subject"] == WORDING["reminder"].subject
    assert f"{BASE_URL}/r#" in mail.get_content()  # its questionnaire link
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


def test_two_worker_processes_send_exactly_one_first_reminder_per_due_occurrence(
        session, factory, world, database_url, tmp_path):
    """On PostgreSQL, two ``flask worker`` processes (procrastinate), real time, 200 patients
    with a PHQ-9 due: 200 first reminders reach the SMTP server, no more."""
    if not database_url.startswith("postgresql"):
        pytest.skip("two worker processes share a database on PostgreSQL only")
    world.clinic.quiet_from = world.clinic.quiet_until  # none, whatever the hour of the run
    session.commit()
    patients = [remindable_patient(factory, session, world.clinic, world.clinician)
                for _ in range(200)]
    emails = sorted(patient.user.email for patient in patients)
    empty_the_queue(database_url)
    box = Mailbox()
    with smtp_server(box) as port:
        environment = {**os.environ, "OUTCOMES_ENV": "development",
                       "DATABASE_URL": database_url, "PUBLIC_BASE_URL": BASE_URL,
                       "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
                       "SMTP_SECURITY": "none", "SMTP_FROM": SENDER,
                       "NOTIFICATION_OUTBOX": "no", "JOBS_STALLED_SECONDS": "10",
                       **{key: str(value) for key, value in base_config(database_url).items()
                          if key in {"SECRET_KEY", "AUDIT_KEYS"}}}
        workers = [subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT,
            env=environment, stdout=(tmp_path / f"worker-{n}.log").open("wb"),
            stderr=subprocess.STDOUT) for n in (1, 2)]
        try:
            # The first minute's runs start at once; the sends may wait for the next minute.
            deadline = time.monotonic() + 150
            while sent_reminders(session) < 200 and time.monotonic() < deadline:
                assert all(worker.poll() is None for worker in workers), logs(tmp_path)
                time.sleep(1)
            time.sleep(5)  # anything sent twice would have arrived by now
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=60)
    assert sent_reminders(session) == 200, logs(tmp_path)
    assert sorted(recipients(box)) == emails
    rows = deliveries(session, purpose="reminder")
    assert len(rows) == 200 and {row.reminder_number for row in rows} == {1}


def sent_reminders(session) -> int:
    session.expire_all()
    return len(deliveries(session, purpose="reminder", status="sent"))


def logs(folder: Path) -> str:
    return "\n".join(path.read_text() for path in sorted(folder.glob("worker-*.log")))
