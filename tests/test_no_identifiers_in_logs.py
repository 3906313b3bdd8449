"""No names, MRNs, invitation tokens or passwords in the server's logs.

gunicorn runs as in production (the browser tests' ``live_server``: TLS, production settings,
CSRF on, access log on) and a plain HTTP client does what staff and a patient do: sign in,
search the dashboard by name, look a patient up by MRN for the FHIR export, issue an
invitation, and accept it on the patient's phone. Then the whole log is searched.
"""
from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .browser.conftest import (  # noqa: F401  (fixtures: gunicorn with its log)
    app,
    live_server,
    server_log,
    tls_certificate,
)
from .conftest import PASSWORD, csrf_token
from .helpers import enrol_authenticator

NAME = "Quinlan Marsh-Okafor"
MRN = "MRN-58213-QX"
NEW_PASSWORD = "lanterns over the harbour"


@dataclass
class Page:
    status: int
    url: str
    body: str


class Phone:
    """A client with its own cookies that posts forms as a browser does (CSRF token, and the
    Referer that Flask-WTF's check over HTTPS asks for)."""

    def __init__(self, base_url: str, context) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            urllib.request.HTTPSHandler(context=context))

    def open(self, path: str, data: dict[str, str] | None = None,
             referer: str | None = None) -> Page:
        request = urllib.request.Request(
            self.base_url + path,
            data=urllib.parse.urlencode(data).encode() if data is not None else None,
            headers={"Referer": self.base_url + referer} if referer else {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return Page(response.status, response.url, response.read().decode())
        except urllib.error.HTTPError as error:
            return Page(error.code, error.url, error.read().decode())

    def submit(self, page_path: str, action: str, fields: dict[str, str]) -> Page:
        """Open the page, then send its form to ``action`` with ``fields``."""
        token = csrf_token(self.open(page_path).body.encode())
        return self.open(action, {**fields, "csrf_token": token}, referer=page_path)


def read_log_through(path: Path, last: str, seconds: float = 10) -> str:
    """The log, once it holds the last request's line (written after the response is sent)."""
    deadline = time.monotonic() + seconds
    while last not in (log := path.read_text(errors="replace")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


def test_names_mrns_tokens_and_passwords_stay_out_of_the_server_log(
        live_server: str, server_log: Path, tls_certificate, factory, world, app,
        session) -> None:
    patient = factory.patient(world.clinic, world.clinician, with_login=False,
                              identifier=MRN, name=NAME)
    # Production asks staff for their authenticator's code after the password.
    authenticator = enrol_authenticator(app, session, world.clinician)
    staff = Phone(live_server, tls_certificate.ssl_context)
    asked = staff.submit("/login", "/login", {"email": world.clinician.email,
                                              "password": PASSWORD})
    assert asked.status == 200 and asked.url.endswith("/login/code")
    code = authenticator.code()
    signed_in = staff.submit("/login/code", "/login/code", {"code": code})
    assert signed_in.status == 200 and signed_in.url.endswith("/clinic/patients")

    found = staff.submit("/clinic/patients", "/clinic/patients/search",
                         {"q": NAME.split()[1]})
    assert found.status == 200 and NAME in found.body

    looked_up = staff.submit("/exports/", "/exports/fhir", {"identifier": MRN})
    assert looked_up.status == 200 and looked_up.url.endswith(f"/patients/{patient.id}/fhir")

    issued = staff.submit(f"/clinic/patients/{patient.id}",
                          f"/clinic/patients/{patient.id}/invitation", {})
    token = re.search(r'href="[^"]*/invite#([A-Za-z0-9_-]+)"', issued.body).group(1)

    phone = Phone(live_server, tls_certificate.ssl_context)
    opened = phone.submit("/invite", "/invite", {"token": token})
    assert opened.status == 200 and "Create my account" in opened.body
    accepted = phone.open("/invite/accept", {
        "csrf_token": csrf_token(opened.body.encode()), "token": token,
        "email": "quinlan@example.org", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        referer="/invite")
    assert accepted.status == 200 and accepted.url.endswith("/me/"), accepted.body[:300]

    # The control: the access log does record query strings, so what is absent was not sent.
    assert phone.open("/exports/fhir?identifier=CONTROL-7731").status == 405

    log = read_log_through(server_log, "CONTROL-7731")
    for request_line in ("POST /login", "POST /clinic/patients/search", "POST /exports/fhir",
                         "POST /invite/accept", "CONTROL-7731"):
        assert request_line in log, f"{request_line!r} is not in the log: is it logging?"
    for secret in (*NAME.split(), MRN, token, PASSWORD, NEW_PASSWORD, code):
        assert secret not in log, f"{secret!r} is in the server's log"
