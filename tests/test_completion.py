"""Questionnaire completion measured from the schedule: the occurrences a plan asked for over a
past window and what became of each (services.schedule.asked_between, worked by hand), and the
clinic's, clinicians' and patients' counts (services.completion) with the pages that show
them."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from sqlalchemy import select

from outcomes import clock
from outcomes.models import PlanEntry
from outcomes.services import completion
from outcomes.services.audit import Actor
from outcomes.services.courses import correct_infusion
from outcomes.services.deliveries import write_delivery
from outcomes.services.schedule import (
    LATE,
    MISSED,
    ON_TIME,
    OPEN,
    Timeline,
    asked_between,
    outstanding,
)

from .conftest import sign_in
from .helpers import INFUSION_VALUES, statements

ZONE = "America/New_York"
UTC = dt.timezone.utc
#: Monday 2 March 2026, 10:00 in New York (EST); the clocks go forward on Sunday 8 March.
ENROLLED = dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
LONG_AGO = dt.datetime(2026, 1, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def entry(key: str, schedule: str, every: int | None = None, follow_up: int | None = None,
          then_every: int | None = None, active: bool = True) -> PlanEntry:
    return PlanEntry(instrument_key=key, schedule=schedule, every_days=every,
                     follow_up_weeks=follow_up, then_every_days=then_every, active=active)


def outcomes_of(entries, timeline, now, start=LONG_AGO):
    return [(a.occurrence.schedule, a.occurrence.opens_at, a.done_at, a.outcome)
            for a in asked_between(entries, timeline, start, now)]


# --- The pure rule, worked by hand --------------------------------------------------------

#: A check-in every 4 days from enrolment: due 6, 10, 14, 18 March (clinic days).
EVERY_4_DAYS = [entry("phq9", "recurring", 4)]
#: 23:30 on Saturday 7 March in New York, already 8 March in UTC.
SATURDAY_NIGHT = at(3, 8, 4, 30)
#: Friday 13 March, 10:00 EDT.
FRIDAY_13 = at(3, 13, 14)
RECURRING = Timeline(enrolled_at=ENROLLED, timezone=ZONE,
                     completed={"phq9": [SATURDAY_NIGHT, FRIDAY_13]})


def test_recurring_check_ins_on_time_late_and_open_across_the_spring_change():
    now = at(3, 19, 16)  # Thursday 19 March, 12:00 EDT
    assert outcomes_of(EVERY_4_DAYS, RECURRING, now) == [
        # Local midnight: 05:00 UTC in EST, 04:00 UTC once the clocks have gone forward.
        # 6 March: done Saturday night, before it was overdue (9 March 05:00 UTC).
        ("recurring", at(3, 6, 5), SATURDAY_NIGHT, ON_TIME),
        # 10 March: Saturday night is the 7th at the clinic, three days early (two count),
        # though the 8th in UTC; Friday 13th 10:00 is after midnight ending the 12th.
        ("recurring", at(3, 10, 4), FRIDAY_13, LATE),
        # 14 March: Friday 13th is one day early, so it counts here too, as the schedule
        # counted it (the patient was not asked again).
        ("recurring", at(3, 14, 4), FRIDAY_13, ON_TIME),
        # 18 March: not done, not overdue until 21 March: open.
        ("recurring", at(3, 18, 4), None, OPEN),
    ]


def test_a_window_starts_at_the_clinics_midnight():
    now = at(3, 19, 16)
    start = clock.local_midnight(ZONE, dt.date(2026, 3, 10))
    assert start == at(3, 10, 4)
    assert [o[1] for o in outcomes_of(EVERY_4_DAYS, RECURRING, now, start)] == [
        at(3, 10, 4), at(3, 14, 4), at(3, 18, 4)]


def test_an_unanswered_check_in_is_missed_once_overdue_or_once_the_next_falls_due():
    line = Timeline(enrolled_at=ENROLLED, timezone=ZONE)
    # 6 March overdue at 05:00 UTC on the 9th: open until then, missed after.
    assert outcomes_of(EVERY_4_DAYS, line, at(3, 9, 4, 59))[0][3] == OPEN
    assert outcomes_of(EVERY_4_DAYS, line, at(3, 9, 5, 1))[0][3] == MISSED
    # Done on the 11th: on time for 10 March; 6 March's was no longer asked for by then.
    done = dataclasses.replace(line, completed={"phq9": [at(3, 11, 14)]})
    assert outcomes_of(EVERY_4_DAYS, done, at(3, 12, 14)) == [
        ("recurring", at(3, 6, 5), None, MISSED), ("recurring", at(3, 10, 4), at(3, 11, 14),
                                                   ON_TIME)]


#: A course: infusions on Thursday 5 March (EST), Monday 9 and Thursday 12 March (EDT), the
#: next booked for Monday 16 March, all at 10:00 local.
I1, I2, I3, BOOKED = at(3, 5, 15), at(3, 9, 14), at(3, 12, 14), at(3, 16, 14)
COURSE_PLAN = [entry("phq9", "baseline"), entry("phq9", "before_infusion"),
               entry("after-infusion", "after_infusion"), entry("phq9", "recurring", 7, 12, 28),
               entry("gad7", "baseline", active=False)]
PHQ9_BEFORE_I1 = at(3, 5, 10)  # 05:00 EST on the day of the first infusion
PHQ9_BEFORE_I2 = at(3, 8, 20)
PHQ9_AFTER_I3_BEGAN = at(3, 12, 15)
AFTER_I1, AFTER_I3 = at(3, 6, 16), at(3, 15, 18)
COURSE = Timeline(
    enrolled_at=ENROLLED, timezone=ZONE, infusions=[I1, I2, I3], next_infusion_at=BOOKED,
    completed={"phq9": [PHQ9_BEFORE_I1, PHQ9_BEFORE_I2, PHQ9_AFTER_I3_BEGAN],
               "after-infusion": [AFTER_I1, AFTER_I3],
               "gad7": []})


def test_a_course_with_infusions():
    now = at(3, 15, 20)  # Sunday 15 March, 16:00 EDT
    assert outcomes_of(COURSE_PLAN, COURSE, now) == [
        # Baseline: due from enrolment day, overdue 5 March 05:00 UTC, done at 10:00 UTC
        # before the first infusion: late. The inactive GAD-7 baseline is not counted.
        ("baseline", at(3, 2, 5), PHQ9_BEFORE_I1, LATE),
        # The same PHQ-9 lies in the 24 hours before the first infusion: on time there.
        ("before_infusion", at(3, 4, 15), PHQ9_BEFORE_I1, ON_TIME),
        # After I1: due 6 March (EST midnight), done that day.
        ("after_infusion", at(3, 6, 5), AFTER_I1, ON_TIME),
        ("before_infusion", at(3, 8, 14), PHQ9_BEFORE_I2, ON_TIME),
        # After I2: due 10 March (EDT midnight); the third infusion replaced it undone.
        ("after_infusion", at(3, 10, 4), None, MISSED),
        # Before I3: the PHQ-9 came an hour after the infusion: missed (a before-infusion
        # questionnaire is never late: the infusion ends it).
        ("before_infusion", at(3, 11, 14), None, MISSED),
        # Weekly from the first infusion's day (5 March): due 12 March, answered that day.
        # (From enrolment it would have been due 9 March, after the course began.)
        ("recurring", at(3, 12, 4), PHQ9_AFTER_I3_BEGAN, ON_TIME),
        ("after_infusion", at(3, 13, 4), AFTER_I3, ON_TIME),
        # Before the booked infusion: open since 15 March 14:00 UTC, not yet overdue.
        ("before_infusion", at(3, 15, 14), None, OPEN),
    ]


def test_an_infusion_the_same_day_replaces_the_after_infusion_check_before_it_is_due():
    twice = dataclasses.replace(COURSE, infusions=[I1, I1 + dt.timedelta(hours=5)],
                                next_infusion_at=None)
    after = [o for o in outcomes_of([entry("after-infusion", "after_infusion")], twice,
                                    at(3, 7, 12))]
    assert after == [("after_infusion", at(3, 6, 5), AFTER_I1, ON_TIME)]


def test_a_baseline_not_done_is_missed_once_the_course_begins_or_past_its_grace():
    plan = [entry("gad7", "baseline")]
    waiting = Timeline(enrolled_at=ENROLLED, timezone=ZONE)
    assert outcomes_of(plan, waiting, at(3, 4, 12))[0][3] == OPEN
    assert outcomes_of(plan, waiting, at(3, 5, 6))[0][3] == MISSED  # overdue 5 March 05:00
    begun = dataclasses.replace(waiting, infusions=[at(3, 3, 15)])
    assert outcomes_of(plan, begun, at(3, 3, 16)) == [("baseline", at(3, 2, 5), None, MISSED)]


# --- The same rules as what the schedule lists at each moment -------------------------------

def as_it_was(timeline: Timeline, moment: dt.datetime, booked: dt.datetime | None) -> Timeline:
    """The timeline as the schedule saw it at ``moment``: the infusions and questionnaires
    recorded by then, and the next infusion booked."""
    given = [t for t in timeline.infusions if t <= moment]
    upcoming = [t for t in [*timeline.infusions, *([booked] if booked else [])] if t > moment]
    return dataclasses.replace(
        timeline, infusions=given, next_infusion_at=upcoming[0] if upcoming else None,
        completed={key: [t for t in times if t <= moment]
                   for key, times in timeline.completed.items()})


FINISHED = dataclasses.replace(COURSE, course_ended_on=dt.date(2026, 3, 13))
FINISHED_PLAN = [*COURSE_PLAN, entry("pcl5-weekly", "recurring", 3, 1, 10),
                 entry("gad7", "recurring", 2)]


@pytest.mark.parametrize("plan, timeline, booked", [
    (COURSE_PLAN, COURSE, BOOKED), (FINISHED_PLAN, FINISHED, None),
    (EVERY_4_DAYS, RECURRING, None)])
def test_what_is_asked_and_not_done_at_each_moment_is_what_the_schedule_lists(
        plan, timeline, booked):
    moment = ENROLLED - dt.timedelta(days=1, minutes=7)
    while moment < at(5, 1, 0):
        seen = as_it_was(timeline, moment, booked)
        listed = {(o.instrument_key, o.schedule, o.opens_at)
                  for o in outstanding(plan, seen, moment) if o.is_due(moment)}
        asked = {(a.occurrence.instrument_key, a.occurrence.schedule, a.occurrence.opens_at)
                 for a in asked_between(plan, seen, LONG_AGO, moment)
                 if a.done_at is None and (a.closes_at is None or a.closes_at > moment)}
        assert asked == listed, moment
        moment += dt.timedelta(hours=5, minutes=13)


# --- The clinic's, clinicians' and patients' figures --------------------------------------

#: Sunday 15 March 2026, 12:00 EDT: the 30 days are 14 February to 15 March, the 90 days
#: 16 December 2025 to 15 March.
NOW = at(3, 15, 16)
JANUARY_2 = dt.datetime(2026, 1, 2, 15, 0, tzinfo=UTC)  # Friday, 10:00 EST


def only(session, patient, *schedules):
    for plan_entry in session.scalars(select(PlanEntry).where(PlanEntry.patient_id == patient.id)):
        plan_entry.active = (plan_entry.instrument_key, plan_entry.schedule) in schedules
    session.commit()


def sent_reminder(session, patient, sent_at, status="sent"):
    write_delivery(
        session, f"reminder:{patient.id}:phq9:recurring:{sent_at.isoformat()}:1:email",
        clinic_id=patient.clinic_id, purpose="reminder", channel="email",
        patient_id=patient.id, instrument_key="phq9", schedule="recurring",
        occurrence_opens_at=sent_at, reminder_number=1, status=status, attempts=1,
        created_at=sent_at, next_attempt_at=None if status != "pending" else sent_at,
        sent_at=sent_at if status == "sent" else None,
        failed_at=sent_at if status == "failed" else None)
    session.commit()


@pytest.fixture
def clinic_history(factory, world, session, monkeypatch):
    """At Harbour Clinic, weekly PHQ-9s since 2 January (due each Friday from 9 January):
    Alice's patient answered some on time, some late, missed others; Bob's patient answered
    none; a second patient of Alice's had an infusion whose time was corrected."""
    monkeypatch.setattr(clock, "utcnow", lambda: JANUARY_2)
    alice = factory.staff(world.clinic, email="alice@example.org")
    bob = factory.staff(world.clinic, email="bob@example.org")
    answering = factory.patient(world.clinic, alice, identifier="MRN-A1")
    silent = factory.patient(world.clinic, bob, identifier="MRN-B1")
    infused = factory.patient(world.clinic, alice, identifier="MRN-A2")
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    for patient in (answering, silent):
        only(session, patient, ("phq9", "recurring"))
    only(session, infused, ("after-infusion", "after_infusion"))
    # Due 9, 16, 23, 30 Jan, 6, 13, 20, 27 Feb, 6 and 13 March.
    for done in (at(1, 9, 15), at(1, 16, 15), at(1, 27, 15), at(2, 6, 15), at(2, 20, 15),
                 at(3, 3, 15)):
        factory.assessment(answering, "phq9", total=5, at=done)
    course = factory.course(infused, started_on=dt.date(2026, 3, 2), infusions=[at(3, 2, 15)])
    # Recorded for 2 March, then corrected to 3 March: the check on the evening of the 2nd
    # came before the infusion as corrected, so it answers nothing.
    correct_infusion(session, Actor(user=alice), course.infusions[0],
                     {**INFUSION_VALUES, "administered_at": at(3, 3, 15)}, "Wrong day")
    session.commit()
    factory.assessment(infused, "after-infusion", at=at(3, 2, 20))
    sent_reminder(session, answering, at(3, 10, 14))
    sent_reminder(session, answering, at(2, 1, 14))
    sent_reminder(session, answering, at(3, 11, 14), status="failed")
    sent_reminder(session, silent, at(2, 14, 12))  # 07:00 EST on the window's first day
    sent_reminder(session, silent, dt.datetime(2025, 12, 10, 14, tzinfo=UTC))
    sent_reminder(session, world.other_patient, at(3, 10, 14))
    return answering, silent, infused


def counts(by_window):
    return {days: (c.on_time, c.late, c.missed, c.open, c.reminders_sent)
            for days, c in by_window.items()}


def test_clinic_clinician_and_patient_figures(app, session, world, clinic_history):
    answering, silent, infused = clinic_history
    with app.app_context():
        report = completion.clinic_completion(session, world.clinic, NOW)
    assert counts(report.patients[answering.id]) == {
        # 30 days: 20 Feb on time, 27 Feb late (3 March), 6 March missed, 13 March open.
        30: (1, 1, 1, 1, 1),
        # 90 days: on time 9, 16 Jan, 6, 20 Feb; late 23 Jan (on the 27th), 27 Feb;
        # missed 30 Jan, 13 Feb, 6 March; open 13 March. The failed reminder is not counted.
        90: (4, 2, 3, 1, 2)}
    assert counts(report.patients[silent.id]) == {30: (0, 0, 3, 1, 1), 90: (0, 0, 9, 1, 1)}
    assert counts(report.patients[infused.id]) == {30: (0, 0, 1, 0, 0), 90: (0, 0, 1, 0, 0)}
    assert world.patient.id in report.patients  # the world's patient: the default plan
    assert world.other_patient.id not in report.patients
    mine = {row.clinician: (row.patients, counts(row.windows)) for row in report.clinicians}
    assert mine["alice@example.org"] == (2, {30: (1, 1, 2, 1, 1), 90: (4, 2, 4, 1, 2)})
    assert mine["bob@example.org"] == (1, {30: (0, 0, 3, 1, 1), 90: (0, 0, 9, 1, 1)})
    for days in (30, 90):
        assert counts(report.clinic)[days] == tuple(
            sum(values) for values in zip(*(counts(report.patients[p])[days]
                                            for p in report.patients)))
    assert report.clinic[90].reminders_sent == 3
    alice_90 = report.clinicians[0].windows[90]
    assert alice_90.judged == 10 and alice_90.percent(ON_TIME) == 40.0
    assert completion.Completion().percent(ON_TIME) is None


def test_one_patients_figures_are_their_share_of_the_clinics(app, session, world,
                                                             clinic_history):
    answering, *_ = clinic_history
    with app.app_context():
        own = completion.patient_completion(session, answering, NOW)
    assert counts(own) == {30: (1, 1, 1, 1, 1), 90: (4, 2, 3, 1, 2)}


def test_the_figures_take_the_same_statements_whatever_the_number_of_patients(
        app, session, world, factory, clinic_history):
    world.clinic.timezone  # the clinic loaded beforehand, as a request's user has it
    with app.app_context(), statements() as few:
        completion.clinic_completion(session, world.clinic, NOW)
    for n in range(3):
        patient = factory.patient(world.clinic, world.clinician, with_login=False)
        factory.course(patient, started_on=dt.date(2026, 3, 1), infusions=[at(3, 1, 15)])
        factory.assessment(patient, "phq9", total=3, at=at(3, 2, 15), by=world.clinician)
    session.expire_all()
    world.clinic.timezone
    with app.app_context(), statements() as many:
        completion.clinic_completion(session, world.clinic, NOW)
    # Patients, plan entries, courses, infusion times, questionnaire times, reminders.
    assert len(many) == len(few) == 6, [s for s, _ in many]


# --- Pages --------------------------------------------------------------------------------

def test_the_outcomes_page_shows_completion_for_the_clinic_and_each_clinician(
        client, world, clinic_history):
    sign_in(client, world.clinician)
    page = client.get("/clinic/outcomes").get_data(as_text=True)
    section = page.split('id="completion"')[1].split("</section>")[0]
    for days in (30, 90):
        assert f'<caption class="visually-hidden">Last {days} days</caption>' in section
    # The clinic, then Alice, Bob and the world's clinician (the world's patient).
    assert section.count('<th scope="row">') == 2 * 4
    assert 'scope="col"' in section and "alice@example.org" in section
    # Alice's 90 days: 4 on time of 10 judged.
    assert re.search(r"alice@example\.org.*?4 <span[^>]*>\(40%\)", section, re.S)
    for word in ("On time", "Late", "Missed", "Reminders sent"):
        assert word in section


def test_the_dashboard_links_to_the_completion_section_of_the_outcomes_page(
        client, world, clinic_history):
    sign_in(client, world.clinician)
    page = client.get("/clinic/patients").get_data(as_text=True)
    link = re.search(r'<a [^>]*href="/clinic/outcomes#completion"[^>]*>(.*?)</a>', page, re.S)
    assert link and "on time, late and missed" in link.group(1)


def test_the_patient_page_has_the_patients_own_line(client, world, clinic_history):
    answering, *_ = clinic_history
    sign_in(client, world.clinician)
    page = client.get(f"/clinic/patients/{answering.id}").get_data(as_text=True)
    line = page.split('id="completion-line"')[1].split("</p>")[0]
    assert "4 on time, 2 late, 3 missed" in line and "2 reminders sent" in line
