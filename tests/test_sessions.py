"""Sessions: a sliding idle timeout (staff sooner than patients), an absolute cap, and a
questionnaire sent after its session ended that comes back after sign-in, to its patient only.

The session clock is pinned (no sleeping): ``clock.now`` is what the app sees as now.
"""
from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select

from outcomes.models import Alert, Assessment, HeldAnswers

from .conftest import PASSWORD, base_config, csrf_token
from .helpers import running_app
from .notification_world import PinnedClock

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    return PinnedClock(monkeypatch, START)


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """CSRF on, as in production: an ended session must not be mistaken for a forged form.
    The timeouts are the documented defaults, said here so the arithmetic below reads."""
    with running_app({**base_config(database_url), "WTF_CSRF_ENABLED": True,
                      "STAFF_IDLE_MINUTES": 15, "PATIENT_IDLE_MINUTES": 30,
                      "SESSION_MAX_HOURS": 12, "HELD_ANSWERS_MINUTES": 60}) as app:
        yield app


def sign_in(client, email: str):
    token = csrf_token(client.get("/login").data)
    return client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token})


def signed_in(client, path: str) -> bool:
    response = client.get(path)
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def test_the_idle_timeout_slides_with_activity(client, world, clock):
    assert sign_in(client, world.patient_user.email).status_code == 302
    for _ in range(6):  # a request every 25 minutes, for two and a half hours
        clock.advance(minutes=25)
        assert signed_in(client, "/me/")
    clock.advance(minutes=30, seconds=1)
    response = client.get("/me/")
    assert response.status_code == 302 and response.location.startswith("/login")
    clock.advance(seconds=1)
    assert not signed_in(client, "/me/")  # ended for good, not just for one request


def test_staff_time_out_sooner_than_patients(app, world, clock):
    staff, patient = app.test_client(), app.test_client()
    sign_in(staff, world.clinician.email)
    sign_in(patient, world.patient_user.email)
    clock.advance(minutes=14, seconds=59)
    assert signed_in(staff, "/clinic/patients")
    clock.advance(minutes=15, seconds=1)
    assert not signed_in(staff, "/clinic/patients")
    assert signed_in(patient, "/me/")  # 30 minutes less 1 second idle: still signed in


def test_the_absolute_cap_ends_even_an_active_session(client, world, clock):
    sign_in(client, world.patient_user.email)
    for _ in range(12 * 4 - 1):  # every 15 seconds would do too; every 15 minutes is enough
        clock.advance(minutes=15)
        assert signed_in(client, "/me/")
    clock.advance(minutes=15, seconds=1)  # 12 hours and a second after sign-in
    assert not signed_in(client, "/me/")


def test_an_old_copy_of_the_cookie_stays_ended(app, client, world, clock):
    """The clocks are in the signed cookie: a copy taken earlier carries its own, older time,
    and cannot be refreshed without the server."""
    sign_in(client, world.patient_user.email)
    copy = client.get_cookie("session").value
    for _ in range(3):
        clock.advance(minutes=20)
        assert signed_in(client, "/me/")
    thief = app.test_client()
    thief.set_cookie("session", copy)
    assert not signed_in(thief, "/me/")
    assert signed_in(client, "/me/")


def open_form(client) -> tuple[str, str]:
    page = client.get("/me/questionnaires/phq9").data
    key = re.search(rb'name="submission_key" type="hidden" value="([0-9a-f]+)"', page)
    return csrf_token(page), key.group(1).decode()


def answers(item_9: int = 0) -> dict[str, str]:
    return {**{f"item_{number}": "1" for number in range(1, 9)}, "item_9": str(item_9)}


def checked_answers(page: bytes) -> dict[str, str]:
    """The radio buttons the page shows as chosen, by field name."""
    found = {}
    for tag in re.findall(rb"<input[^>]*>", page):
        if b"checked" in tag and b'type="radio"' in tag:
            name = re.search(rb'name="([^"]+)"', tag).group(1).decode()
            found[name] = re.search(rb'value="([^"]+)"', tag).group(1).decode()
    return found


def test_answers_sent_after_the_session_ended_are_back_on_the_form_after_sign_in(
        app, client, world, session, clock):
    sign_in(client, world.patient_user.email)
    token, key = open_form(client)
    clock.advance(minutes=31)  # the patient took their time
    response = client.post("/me/questionnaires/phq9",
                           data={**answers(), "submission_key": key, "csrf_token": token})
    assert response.status_code == 302 and response.location == "/login"
    page = client.get("/login").data.decode()
    assert "signed out after a time without activity" in page
    assert "Your answers are kept" in page
    assert session.scalar(select(func.count(Assessment.id))) == 0  # held, not a record
    held = session.scalar(select(HeldAnswers))
    # Item 10 (how difficult) is optional and was not answered.
    assert held.user_id == world.patient_user.id and held.answers == [1] * 8 + [0, None]
    cookie = app.session_interface.get_signing_serializer(app).loads(
        client.get_cookie("session").value)
    assert set(cookie) <= {"_flashes", "_fresh", "csrf_token"}  # no answers, no user

    clock.advance(minutes=5)
    response = sign_in(client, world.patient_user.email)
    assert response.location == "/me/questionnaires/phq9"
    form = client.get(response.location)
    assert checked_answers(form.data) == answers()
    assert f'value="{key}"'.encode() in form.data  # the same submission, if sent again
    assert form.headers["Cache-Control"] == "no-store"
    assert b"Your answers are back on the form" in form.data
    assert checked_answers(client.get("/me/questionnaires/phq9").data) == {}  # once only

    sent = client.post("/me/questionnaires/phq9", data={
        **answers(), "submission_key": key, "csrf_token": csrf_token(form.data)})
    assert sent.status_code == 302 and "/me/results/" in sent.location


def test_another_person_signing_in_on_the_device_never_sees_them(app, client, world, clock):
    sign_in(client, world.patient_user.email)
    token, key = open_form(client)
    clock.advance(minutes=31)
    client.post("/me/questionnaires/phq9",
                data={**answers(), "submission_key": key, "csrf_token": token})
    other = world.other_patient.user
    response = sign_in(client, other.email)
    assert response.location == "/me/"
    assert checked_answers(client.get("/me/questionnaires/phq9").data) == {}
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/me/").data)})
    # Still held for their owner, on this device or any other.
    owner = app.test_client()
    assert sign_in(owner, world.patient_user.email).location == "/me/questionnaires/phq9"
    assert checked_answers(owner.get("/me/questionnaires/phq9").data) == answers()


def test_held_answers_expire(app, client, world, session, clock):
    sign_in(client, world.patient_user.email)
    token, key = open_form(client)
    clock.advance(minutes=31)
    client.post("/me/questionnaires/phq9",
                data={**answers(), "submission_key": key, "csrf_token": token})
    clock.advance(minutes=60, seconds=1)
    assert sign_in(app.test_client(), world.clinician.email).location == "/clinic/patients"
    assert session.scalar(select(func.count(HeldAnswers.id))) == 0  # gone at any sign-in
    assert sign_in(client, world.patient_user.email).location == "/me/"
    assert checked_answers(client.get("/me/questionnaires/phq9").data) == {}


def test_a_disclosure_sent_after_the_session_ended_alerts_at_once(client, world, session,
                                                                  clock):
    """Risk is never lost: the alert opens now, and the crisis resources show with it, even if
    the patient never signs in again."""
    sign_in(client, world.patient_user.email)
    token, key = open_form(client)
    clock.advance(minutes=31)
    response = client.post("/me/questionnaires/phq9",
                           data={**answers(item_9=2), "submission_key": key,
                                 "csrf_token": token})
    assert response.status_code == 200
    page = response.data.decode()
    assert "help is here now" in page and "has been told" in page
    assert 'action="/login"' in page and "Your answers are kept" in page
    alerts = session.scalars(select(Alert).where(Alert.patient_id == world.patient.id)).all()
    assert len(alerts) == 1 and alerts[0].crisis
    assert session.scalar(select(func.count(Assessment.id))) == 0

    # Signed in again (on the page's own form), the patient sends the form they get back:
    # one record, and still the one alert for the one disclosure.
    back = client.post("/login", data={"email": world.patient_user.email, "password": PASSWORD,
                                       "csrf_token": csrf_token(response.data)})
    form = client.get(back.location)
    assert checked_answers(form.data) == answers(item_9=2)
    sent = client.post("/me/questionnaires/phq9", data={
        **answers(item_9=2), "submission_key": key, "csrf_token": csrf_token(form.data)})
    assert sent.status_code == 302
    assert session.scalar(select(func.count(Assessment.id))) == 1
    assert session.scalar(select(func.count(Alert.id)).where(
        Alert.patient_id == world.patient.id)) == 1


def test_a_staff_form_sent_after_the_session_ended_says_nothing_was_saved(client, world,
                                                                         clock):
    sign_in(client, world.clinician.email)
    token = csrf_token(client.get("/exports/").data)
    clock.advance(minutes=16)
    response = client.post("/exports/fhir", data={"identifier": world.patient.identifier,
                                                  "csrf_token": token})
    assert response.status_code == 302 and response.location == "/login"
    assert b"Nothing was saved" in client.get("/login").data


def test_a_form_whose_cookie_is_gone_sends_the_person_to_sign_in(app, world):
    """A browser that dropped the session cookie: nobody to hold answers for, and a calm
    message instead of an error page; a staff form gets no crisis line."""
    client = app.test_client()
    response = client.post("/exports/fhir", data={"identifier": "x", "csrf_token": "x"})
    assert response.status_code == 302 and response.location == "/login"
    page = client.get("/login").data.decode()
    assert "You were signed out, so the form could not be sent" in page
    assert 'class="crisis-line"' not in page


def test_a_questionnaire_whose_cookie_is_gone_leads_with_the_crisis_lines(app, world, session):
    """Its answers cannot be attributed, so a disclosure in them reaches nobody: the sign-in
    page leads with the national crisis lines (no clinic is known), even for a browser that
    keeps no cookie at all."""
    response = app.test_client().post("/me/questionnaires/phq9",
                                      data={**answers(item_9=3), "csrf_token": "x"})
    assert response.status_code == 302 and response.location == "/login?help=now"
    cookieless = app.test_client()
    cookieless.delete_cookie("session")
    page = cookieless.get(response.location).data.decode()
    line = page.index('class="crisis-line"')
    assert line < page.index("<h1") and line < page.index('action="/login')
    assert 'href="tel:988"' in page and 'href="sms:988"' in page and 'href="tel:911"' in page
    assert world.clinic.crisis_phone not in page and world.clinic.name not in page
    assert session.scalar(select(func.count(Alert.id))) == 0  # nobody to alert about


def test_settings_are_whole_minutes_above_zero() -> None:
    from outcomes.config import ConfigurationError, settings_from_environment

    assert settings_from_environment({"STAFF_IDLE_MINUTES": "10"})["STAFF_IDLE_MINUTES"] == 10
    for bad in ("0", "-5", "ten", "1.5"):
        with pytest.raises(ConfigurationError, match="PATIENT_IDLE_MINUTES"):
            settings_from_environment({"PATIENT_IDLE_MINUTES": bad})


def test_a_form_sent_twice_at_once_after_the_session_ended_is_held_once(app, client, world,
                                                                        session, clock):
    """A double tap on a phone whose session has ended: both requests carry the same cookie
    and form; one held form, one alert, and no error page (threads, so PostgreSQL really
    runs them at once)."""
    sign_in(client, world.patient_user.email)
    token, key = open_form(client)
    cookie = client.get_cookie("session").value
    clock.advance(minutes=31)
    barrier = threading.Barrier(2)

    def send() -> int:
        phone = app.test_client()
        phone.set_cookie("session", cookie)
        barrier.wait()
        return phone.post("/me/questionnaires/phq9", data={
            **answers(item_9=1), "submission_key": key, "csrf_token": token}).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(lambda _: send(), range(2)))
    assert statuses == [200, 200]  # the sign-in page with the crisis resources, twice
    assert session.scalar(select(func.count(HeldAnswers.id))) == 1
    assert session.scalar(select(func.count(Alert.id)).where(
        Alert.patient_id == world.patient.id)) == 1
