"""Session control (issue 12 items 3 and 5): every sign-in opens a row (services.user_sessions)
whose secret the cookie holds, each request finds it open or is signed out; a person lists
their sessions and ends any other, or all; changes their password (ending the others); an
admin signs a colleague out everywhere; deactivation and a password reset end the account's
sessions at once (deactivation: tests/test_staff_admin.py). A session ended through one
server process is refused by another.
SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from outcomes import clock as app_clock
from outcomes import create_app
from outcomes.extensions import db
from outcomes.models import Alert, AuditEvent, Delivery, HeldAnswers, User, UserSession
from outcomes.services import password_resets, user_sessions
from outcomes.services.audit import Actor

from .conftest import PASSWORD, base_config, csrf_token, sign_in
from .helpers import T0, enrol_authenticator, running_app
from .notification_world import PinnedClock

NEW_PASSWORD = "a new password of some length"
ROOT = Path(__file__).resolve().parents[1]
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36")
FIREFOX_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 "
                   "Firefox/121.0")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    return PinnedClock(monkeypatch, T0)


def device(app: Flask, user_agent: str):
    """A test client whose every request says it is ``user_agent``."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client


def rows(session, user: User) -> list[UserSession]:
    session.rollback()
    session.expire_all()
    return list(session.scalars(select(UserSession).where(UserSession.user_id == user.id)
                                .order_by(UserSession.id)))


def actions(session, action: str) -> list[AuditEvent]:
    session.rollback()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(AuditEvent.id)))


def signed_in(client, path: str = "/me/") -> bool:
    response = client.get(path)
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def session_ids(page: bytes) -> list[int]:
    """The ids of the sessions the sessions page offers to end."""
    return [int(found) for found in re.findall(rb'name="session_id" value="(\d+)"', page)]


# -- the device label -------------------------------------------------------------------------

@pytest.mark.parametrize("agent, label", [
    (CHROME_ANDROID, "Chrome on Android"),
    (FIREFOX_WINDOWS, "Firefox on Windows"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", "Edge on macOS"),
    ("Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1", "Chrome on iPhone"),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
     "Safari/537.36 OPR/105.0.0.0", "Opera on Linux"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/120.0.6099.28 Safari/537.36", "Chrome on Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Trident/7.0", "A browser on Windows"),
    ("curl/8.4.0", "Unknown browser"),
    ("", "Unknown browser"),
    (None, "Unknown browser"),
])
def test_the_device_label_names_browser_and_system(agent, label):
    assert user_sessions.device_label(agent) == label


# -- sign-in, requests, sign-out --------------------------------------------------------------

def test_a_sign_in_opens_a_row_whose_secret_only_the_cookie_holds(app, world, session):
    phone = device(app, CHROME_ANDROID)
    sign_in(phone, world.patient_user)
    [row] = rows(session, world.patient_user)
    assert (row.device, row.ip_address, row.ended_at) == ("Chrome on Android", "127.0.0.1", None)
    cookie = app.session_interface.get_signing_serializer(app).loads(
        phone.get_cookie("session").value)
    secret = cookie[user_sessions.COOKIE_KEY]
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest() != secret
    assert row.secret_hash not in str(cookie)


def test_a_session_ended_in_the_database_is_refused_at_the_next_request(app, world, session):
    phone, laptop = device(app, CHROME_ANDROID), device(app, FIREFOX_WINDOWS)
    sign_in(phone, world.patient_user)
    sign_in(laptop, world.patient_user)
    first, second = rows(session, world.patient_user)
    with app.app_context():
        user_sessions.end_session(session.get(UserSession, first.id), "ended_by_user")
    session.commit()
    assert not signed_in(phone)
    assert signed_in(laptop)
    copy = app.test_client()  # the ended session's cookie, kept: refused too
    sign_in(copy, world.patient_user)
    assert len(rows(session, world.patient_user)) == 3


def test_signing_out_ends_this_session_only(app, world, session):
    phone, laptop = device(app, CHROME_ANDROID), device(app, FIREFOX_WINDOWS)
    sign_in(phone, world.patient_user)
    cookie = phone.get_cookie("session").value
    sign_in(laptop, world.patient_user)
    assert phone.post("/logout").status_code == 302
    assert [row.ended_reason for row in rows(session, world.patient_user)] == ["signed_out",
                                                                               None]
    assert signed_in(laptop)
    replay = app.test_client()
    replay.set_cookie("session", cookie)
    assert not signed_in(replay)


def test_activity_is_written_at_most_once_a_minute(app, client, world, session, clock):
    sign_in(client, world.patient_user)
    signed_at = rows(session, world.patient_user)[0].last_seen_at
    clock.advance(seconds=59)
    assert signed_in(client)
    assert rows(session, world.patient_user)[0].last_seen_at == signed_at
    clock.advance(seconds=1)
    assert signed_in(client)
    assert rows(session, world.patient_user)[0].last_seen_at == T0 + dt.timedelta(minutes=1)


def test_a_time_out_ends_the_row_but_an_old_copy_of_the_cookie_does_not(app, client, world,
                                                                        session, clock):
    sign_in(client, world.patient_user)
    copy = client.get_cookie("session").value
    for _ in range(2):
        clock.advance(minutes=20)
        assert signed_in(client)
    thief = app.test_client()
    thief.set_cookie("session", copy)
    assert not signed_in(thief)  # its own clock has run out: refused, the session goes on
    assert rows(session, world.patient_user)[0].ended_at is None
    assert signed_in(client)
    clock.advance(minutes=31)  # the patient's default idle timeout is 30 minutes
    assert not signed_in(client)
    [row] = rows(session, world.patient_user)
    assert (row.ended_reason, row.ended_at) == ("timed_out", clock.now)


def test_a_timed_out_cookie_is_refused_once_its_owner_signs_out_everywhere(app, client, world,
                                                                          session, clock):
    """A timed-out session still answers the form its page sent (its answers held, a risk
    alerted); after "sign out everywhere" a copy of its cookie holds nothing and alerts
    nobody."""
    sign_in(client, world.patient_user)
    page = client.get("/me/questionnaires/phq9").data
    key = re.search(rb'name="submission_key" type="hidden" value="([0-9a-f]+)"', page)
    copy = client.get_cookie("session").value
    clock.advance(minutes=31)
    assert not signed_in(client)
    assert rows(session, world.patient_user)[0].ended_reason == "timed_out"
    elsewhere = app.test_client()
    sign_in(elsewhere, world.patient_user)
    elsewhere.post("/account/sessions/end-all")
    thief = app.test_client()
    thief.set_cookie("session", copy)
    answer = thief.post("/me/questionnaires/phq9", data={
        **{f"item_{number}": "1" for number in range(1, 9)}, "item_9": "2",
        "submission_key": key.group(1).decode()})
    assert answer.status_code == 302 and answer.location.startswith("/login")
    session.rollback()
    assert session.scalar(select(func.count(HeldAnswers.id))) == 0
    assert session.scalar(select(func.count(Alert.id))) == 0
    assert {row.ended_reason for row in rows(session, world.patient_user)} == {
        "signed_out_everywhere"}


def test_a_sign_in_awaiting_its_second_factor_ends_with_the_accounts_sessions(
        app, world, factory, session):
    """It has no row yet: the account's session token, which ending the account's sessions
    changes, stops it, so the code given after an admin's sign-out signs nobody in."""
    authenticator = enrol_authenticator(app, session, world.clinician)
    admin = factory.staff(world.clinic, "admin")
    admin_client, halfway = app.test_client(), app.test_client()
    sign_in(admin_client, admin)
    assert halfway.post("/login", data={"email": world.clinician.email,
                                        "password": PASSWORD}).location == "/login/code"
    admin_client.post("/clinic/staff/end-sessions", data={"user_id": world.clinician.id})
    answer = halfway.post("/login/code", data={"code": authenticator.code()})
    assert answer.status_code == 302 and answer.location.startswith("/login")
    assert not signed_in(halfway, "/clinic/patients")
    assert rows(session, world.clinician) == []


# -- the sessions page ------------------------------------------------------------------------

def test_the_page_lists_the_open_sessions_with_this_device_marked(app, world, session, clock):
    phone, laptop = device(app, CHROME_ANDROID), device(app, FIREFOX_WINDOWS)
    sign_in(laptop, world.patient_user)
    clock.advance(minutes=5)
    sign_in(phone, world.patient_user)
    ended = app.test_client()
    sign_in(ended, world.patient_user)
    ended.post("/logout")
    page = phone.get("/account/sessions")
    assert page.status_code == 200
    html = page.data.decode()
    assert "Chrome on Android <span class=\"muted\">(this device)</span>" in html
    assert "Firefox on Windows" in html and "Unknown browser" not in html  # the ended one
    # Times in the clinic's zone (not UTC).
    local = app_clock.to_local(T0, world.clinic.timezone).strftime("%-d %b %Y, %H:%M")
    assert f"Signed in {local}" in html
    laptop_row = rows(session, world.patient_user)[0]
    assert session_ids(page.data) == [laptop_row.id]  # no button to end this device's own


def test_the_page_leaves_out_sessions_that_timed_out_unnoticed(app, world, session, clock):
    phone, laptop = device(app, CHROME_ANDROID), device(app, FIREFOX_WINDOWS)
    sign_in(laptop, world.patient_user)
    sign_in(phone, world.patient_user)
    for minutes in (10, 20, 30, 40):  # the phone stays active; the laptop is left alone
        clock.advance(minutes=10)
        page = phone.get("/account/sessions").data.decode()
        # Idle beyond its 30 minutes, allowing for the last minute's unwritten activity.
        assert ("Firefox on Windows" in page) == (minutes < 31), minutes


def test_ending_another_session_signs_it_out_at_once_and_is_audited(app, world, session):
    phone, laptop = device(app, CHROME_ANDROID), device(app, FIREFOX_WINDOWS)
    sign_in(phone, world.patient_user)
    sign_in(laptop, world.patient_user)
    [phone_id] = session_ids(laptop.get("/account/sessions").data)
    answer = laptop.post("/account/sessions/end", data={"session_id": phone_id})
    assert answer.status_code == 303 and answer.location == "/account/sessions"
    assert b"The session on Chrome on Android has ended." in laptop.get(answer.location).data
    assert not signed_in(phone)
    assert signed_in(laptop)
    assert [row.ended_reason for row in rows(session, world.patient_user)] == [
        "ended_by_user", None]
    [event] = actions(session, "session.end")
    assert (event.actor_id, event.object_type, event.object_id) == (
        world.patient_user.id, "user_session", str(phone_id))
    again = laptop.post("/account/sessions/end", data={"session_id": phone_id})
    assert b"That session had ended already." in laptop.get(again.location).data
    assert len(actions(session, "session.end")) == 1


def test_another_persons_session_is_404_and_stays_open(app, world, session):
    theirs = app.test_client()
    sign_in(theirs, world.clinician)
    [their_row] = rows(session, world.clinician)
    mine = app.test_client()
    sign_in(mine, world.patient_user)
    for session_id in (their_row.id, 999_999):
        assert mine.post("/account/sessions/end",
                         data={"session_id": session_id}).status_code == 404
    assert signed_in(theirs, "/clinic/patients")
    assert actions(session, "session.end") == []


@pytest.mark.parametrize("data", [{}, {"session_id": "x"}, {"session_id": ""}])
def test_a_broken_end_form_gets_a_message_and_changes_nothing(client, world, session, data):
    sign_in(client, world.patient_user)
    page = client.post("/account/sessions/end", data=data)
    assert page.status_code == 422 and b"The form was incomplete" in page.data
    assert rows(session, world.patient_user)[0].ended_at is None


def test_signing_out_everywhere_else_keeps_this_session(app, world, session):
    clients = [app.test_client() for _ in range(3)]
    for client in clients:
        sign_in(client, world.clinician)
    answer = clients[0].post("/account/sessions/end-others")
    assert answer.status_code == 303
    assert b"You are signed out everywhere else." in clients[0].get(answer.location).data
    assert [signed_in(client, "/clinic/patients") for client in clients] == [True, False,
                                                                            False]
    assert [row.ended_reason for row in rows(session, world.clinician)] == [
        None, "ended_by_user", "ended_by_user"]
    [event] = actions(session, "session.end_others")
    assert event.details == {"sessions_ended": 2}


def test_signing_out_everywhere_ends_this_session_too(app, world, session):
    clients = [app.test_client() for _ in range(2)]
    for client in clients:
        sign_in(client, world.patient_user)
    answer = clients[0].post("/account/sessions/end-all")
    assert answer.status_code == 303 and answer.location == "/login"
    assert b"You have signed out everywhere" in clients[0].get("/login").data
    assert not any(signed_in(client) for client in clients)
    assert {row.ended_reason for row in rows(session, world.patient_user)} == {
        "signed_out_everywhere"}
    assert actions(session, "session.end_all")[0].details == {"sessions_ended": 2}


def test_the_account_pages_ask_a_signed_out_visitor_to_sign_in(client):
    for path in ("/account/sessions", "/account/password"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.location.startswith("/login")


# -- changing one's password ------------------------------------------------------------------

def change(client, current=PASSWORD, new=NEW_PASSWORD, confirm=None):
    return client.post("/account/password", data={
        "current_password": current, "password": new, "confirm": confirm or new})


def test_changing_the_password_ends_the_other_sessions_and_tells_the_owner(app, world,
                                                                            session):
    here, elsewhere = app.test_client(), app.test_client()
    sign_in(here, world.patient_user)
    sign_in(elsewhere, world.patient_user)
    assert here.get("/account/password").status_code == 200
    answer = change(here)
    assert answer.status_code == 303 and answer.location == "/account/sessions"
    assert signed_in(here) and not signed_in(elsewhere)
    assert [row.ended_reason for row in rows(session, world.patient_user)] == [
        None, "password_changed"]
    [notice] = session.scalars(select(Delivery).where(
        Delivery.user_id == world.patient_user.id)).all()
    assert (notice.account_notice, notice.channel) == ("password_changed", "email")
    [event] = actions(session, "account.password_change")
    assert event.details == {"other_sessions_ended": 1}
    assert app.test_client().post("/login", data={
        "email": world.patient_user.email, "password": PASSWORD}).status_code == 401
    sign_in(app.test_client(), world.patient_user, NEW_PASSWORD)


@pytest.mark.parametrize("current, new, confirm, status, message", [
    ("not my password at all", NEW_PASSWORD, NEW_PASSWORD, 401,
     b"That is not your current password"),
    (PASSWORD, "short", "short", 422, b"The password must have 12 to 256 characters."),
    (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", 422, b"The two passwords do not match."),
    ("", NEW_PASSWORD, NEW_PASSWORD, 422, b"Enter your current password."),
])
def test_a_refused_password_change_says_why_and_changes_nothing(
        app, world, session, current, new, confirm, status, message):
    here, elsewhere = app.test_client(), app.test_client()
    sign_in(here, world.clinician)
    sign_in(elsewhere, world.clinician)
    hash_before = world.clinician.password_hash
    answer = change(here, current, new, confirm)
    assert answer.status_code == status and message in answer.data
    assert b"Your password was not changed" in answer.data
    assert signed_in(elsewhere, "/clinic/patients")
    session.rollback()
    assert session.get(User, world.clinician.id).password_hash == hash_before
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    failed = actions(session, "account.password_change_failed")
    assert len(failed) == (1 if status == 401 else 0)


def test_wrong_current_passwords_are_limited_per_account(database_url, world):
    app = create_app({**base_config(database_url), "RATELIMIT_ENABLED": True,
                      "RATELIMIT_STORAGE_URI": "memory://",
                      "SIGN_IN_RATE_LIMIT": "100 per minute",
                      "ACCOUNT_SIGN_IN_LIMIT": "3 per hour"})
    try:
        client = app.test_client()
        sign_in(client, world.patient_user)
        statuses = [change(client, current="not my password at all").status_code
                    for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert change(client).status_code == 429  # until the hour is up, even the right one
    finally:
        with app.app_context():
            db.engine.dispose()


# -- an admin, deactivation, a reset ----------------------------------------------------------

def test_an_admin_signs_a_colleague_out_everywhere(app, world, factory, session):
    admin = factory.staff(world.clinic, "admin")
    admin_client, colleague = app.test_client(), app.test_client()
    sign_in(admin_client, admin)
    sign_in(colleague, world.clinician)
    assert b"Sign " + world.clinician.email.encode() + b" out everywhere" in admin_client.get(
        "/clinic/staff").data
    answer = admin_client.post("/clinic/staff/end-sessions",
                               data={"user_id": world.clinician.id})
    assert answer.status_code == 303
    assert b"is signed out everywhere" in admin_client.get(answer.location).data
    assert not signed_in(colleague, "/clinic/patients")
    assert rows(session, world.clinician)[0].ended_reason == "ended_by_admin"
    [event] = actions(session, "staff.end_sessions")
    assert (event.actor_id, event.object_id, event.details) == (
        admin.id, str(world.clinician.id), {"sessions_ended": 1})
    sign_in(colleague, world.clinician)  # they may sign in again
    assert signed_in(colleague, "/clinic/patients")


def test_ending_a_colleagues_sessions_is_for_admins_of_their_clinic(app, world, factory,
                                                                    session):
    admin = factory.staff(world.clinic, "admin")
    others = app.test_client()
    sign_in(others, world.other_clinician)
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    for user_id in (world.other_clinician.id, world.patient_user.id, 999_999):
        assert admin_client.post("/clinic/staff/end-sessions",
                                 data={"user_id": user_id}).status_code == 404
    own = admin_client.post("/clinic/staff/end-sessions", data={"user_id": admin.id})
    assert own.status_code == 422 and b"your sessions page can" in own.data
    clinician = app.test_client()
    sign_in(clinician, world.clinician)
    assert clinician.post("/clinic/staff/end-sessions",
                          data={"user_id": admin.id}).status_code == 404
    assert signed_in(others, "/clinic/patients") and signed_in(admin_client, "/clinic/staff")
    assert actions(session, "staff.end_sessions") == []


def test_a_password_reset_ends_every_session_of_the_account(app, world, session):
    phone = app.test_client()
    sign_in(phone, world.patient_user)
    with app.test_request_context():
        issued = password_resets.issue_clinic_reset(session, Actor(world.clinician),
                                                    world.patient)
        session.commit()
        password_resets.redeem_reset(session, Actor(None), issued.token, NEW_PASSWORD)
        session.commit()
    assert not signed_in(phone)
    assert rows(session, world.patient_user)[0].ended_reason == "password_reset"


# -- CSRF -------------------------------------------------------------------------------------

@pytest.fixture
def csrf_app(database_url: str) -> Iterator[Flask]:
    with running_app({**base_config(database_url), "WTF_CSRF_ENABLED": True}) as app:
        yield app


def test_every_form_of_session_control_needs_its_token(csrf_app, world, factory, session):
    """A forged form (no token) is refused and ends nothing; the page's own form is accepted.
    (tests/test_csrf_forms.py's crawler has one session per role, so it never sees the
    buttons that end another session.)"""
    admin = factory.staff(world.clinic, "admin")
    clients = {}
    for name, user in (("admin", admin), ("clinician", world.clinician),
                       ("other", world.clinician), ("patient", world.patient_user),
                       ("patient elsewhere", world.patient_user)):
        clients[name] = csrf_app.test_client()
        token = csrf_token(clients[name].get("/login").data)
        clients[name].post("/login", data={"email": user.email, "password": PASSWORD,
                                           "csrf_token": token})
    sessions_page = clients["clinician"].get("/account/sessions").data
    [other_id] = session_ids(sessions_page)
    posts = [
        (clients["clinician"], "/account/sessions", "/account/sessions/end",
         {"session_id": other_id}),
        (clients["patient"], "/account/sessions", "/account/sessions/end-others", {}),
        (clients["patient"], "/account/password", "/account/password",
         {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
        (clients["patient"], "/account/sessions", "/account/sessions/end-all", {}),
        (clients["admin"], "/clinic/staff", "/clinic/staff/end-sessions",
         {"user_id": world.clinician.id}),
    ]
    for client, page, path, data in posts:
        ended_before = session.scalar(select(func.count()).select_from(UserSession).where(
            UserSession.ended_at.is_not(None)))
        assert client.post(path, data=data).status_code == 400, path
        assert session.scalar(select(func.count()).select_from(UserSession).where(
            UserSession.ended_at.is_not(None))) == ended_before, path
        token = csrf_token(client.get(page).data)
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 303, path


# -- across processes -------------------------------------------------------------------------

def serve(database_url: str, log: Path) -> Iterator[str]:
    """A server process of the app (gunicorn, one worker) on the test's database, as a
    second host would be; yields its base URL and stops it after."""
    environment = {
        "PATH": os.environ.get("PATH", ""), "OUTCOMES_ENV": "development",
        "DATABASE_URL": database_url, "SECRET_KEY": "two-processes-" + "s" * 40,
        "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST_KIB": "1024", "ARGON2_PARALLELISM": "1",
    }
    with log.open("ab") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--no-control-socket",
             "--bind", "127.0.0.1:0", "wsgi:app"],
            cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        base = None
        deadline = time.monotonic() + 30
        while base is None and time.monotonic() < deadline and server.poll() is None:
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)",
                              log.read_text(errors="replace"))
            base = found.group(1) if found else time.sleep(0.1)
        assert base, f"the server did not start:\n{log.read_text(errors='replace')}"
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


class Browser:
    """A cookie jar and its requests; the same cookie is sent to any port of 127.0.0.1."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())

    def get(self, url: str) -> tuple[str, bytes]:
        with self.opener.open(url, timeout=30) as response:
            return response.geturl(), response.read()

    def post(self, url: str, page: bytes, **data: object) -> tuple[str, bytes]:
        body = urllib.parse.urlencode({**data, "csrf_token": csrf_token(page)}).encode()
        with self.opener.open(url, data=body, timeout=30) as response:
            return response.geturl(), response.read()

    def sign_in(self, base: str, email: str) -> None:
        _, page = self.get(f"{base}/login")
        url, _ = self.post(f"{base}/login", page, email=email, password=PASSWORD)
        assert url == f"{base}/me/", url


def test_a_session_ended_through_one_process_is_refused_by_another(database_url, world,
                                                                     tmp_path):
    servers = [serve(database_url, tmp_path / f"server-{n}.log") for n in range(2)]
    first, second = (next(server) for server in servers)
    try:
        phone, laptop = Browser(), Browser()
        phone.sign_in(first, world.patient_user.email)
        assert phone.get(f"{first}/me/")[0] == f"{first}/me/"
        assert phone.get(f"{second}/me/")[0] == f"{second}/me/"  # one session, either host
        laptop.sign_in(second, world.patient_user.email)
        _, page = laptop.get(f"{second}/account/sessions")
        [phone_session] = session_ids(page)
        url, _ = laptop.post(f"{second}/account/sessions/end", page, session_id=phone_session)
        assert url == f"{second}/account/sessions"
        # The first process served the phone a moment ago; it refuses it now.
        assert phone.get(f"{first}/me/")[0].startswith(f"{first}/login")
        assert laptop.get(f"{first}/me/")[0] == f"{first}/me/"
    finally:
        for server in servers:
            server.close()
