"""Every form of the app with CSRF protection on, over HTTPS, as in production.

The forms are not listed by hand: each role (no one, a patient, a clinician, an admin) walks
the pages it can reach from the app's own links, and every ``<form method=post>`` found is
sent twice, as a browser would send it (Referer: its page): without its token (refused by the
CSRF check, nothing changes) and with the token from the page (not refused). Every POST route
of ``app.url_map`` must have been reached that way, unless it is listed in ``EXEMPT`` with
the reason. The unit tests elsewhere turn CSRF off; these keep it on.
"""
from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from outcomes import clock, create_app
from outcomes.extensions import csrf, db
from outcomes.models import AuditEvent
from outcomes.services import enrolment
from outcomes.services.audit import Actor

from .conftest import PASSWORD, base_config, csrf_token

BASE_URL = "https://outcomes.test"
#: POST routes no form of the app reaches, each with the reason.
EXEMPT: dict[str, str] = {
    # Their forms show where the clinic has web push (VAPID keys), which this app has not.
    "patient.push_subscribe": "test_patient_settings.py posts it without and with its token",
    "patient.push_unsubscribe": "test_patient_settings.py posts it without and with its token",
    # Reached between the password and the code, or with an authenticator set up and the
    # identity confirmed moments before: test_mfa.py posts them without a token, and
    # browser/test_mfa.py (sign-in) and test_mfa.py's CSRF test with one.
    "auth.second_factor": "test_mfa.py and browser/test_mfa.py, without and with its token",
    "auth.enrol_at_sign_in": "test_mfa.py and browser/test_mfa.py, without and with its token",
    "auth.replace_authenticator": "test_mfa.py posts it without and with its token",
    "auth.new_recovery_codes": "test_mfa.py posts it without and with its token",
    # The new-password form opens with a reset link's token, which the crawler has not.
    "auth.choose_new_password": "test_password_resets.py posts it without and with its token",
    # A staff invitation's password form opens with a staff token, which the crawler has not;
    # revoking needs an open staff invitation, which its clinic has not.
    "auth.accept_staff_invitation_link": "test_staff_admin.py posts it without and with its token",
    "clinician.revoke_staff_invitation_link": "test_staff_admin.py posts it without and with "
                                              "its token",
    # The crawler has one session per role, so the sessions page offers no other to end.
    "auth.end_session": "test_user_sessions.py posts it without and with its token",
    "auth.end_other_sessions": "test_user_sessions.py posts it without and with its token",
    # Passkeys need a browser's authenticator, which the crawler has not.
    "auth.passkey_sign_in_options": "test_passkeys.py posts it without and with its token",
    "auth.passkey_sign_in": "test_passkeys.py posts it without and with its token",
    "auth.passkey_registration_options": "test_passkeys.py posts it without and with its token",
    "auth.add_passkey": "test_passkeys.py posts it without and with its token",
    "auth.rename_passkey": "test_passkeys.py posts it without and with its token",
    "auth.remove_passkey": "test_passkeys.py posts it without and with its token",
    # Re-admission needs a discharged patient, which the crawler's clinic has not.
    "clinician.readmit_patient": "test_patient_admin.py posts it without and with its token",
    # Its button shows only for a patient who added an extra sign-in step.
    "clinician.reset_patient_sign_in_steps": "test_patient_factor_reset.py posts it without "
                                             "and with its token",
    # Their buttons show only while a contact change waits for its link.
    "patient.resend_contact": "test_contact_changes.py posts it without and with its token",
    "patient.cancel_contact": "test_contact_changes.py posts it without and with its token",
}
MAX_PAGES_PER_ROLE = 150


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = create_app({**base_config(database_url), "WTF_CSRF_ENABLED": True})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def refusals(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reasons of the CSRF refusals since the list was last cleared. Flask-WTF sends every
    refusal (token or referrer) through ``_error_response``; counting there does not depend on
    how the app words or answers a refusal."""
    reasons: list[str] = []
    refuse = csrf._error_response

    def record(reason: str) -> None:
        reasons.append(reason)
        refuse(reason)

    monkeypatch.setattr(csrf, "_error_response", record)
    return reasons


@dataclass
class People:
    """Who signs in (by email; None is no one) and the invitation code a patient was given."""

    emails: dict[str, str | None]
    invitation_code: str


@pytest.fixture
def people(app, factory, world, session) -> People:
    """A clinic with something behind every form: an open alert and an assessment to correct,
    a course with an infusion, a patient still to accept an invitation, an admin."""
    admin = factory.staff(world.clinic, "admin")
    invited = factory.patient(world.clinic, world.clinician, with_login=False,
                              name="Robin Invited")
    factory.assessment(world.patient, "phq9", [1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    course = factory.course(world.patient,
                            started_on=clock.clinic_today(world.clinic) - dt.timedelta(days=3))
    factory.infusion(course, clock.utcnow() - dt.timedelta(days=1))
    with app.app_context():
        issued = enrolment.issue_invitation(session, Actor(world.clinician), invited)
        session.commit()
    return People({"anonymous": None, "patient": world.patient_user.email,
                   "clinician": world.clinician.email, "admin": admin.email}, issued.token)


@dataclass
class Form:
    """A POST form as a page shows it: where it posts, and what a browser would send."""

    role: str
    page: str
    action: str
    fields: list[tuple[str, str]]
    #: For a form shown in answer to another form's POST (no page to GET it from): the client
    #: that saw it and the token of that page.
    client: FlaskClient | None = None
    token: str | None = None


class Page(HTMLParser):
    """The links and POST forms of one HTML page, each form with the values a browser would
    send untouched: hidden and filled-in fields, the checked (or first) radio of each group,
    checked boxes, the selected (or first) option, textareas. The token is left out."""

    def __init__(self, path: str, html: str) -> None:
        super().__init__()
        self.path = path
        self.links: list[str] = []
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []
        self._fields: list[tuple[str, str]] | None = None
        self._radios: dict[str, str] = {}
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._textarea: tuple[str, list[str]] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(urldefrag(urljoin(self.path, a["href"])).url)
        elif tag == "form" and a.get("method", "get").lower() == "post":
            self._fields, self._radios = [], {}
            self.forms.append((urljoin(self.path, a.get("action") or self.path), self._fields))
        elif tag == "option" and self._select is not None:
            self._select[1].append((a.get("value", ""), "selected" in a))
        elif self._fields is None or not a.get("name") or a["name"] == "csrf_token":
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "radio":
                if "checked" in a or a["name"] not in self._radios:
                    self._radios[a["name"]] = a.get("value", "on")
            elif kind == "checkbox":
                if "checked" in a:
                    self._fields.append((a["name"], a.get("value", "on")))
            elif kind not in {"submit", "button", "reset", "image", "file"}:
                self._fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select = (a["name"], [])
        elif tag == "textarea":
            self._textarea = (a["name"], [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._fields is None:
            return
        if tag == "textarea" and self._textarea is not None:
            self._fields.append((self._textarea[0], "".join(self._textarea[1])))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            name, options = self._select
            chosen = [value for value, selected in options if selected] or [
                value for value, _ in options if value] or [""]
            self._fields.append((name, chosen[0]))
            self._select = None
        elif tag == "form":
            self._fields.extend(self._radios.items())
            self._fields = None


def signed_in_client(app: Flask, email: str | None) -> FlaskClient:
    """A client over HTTPS, signed in through the login form (with its token) if ``email``."""
    client = app.test_client()
    if email is None:
        return client
    page = client.get("/login", base_url=BASE_URL)
    response = client.post("/login", base_url=BASE_URL,
                           headers={"Referer": f"{BASE_URL}/login"},
                           data={"email": email, "password": PASSWORD,
                                 "csrf_token": csrf_token(page.data)})
    assert response.status_code == 302, response.data[:300]
    return client


def walk(app: Flask, role: str, client: FlaskClient) -> list[Form]:
    """The POST forms on every page ``role`` reaches from the pages without parameters."""
    starts = [rule.rule for rule in app.url_map.iter_rules()
              if "GET" in rule.methods and not rule.arguments]
    queue, seen, forms = deque(starts), set(), []
    while queue and len(seen) < MAX_PAGES_PER_ROLE:
        path = queue.popleft()
        if path in seen or not path.startswith("/") or path.startswith(("//", "/static/")):
            continue
        seen.add(path)
        response = client.get(path, base_url=BASE_URL, buffered=True)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        page = Page(path, response.text)
        forms += [Form(role, path, action, fields) for action, fields in page.forms]
        queue.extend(link for link in page.links if urlsplit(link).netloc == "")
    return forms


def post_endpoint(app: Flask, action: str) -> str:
    """The endpoint a form's action reaches by POST (or why it reaches none)."""
    try:
        endpoint, _ = app.url_map.bind("outcomes.test").match(urlsplit(action).path,
                                                              method="POST")
    except HTTPException as error:
        return f"no POST route ({error.code}) for {action}"
    return endpoint


def audit_rows(session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(AuditEvent))


def test_every_post_route_refuses_a_missing_token_and_accepts_its_form(
        app, people, session, refusals):
    queue = deque(form for role, email in people.emails.items()
                  for form in walk(app, role, signed_in_client(app, email)))
    tested: set[str] = set()
    problems: list[str] = []
    while queue:
        form = queue.popleft()
        endpoint = post_endpoint(app, form.action)
        if endpoint in tested:
            continue
        tested.add(endpoint)
        client = form.client or signed_in_client(app, people.emails[form.role])
        token = form.token or csrf_token(client.get(form.page, base_url=BASE_URL).data)
        headers = {"Referer": f"{BASE_URL}{form.page}"}
        # What a person types that no page holds: the code of their invitation.
        fields = [(name, people.invitation_code if name == "token" and not value else value)
                  for name, value in form.fields]

        refusals.clear()
        before = audit_rows(session)
        refused = client.post(form.action, data=MultiDict(fields), headers=headers,
                              base_url=BASE_URL, buffered=True)
        if not refusals:
            problems.append(f"{endpoint}: sent without a token, answered "
                            f"{refused.status_code} and was not refused")
        elif audit_rows(session) != before:
            problems.append(f"{endpoint}: refused, yet something was recorded")

        refusals.clear()
        sent = client.post(form.action, data=MultiDict([*fields, ("csrf_token", token)]),
                           headers=headers, base_url=BASE_URL, buffered=True)
        if refusals or sent.status_code >= 500:
            problems.append(f"{endpoint}: its own form with the page's token got "
                            f"{sent.status_code} {refusals}")
        elif sent.mimetype == "text/html" and sent.status_code < 300:
            # A form shown in answer to this one (an invitation's code opens the account
            # form), tried next, before another form changes what it depends on.
            answer = Page(urlsplit(form.action).path, sent.text)
            queue.extendleft(Form(form.role, answer.path, action, shown, client,
                                  csrf_token(sent.data))
                             for action, shown in reversed(answer.forms))

    post_routes = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    unreached = sorted(post_routes - tested - EXEMPT.keys())
    strays = sorted(endpoint for endpoint in tested if endpoint not in post_routes)
    assert not unreached, f"POST routes no form reached (add data or list in EXEMPT): {unreached}"
    assert not strays, strays
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("referer", "accepted"), [
    (f"{BASE_URL}/login", True),
    (None, False),                                 # the header missing
    ("https://elsewhere.example/login", False),    # a form on another site
    ("http://outcomes.test/login", False),         # this site over plain HTTP
])
def test_over_https_a_form_must_come_from_a_page_of_this_site(
        app, world, refusals, referer, accepted):
    client = app.test_client()
    token = csrf_token(client.get("/login", base_url=BASE_URL).data)
    headers = {"Referer": referer} if referer else {}
    response = client.post("/login", base_url=BASE_URL, headers=headers, data={
        "email": world.clinician.email, "password": PASSWORD, "csrf_token": token})
    assert (response.status_code == 302) is accepted
    assert bool(refusals) is not accepted


@pytest.mark.parametrize(("referer", "accepted"), [
    ("https://outcomes.example.org/login", True),
    (None, False),
    ("https://127.0.0.1:8000/login", False),  # the address gunicorn listens on, not the public one
])
def test_behind_a_trusted_proxy_its_scheme_and_host_are_the_ones_checked(
        database_url, world, refusals, referer, accepted):
    """TLS ends at the proxy (TRUSTED_PROXIES=1): the request is HTTPS by X-Forwarded-Proto,
    so the strict check applies, against the public host the proxy forwards."""
    app = create_app({**base_config(database_url), "WTF_CSRF_ENABLED": True,
                      "TRUSTED_PROXIES": 1})
    client = app.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "outcomes.example.org",
                 "X-Forwarded-For": "203.0.113.7"}
    page = client.get("/login", base_url="http://127.0.0.1:8000", headers=forwarded)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    response = client.post("/login", base_url="http://127.0.0.1:8000", headers={
        **forwarded, **({"Referer": referer} if referer else {})}, data={
        "email": world.clinician.email, "password": PASSWORD, "csrf_token": csrf_token(page.data)})
    assert (response.status_code == 302) is accepted
    assert bool(refusals) is not accepted
    with app.app_context():
        db.engine.dispose()
