"""What the measurement plan makes due, anchored to the infusion course, in the clinic's
calendar."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from outcomes.models import AuditEvent, PlanEntry
from outcomes.services.plans import default_plan_entries
from outcomes.services.schedule import GRACE_DAYS, Timeline, due_questionnaires, next_due_on

from .conftest import sign_in

ZONE = "America/New_York"
UTC = dt.timezone.utc
ENROLLED = dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
BASELINE = {"pcl5": [ENROLLED], "phq9": [ENROLLED], "gad7": [ENROLLED]}


def days(n: float, hours: float = 0) -> dt.timedelta:
    return dt.timedelta(days=n, hours=hours)


def due(now, **timeline) -> dict[str, object]:
    timeline.setdefault("completed", {})
    line = Timeline(enrolled_at=ENROLLED, timezone=ZONE, **timeline)
    return {d.instrument_key: d for d in due_questionnaires(default_plan_entries(1), line, now)}


def test_without_a_course_baseline_is_due_then_weekly_from_enrolment():
    assert set(due(ENROLLED)) == {"pcl5", "phq9", "gad7"}
    assert due(ENROLLED + days(6), completed=BASELINE) == {}
    assert set(due(ENROLLED + days(7), completed=BASELINE)) == {"phq9", "pcl5-weekly"}


def test_baseline_counts_only_before_the_first_infusion_and_is_not_asked_after_it():
    first = ENROLLED + days(2)
    assert set(due(ENROLLED + days(1), next_infusion_at=first)) >= {"pcl5", "gad7"}
    late = {"pcl5": [first + days(1)]}
    after = due(first + days(1, 2), infusions=[first], completed=late)
    assert "gad7" not in after and "pcl5" not in after  # a baseline can no longer be had


def test_phq9_is_due_in_the_24_hours_before_an_infusion():
    infusion = ENROLLED + days(9)
    done = dict(BASELINE, **{"pcl5-weekly": [ENROLLED + days(7)], "phq9": [ENROLLED + days(7)]})
    assert "phq9" not in due(infusion - days(1, 1), next_infusion_at=infusion, completed=done)
    window = due(infusion - days(0, 20), next_infusion_at=infusion, completed=done)
    assert window["phq9"].reason == "Before your next infusion" and not window["phq9"].overdue
    taken = dict(done, phq9=done["phq9"] + [infusion - days(0, 3)])
    assert "phq9" not in due(infusion - days(0, 2), next_infusion_at=infusion, completed=taken)
    assert "phq9" not in due(infusion + days(0, 1), next_infusion_at=infusion, completed=done)


def test_after_infusion_check_is_due_the_next_day_and_expires_after_a_week():
    infusion = ENROLLED + days(2)
    same_evening = infusion + days(0, 8)
    assert "after-infusion" not in due(same_evening, infusions=[infusion], completed=BASELINE)
    next_day = due(infusion + days(1), infusions=[infusion], completed=BASELINE)
    assert next_day["after-infusion"].reason == "The day after your infusion"
    done = dict(BASELINE, **{"after-infusion": [infusion + days(1)]})
    assert "after-infusion" not in due(infusion + days(1, 2), infusions=[infusion], completed=done)
    assert "after-infusion" not in due(infusion + days(9), infusions=[infusion],
                                       completed=BASELINE)


def test_weekly_questionnaires_follow_the_first_infusion():
    first = ENROLLED + days(3)
    done = {"pcl5-weekly": [], "phq9": []}
    assert "pcl5-weekly" not in due(first + days(6), infusions=[first], completed=done)
    assert "pcl5-weekly" in due(first + days(7), infusions=[first], completed=done)
    early = {"pcl5-weekly": [first + days(5, 2)]}  # two days early counts
    assert "pcl5-weekly" not in due(first + days(7, 1), infusions=[first], completed=early)


def test_after_the_course_weekly_for_12_weeks_then_every_4_weeks():
    first = ENROLLED + days(3)
    ended = (first + days(14)).astimezone(dt.timezone(dt.timedelta(hours=-5))).date()
    last_dense = first + days(7 * 16)  # 12 weeks after the end of a two-week course
    weekly = [first + days(7 * k) for k in range(1, 17)]
    done = {"pcl5-weekly": weekly, "phq9": weekly}
    line = {"infusions": [first], "course_ended_on": ended, "completed": done}
    assert "pcl5-weekly" not in due(last_dense + days(7), **line)  # no longer weekly
    assert "pcl5-weekly" in due(last_dense + days(28), **line)


@pytest.mark.parametrize("late, overdue", [(GRACE_DAYS, False), (GRACE_DAYS + 1, True)])
def test_overdue_after_the_grace_window(late, overdue):
    assert due(ENROLLED + days(7 + late), completed=BASELINE)["phq9"].overdue is overdue


def test_due_days_are_the_clinics_calendar_days():
    # 23:30 in New York on day 6 is already day 7 in UTC: not yet due there.
    late_evening = dt.datetime(2026, 3, 9, 3, 30, tzinfo=UTC)
    assert due(late_evening, completed=BASELINE) == {}


def test_inactive_entries_are_never_due():
    entries = default_plan_entries(1)
    for entry in entries:
        entry.active = False
    line = Timeline(enrolled_at=ENROLLED, timezone=ZONE)
    assert due_questionnaires(entries, line, ENROLLED) == []


def test_next_due_on_is_the_earliest_outstanding_day_even_in_the_future():
    line = Timeline(enrolled_at=ENROLLED, timezone=ZONE, completed=BASELINE)
    assert next_due_on(default_plan_entries(1), line, ENROLLED + days(1)) == dt.date(2026, 3, 9)
    missing = Timeline(enrolled_at=ENROLLED, timezone=ZONE)
    assert next_due_on(default_plan_entries(1), missing, ENROLLED + days(5)) == dt.date(2026, 3, 2)


def plan_form_data(**changes):
    data = {"submission_key": uuid.uuid4().hex}
    for key in ("pcl5", "phq9", "gad7", "pcl5-weekly", "after-infusion"):
        data.update({f"{key}__every": "7", f"{key}__follow_up": "12", f"{key}__then_every": "28"})
    data.update({"pcl5__baseline": "y", "phq9__baseline": "y", "gad7__baseline": "y",
                 "phq9__before_infusion": "y", "after-infusion__after_infusion": "y",
                 "pcl5-weekly__recurring": "y", "phq9__recurring": "y"})
    data.update(changes)
    return data


def test_clinician_changes_a_plan_and_the_change_is_audited(client, world, session):
    sign_in(client, world.clinician)
    path = f"/clinic/patients/{world.patient.id}/plan"
    page = client.get(path).data.decode()
    assert 'id="phq9__before_infusion" name="phq9__before_infusion" type="checkbox" value="y"' \
        in page.replace(" checked", "")
    form = plan_form_data(**{"phq9__every": "14", "gad7__recurring": "y", "gad7__every": "28",
                             "gad7__then_every": "none"})
    assert client.post(path, data=form).status_code == 302
    entries = {(e.instrument_key, e.schedule): (e.active, e.every_days, e.then_every_days)
               for e in session.scalars(select(PlanEntry).where(
                   PlanEntry.patient_id == world.patient.id))}
    assert entries[("phq9", "recurring")] == (True, 14, 28)
    assert entries[("gad7", "recurring")] == (True, 28, None)
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "plan.update"))
    assert event.old_values["phq9:recurring"]["every_days"] == 7
    assert event.new_values["phq9:recurring"]["every_days"] == 14
    bad = plan_form_data(**{"phq9__follow_up": "400"})
    assert client.post(path, data=bad).status_code == 422
    session.expire_all()
    assert session.scalar(select(PlanEntry.follow_up_weeks).where(
        PlanEntry.patient_id == world.patient.id, PlanEntry.instrument_key == "phq9",
        PlanEntry.schedule == "recurring")) == 12
