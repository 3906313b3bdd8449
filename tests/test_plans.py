"""What the measurement plan makes due, in the clinic's calendar."""
from __future__ import annotations

import datetime as dt

import pytest

from outcomes.models import PlanEntry
from outcomes.services.plans import DEFAULT_PLAN, GRACE_DAYS, due_questionnaires

ZONE = "America/New_York"
ENROLLED = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)  # Monday 10:00 in New York


def default_entries():
    return [PlanEntry(instrument_key=key, every_days=every, starts_after_days=start, active=True)
            for key, every, start in DEFAULT_PLAN]


def due_keys(completed, now):
    return {d.instrument_key: d for d in due_questionnaires(default_entries(), completed,
                                                            ENROLLED, now, ZONE)}


def test_baseline_questionnaires_are_due_at_enrolment():
    assert set(due_keys({}, ENROLLED)) == {"pcl5", "phq9", "gad7"}


def test_weekly_questionnaires_follow_the_last_completion():
    baseline = {"pcl5": ENROLLED, "phq9": ENROLLED, "gad7": ENROLLED}
    assert due_keys(baseline, ENROLLED + dt.timedelta(days=6)) == {}
    week = due_keys(baseline, ENROLLED + dt.timedelta(days=7))
    assert set(week) == {"phq9", "pcl5-weekly"}
    assert not week["phq9"].overdue


def test_due_dates_use_the_clinics_calendar_not_utc():
    # 23:30 in New York on day 6 is already day 7 in UTC: not yet due locally.
    late_evening = dt.datetime(2026, 3, 9, 3, 30, tzinfo=dt.timezone.utc)
    baseline = {"pcl5": ENROLLED, "phq9": ENROLLED, "gad7": ENROLLED}
    assert due_keys(baseline, late_evening) == {}


@pytest.mark.parametrize("days_late, overdue", [(GRACE_DAYS, False), (GRACE_DAYS + 1, True)])
def test_overdue_after_the_grace_window(days_late, overdue):
    baseline = {"pcl5": ENROLLED, "phq9": ENROLLED, "gad7": ENROLLED}
    now = ENROLLED + dt.timedelta(days=7 + days_late)
    assert due_keys(baseline, now)["phq9"].overdue is overdue


def test_inactive_entries_are_never_due():
    entries = default_entries()
    for entry in entries:
        entry.active = False
    assert due_questionnaires(entries, {}, ENROLLED, ENROLLED, ZONE) == []


def test_clinician_changes_a_plan_and_the_change_is_audited(client, world, session):
    from sqlalchemy import select

    from outcomes.models import AuditEvent

    from .conftest import sign_in

    sign_in(client, world.clinician)
    path = f"/clinic/patients/{world.patient.id}/plan"
    form = {"pcl5__active": "y", "pcl5__every": "once", "pcl5__starts": "0",
            "phq9__active": "y", "phq9__every": "14", "phq9__starts": "0",
            "gad7__every": "once", "gad7__starts": "0",
            "pcl5-weekly__active": "y", "pcl5-weekly__every": "7", "pcl5-weekly__starts": "7",
            "after-infusion__every": "once", "after-infusion__starts": "0"}
    assert client.post(path, data=form).status_code == 302
    entries = {e.instrument_key: (e.active, e.every_days) for e in
               session.scalars(select(PlanEntry).where(PlanEntry.patient_id == world.patient.id))}
    assert entries["phq9"] == (True, 14) and entries["gad7"] == (False, None)
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "plan.update"))
    assert event.details["old"]["phq9"]["every_days"] == 7
    assert event.details["new"]["phq9"]["every_days"] == 14
    bad = dict(form, **{"phq9__starts": "400"})
    assert client.post(path, data=bad).status_code == 422
    session.expire_all()
    assert session.scalar(select(PlanEntry.starts_after_days).where(
        PlanEntry.patient_id == world.patient.id, PlanEntry.instrument_key == "phq9")) == 0
