"""A patient's record as its pages show it (services/record_view.py): the rules the templates
used to hold (the open course, infusion counts, whether a course takes another, band and
option labels, who entered a paper form) as plain values, and the pages showing them."""
from __future__ import annotations

import datetime as dt

from outcomes import clock
from outcomes.extensions import db
from outcomes.models import Assessment, Course
from outcomes.services.record_view import course_line, courses_of, in_words
from outcomes.services.records import patient_courses

from .conftest import sign_in


def reloaded(app, model, record_id):
    """The record as a request's session loads it (its relationships read in context)."""
    return db.session.get(model, record_id)


def test_an_open_course_takes_infusions_until_its_plan_is_full(app, world, factory):
    course = factory.course(world.patient, planned_infusions=2)
    factory.infusion(course)
    with app.app_context():
        line = course_line(reloaded(app, Course, course.id))
        assert (line.indication, line.status, line.recorded, line.next_number,
                line.takes_infusions) == ("PTSD", "Active", 1, 2, True)
        assert [row.corrected for row in line.infusions] == [False]
    factory.infusion(course)
    with app.app_context():
        line = course_line(reloaded(app, Course, course.id))
        assert (line.recorded, line.next_number, line.takes_infusions) == (2, 3, False)


def test_a_new_course_may_start_only_when_none_is_open(app, world, factory):
    today = clock.clinic_today(world.clinic)
    factory.course(world.patient, started_on=today - dt.timedelta(days=60),
                   status="completed", ended_on=today - dt.timedelta(days=30))
    with app.app_context():
        finished = courses_of(patient_courses(db.session, world.patient.id))
        assert finished.can_start and [line.status for line in finished.lines] == ["Completed"]
        assert not finished.lines[0].takes_infusions
    factory.course(world.patient, planned_infusions=4, status="planned")
    with app.app_context():
        both = courses_of(patient_courses(db.session, world.patient.id))
        assert not both.can_start
        assert [line.status for line in both.lines] == ["Planned", "Completed"]


def test_a_questionnaire_in_the_definitions_words(app, world, factory):
    answers = [3, 3, 3, 3, 3, 2, None, 0, 0, 1]  # item 7 left blank on the paper form
    record = factory.assessment(world.patient, "phq9", answers, by=world.clinician)
    with app.app_context():
        words = in_words(reloaded(app, Assessment, record.id))
    assert words.band is not None
    assert words.band == words.instrument.band_for(record.total).label
    assert words.transcribed_by == world.clinician.email
    assert [(a.number, a.value) for a in words.answers] == list(enumerate(answers, start=1))
    assert words.answers[0].label == "Nearly every day" and words.answers[6].label is None
    assert words.answers[0].text == words.instrument.items[0].text


def test_the_pages_show_the_values(client, world, factory):
    course = factory.course(world.patient, planned_infusions=3)
    infusion = factory.infusion(course)
    record = factory.assessment(world.patient, "phq9", [2] * 8 + [0])
    sign_in(client, world.clinician)
    page = client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert "Active ·\n      infusion 1 of 3" in page and "Record infusion 2</a>" in page
    assert "Start a course" not in page
    assert "Moderately severe" in page and "More than half the days" in page
    shown = client.get(f"/clinic/patients/{world.patient.id}/assessments/{record.id}")
    assert "answered by the patient" in shown.data.decode()
    form = client.get(f"/clinic/patients/{world.patient.id}/courses/{course.id}/infusions/new")
    assert "Record infusion 2 of 3" in form.data.decode()
    edit = client.get(f"/clinic/patients/{world.patient.id}/courses/{course.id}")
    assert "1 of 3 infusions recorded" in edit.data.decode()
    assert infusion.number == 1
