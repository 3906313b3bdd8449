"""The demo seeder: nothing it writes is dated after the moment it runs."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from sqlalchemy import Date, func, select

from outcomes import clock, demo
from outcomes.extensions import db
from outcomes.jobs.loop import run_due_jobs
from outcomes.jobs.scheduled import enabled_jobs
from outcomes.models import Assessment, Base, Delivery, UTCDateTime, utcnow

ZONE = zoneinfo.ZoneInfo("America/New_York")
#: Bookings lie ahead by nature; every other time is something that has happened.
BOOKINGS = {("course", "next_infusion_at"), ("patient_summary", "next_infusion_at"),
            ("patient_summary", "next_due_on")}


def latest_times(session) -> dict[tuple[str, str], object]:
    """The latest value of every time and date column of every table, bookings aside."""
    latest = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if (table.name, column.name) in BOOKINGS:
                continue
            if isinstance(column.type, (UTCDateTime, Date)):
                value = session.scalar(select(func.max(column)))
                if value is not None:
                    latest[(table.name, column.name)] = value
    return latest


def assert_nothing_after(session, moment: dt.datetime) -> None:
    day = moment.astimezone(ZONE).date()
    late = {}
    for name, value in latest_times(session).items():
        if isinstance(value, str):  # SQLite returns max() of a date as text
            value = dt.date.fromisoformat(value)
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            if value > moment:
                late[name] = value
        elif value > day:
            late[name] = value
    assert not late, f"dated after {moment}: {late}"


def test_nothing_is_dated_after_the_moment_the_seeder_runs(app, session):
    with app.app_context():
        demo.seed_demo(db.session, patients=12, weeks=6, seed=3)
        db.session.commit()
        finished = utcnow()
    assert_nothing_after(session, finished)


@pytest.mark.parametrize("hour", [7, 12, 21])
def test_a_morning_run_leaves_out_the_rest_of_the_day(app, session, hour):
    """Pinned at 07:00, 12:00 and 21:00 clinic time: the invented history places records
    between 08:00 and 20:00, so a morning run must drop today's later ones."""
    now = dt.datetime(2026, 6, 1, hour, 30, tzinfo=ZONE).astimezone(dt.timezone.utc)
    with app.app_context():
        demo.seed_demo(db.session, patients=30, weeks=4, seed=5, now=now,
                       clinic_name=f"Demo {hour}", email_domain=f"h{hour}.example")
        db.session.commit()
    clinical = {name: value for name, value in latest_times(session).items()
                if name[0] in ("assessment", "infusion_version", "alert", "patient", "course",
                               "patient_summary")}
    assert clinical  # the history exists
    for value in clinical.values():
        if isinstance(value, str):
            value = dt.date.fromisoformat(value)
        if isinstance(value, dt.datetime):
            assert value.astimezone(dt.timezone.utc) <= now
        else:
            assert value <= now.astimezone(ZONE).date()
    # Records on the run's own day exist when the hour allows them (the history reaches today).
    today = session.scalars(select(Assessment.administered_at)).all()
    on_today = [t for t in today if t.astimezone(ZONE).date() == now.astimezone(ZONE).date()]
    assert all(t <= now for t in on_today)
    if hour == 21:
        assert on_today


def test_the_demo_worker_reminds_its_patients_through_the_outbox(app, session, monkeypatch):
    """`make demo` runs the worker beside the server: its patients choose email reminders, so
    the first tick at a daytime hour queues reminders and the outbox records them sent."""
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=ZONE).astimezone(dt.timezone.utc)
    monkeypatch.setattr(clock, "utcnow", lambda: now)
    app.config.update(NOTIFICATION_OUTBOX=True, PUBLIC_BASE_URL="http://127.0.0.1:5000")
    with app.app_context():
        demo.seed_demo(db.session, patients=30, weeks=4, seed=5, now=now)
        db.session.commit()
        run_due_jobs(app, enabled_jobs(app.config), now, {})
    reminders = session.scalars(select(Delivery).where(Delivery.purpose == "reminder")).all()
    assert reminders and {(d.channel, d.status) for d in reminders} == {("email", "sent")}
