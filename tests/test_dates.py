"""Dates the clinic's calendar cannot have are refused on every date field of every staff form
and on every export filter (web and command line): a message, nothing stored, no audit row,
never a 500. The bounds: nothing before EARLIEST_RECORD_DATE, nothing that happened after
today at the clinic, no booking more than BOOKING_HORIZON_DAYS ahead."""
from __future__ import annotations

import datetime as dt
import html

import pytest
from sqlalchemy import func, select

from outcomes import clock
from outcomes.config import ConfigurationError, settings_from_environment
from outcomes.extensions import db
from outcomes.models import (
    AuditEvent,
    Course,
    FormSubmission,
    Infusion,
    InfusionVersion,
)

from .conftest import sign_in
from .helpers import form_key, infusion_form_values, now_local

TODAY = now_local().date()
EARLIEST = "cannot be before 1 January 2000"
AFTER_TODAY = "cannot be after today"
TOO_FAR = "can be at most 365 days ahead"

#: Bad days for a date of something that happened, and the message each gets.
PAST_CASES = [
    ("0001-01-01", EARLIEST),
    ("1999-12-31", EARLIEST),
    ("9999-12-31", AFTER_TODAY),
    ((TODAY + dt.timedelta(days=1)).isoformat(), AFTER_TODAY),
    ("2026-02-30", "Not a valid"),
    ("yesterday", "Not a valid"),
    ("10000-01-01", "Not a valid"),
]
PAST_IDS = ["year-1", "before-2000", "year-9999", "tomorrow", "no-such-day", "words",
            "year-10000"]
#: Bad days for a booking (a course start, the next infusion).
AHEAD_CASES = [
    ("0001-01-01", EARLIEST),
    ("9999-12-31", TOO_FAR),
    ((TODAY + dt.timedelta(days=366)).isoformat(), TOO_FAR),
    ("2026-02-30", "Not a valid"),
]
AHEAD_IDS = ["year-1", "year-9999", "a-year-and-a-day-ahead", "no-such-day"]
#: The CSV export form's other fields, valid.
EXPORT = {"kind": "scores", "instrument": "", "patient": ""}


def counts(session) -> tuple[int, ...]:
    """Everything a staff form or an export could add."""
    return tuple(session.scalar(select(func.count()).select_from(model))
                 for model in (Course, Infusion, InfusionVersion, FormSubmission, AuditEvent))


def as_value(day: str, with_time: bool) -> str:
    return f"{day}T10:30" if with_time else day


@pytest.fixture
def pages(client, world, factory):
    """Each dated staff form: its path and valid values, keyed by name."""
    sign_in(client, world.clinician)
    course = factory.course(world.patient)
    infusion = factory.infusion(course, clock.utcnow() - dt.timedelta(hours=3))
    patient = f"/clinic/patients/{world.patient.id}"
    return {
        "course.start": (f"{patient}/courses/new", {
            "indication": "ptsd", "planned_infusions": "6", "start_date": TODAY.isoformat()}),
        "course.update": (f"{patient}/courses/{course.id}", {
            "status": "active", "planned_infusions": "6"}),
        "infusion.record": (f"{patient}/courses/{course.id}/infusions/new", infusion_form_values()),
        "infusion.correct": (f"{patient}/infusions/{infusion.id}", infusion_form_values(
            correction_reason="Wrong time")),
    }


#: (form, field, whether it takes a time, past or ahead)
DATE_FIELDS = [
    ("course.start", "start_date", False, "ahead"),
    ("course.start", "next_infusion_at", True, "ahead"),
    ("course.update", "next_infusion_at", True, "ahead"),
    ("infusion.record", "administered_at", True, "past"),
    ("infusion.record", "next_infusion_at", True, "ahead"),
    ("infusion.correct", "administered_at", True, "past"),
]


def date_cases():
    for form, field, with_time, kind in DATE_FIELDS:
        cases, ids = (PAST_CASES, PAST_IDS) if kind == "past" else (AHEAD_CASES, AHEAD_IDS)
        for (day, message), case_id in zip(cases, ids):
            yield pytest.param(form, field, as_value(day, with_time), message,
                               id=f"{form}-{field}-{case_id}")


@pytest.mark.parametrize("form, field, value, message", list(date_cases()))
def test_a_bad_date_on_a_staff_form_is_refused_and_changes_nothing(
        client, session, pages, form, field, value, message):
    # A course can be started only when none is open: stop the open one first, through
    # the form, so "course.start" meets its own bounds and nothing else.
    if form == "course.start":
        update, _ = pages["course.update"]
        assert client.post(update, data={"status": "stopped", "planned_infusions": "6",
                                         "submission_key": form_key(client, update)}
                           ).status_code == 302
    path, data = pages[form]
    key = form_key(client, path)
    before = counts(session)
    response = client.post(path, data={**data, field: value, "submission_key": key})
    assert response.status_code == 422
    page = html.unescape(response.data.decode())
    assert f'id="{field}-error"' in page and message in page
    assert counts(session) == before


def test_bookings_may_be_tomorrow_and_a_year_ahead(client, session, pages):
    path, data = pages["infusion.record"]
    ahead = (now_local() + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(path, data={**data, "next_infusion_at": ahead,
                                       "submission_key": form_key(client, path)})
    assert response.status_code == 302
    path, data = pages["course.update"]
    tomorrow = (now_local() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(path, data={**data, "next_infusion_at": tomorrow,
                                       "submission_key": form_key(client, path)})
    assert response.status_code == 302


def test_the_earliest_day_and_today_are_allowed_in_export_filters(client, world):
    sign_in(client, world.clinician)
    response = client.post("/exports/", data={
        **EXPORT, "date_from": "2000-01-01", "date_to": TODAY.isoformat()})
    assert response.status_code == 200 and response.mimetype == "text/csv"


@pytest.mark.parametrize("field", ["date_from", "date_to"])
@pytest.mark.parametrize("value, message", PAST_CASES, ids=PAST_IDS)
def test_a_bad_export_filter_gives_the_form_back_before_anything_is_audited_or_sent(
        client, world, session, field, value, message):
    sign_in(client, world.clinician)
    before = counts(session)
    response = client.post("/exports/", data={**EXPORT, field: value})
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    page = html.unescape(response.data.decode())
    assert f'id="{field}-error"' in page and message in page
    assert counts(session) == before


@pytest.mark.parametrize("flag", ["--from", "--to"])
@pytest.mark.parametrize("value, message", [
    ("0001-01-01", EARLIEST), ("9999-12-31", AFTER_TODAY),
    ((TODAY + dt.timedelta(days=1)).isoformat(), AFTER_TODAY),
    ("2026-02-30", "must be a date as YYYY-MM-DD")], ids=["year-1", "year-9999", "tomorrow",
                                                          "no-such-day"])
def test_a_bad_date_on_the_export_command_is_one_line_and_exit_2(
        runner, world, session, tmp_path, flag, value, message):
    before = counts(session)
    folder = tmp_path / "exports"
    folder.mkdir()
    output = folder / "out.csv"
    result = runner.invoke(args=["export", "scores", "--clinic", world.clinic.name, flag,
                                 value, "--output", str(output)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert flag in result.stderr
    assert list(folder.iterdir()) == []
    assert counts(session) == before


def test_the_bounds_are_settings_and_a_bad_setting_stops_the_start():
    settings = settings_from_environment({"OUTCOMES_ENV": "development",
                                          "EARLIEST_RECORD_DATE": "2010-06-01",
                                          "BOOKING_HORIZON_DAYS": "90"})
    assert settings["EARLIEST_RECORD_DATE"] == dt.date(2010, 6, 1)
    assert settings["BOOKING_HORIZON_DAYS"] == 90
    with pytest.raises(ConfigurationError, match="EARLIEST_RECORD_DATE must be a date"):
        settings_from_environment({"OUTCOMES_ENV": "development",
                                   "EARLIEST_RECORD_DATE": "June 2010"})


def test_a_changed_earliest_date_moves_the_bound(database_url, world):
    from outcomes import create_app

    from .conftest import base_config

    app = create_app({**base_config(database_url), "EARLIEST_RECORD_DATE": dt.date(2020, 1, 1)})
    client = app.test_client()
    sign_in(client, world.clinician)
    response = client.post("/exports/", data={**EXPORT, "date_from": "2019-12-31"})
    assert response.status_code == 422
    assert "cannot be before 1 January 2020" in html.unescape(response.data.decode())
    with app.app_context():
        db.engine.dispose()
