"""The app as a clinic deploys it: gunicorn over HTTPS with production settings and CSRF on.

A patient signs in and sends a PHQ-9 with item 9 above 0 (the crisis resources first); a
clinician signs in, starts a course, records an infusion and acknowledges the alert. Every
form is a real POST over TLS that passes Flask-WTF's token and strict referrer checks, and
every response, static files included, carries the security headers.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from outcomes.models import Alert, InfusionVersion

from .conftest import check_page, expect, sign_in
from .pages import (
    PHQ9_ANSWERS,
    RESULT_URL,
    check_crisis_resources_come_first,
    fill_infusion_form,
    open_questionnaire,
    submit,
    tap_answers,
)

pytestmark = pytest.mark.browser

NOTE = "Called the patient; safe, safety plan reviewed, seen tomorrow."
EVERY_RESPONSE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                  "referrer-policy": "same-origin"}
HSTS = "max-age=31536000; includeSubDomains"


def record_traffic(context) -> tuple[list, list]:
    """The context's requests and responses, kept for the checks at the end."""
    requests, responses = [], []
    context.on("request", lambda request: requests.append(request))
    context.on("response", lambda response: responses.append(response))
    return requests, responses


def check_traffic(base_url: str, requests: list, responses: list) -> None:
    """Everything went over TLS to the server; each POST named its own page as Referer (the
    strict CSRF check needs it) and nothing else; every answer had the security headers."""
    assert requests and all(request.url.startswith(base_url + "/") for request in requests)
    posts = [request for request in requests if request.method == "POST"]
    assert posts
    for post in posts:
        assert post.headers.get("referer", "").startswith(base_url + "/"), post.url
    statics = [response for response in responses if "/static/" in response.url]
    assert statics, "no static file was loaded"
    for response in responses:
        headers = response.all_headers()  # .headers leaves security headers out
        for name, value in EVERY_RESPONSE.items():
            assert headers.get(name) == value, (response.url, name, headers.get(name))
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", "")
        if response not in statics:  # WhiteNoise's headers are fixed per file, not per request
            assert headers.get("strict-transport-security") == HSTS, response.url


def test_over_https_a_patient_discloses_and_a_clinician_records_and_acknowledges(
        live_server, new_context, world, session):
    assert live_server.startswith("https://")
    patient_id, clinician_id = world.patient.id, world.clinician.id

    patient_context = new_context()
    patient_traffic = record_traffic(patient_context)
    patient = patient_context.new_page()
    sign_in(patient, live_server, world.patient_user.email)
    cookies = patient_context.cookies()
    assert cookies and all(cookie["secure"] and cookie["httpOnly"] for cookie in cookies)
    open_questionnaire(patient, live_server, "phq9")
    tap_answers(patient, "phq9", PHQ9_ANSWERS)  # item 9: "Several days"
    submit(patient, status=302)
    expect(patient).to_have_url(RESULT_URL)
    check_crisis_resources_come_first(patient, world.clinic.crisis_phone)
    check_page(patient)
    check_traffic(live_server, *patient_traffic)

    clinician_context = new_context()
    clinician_traffic = record_traffic(clinician_context)
    clinician = clinician_context.new_page()
    sign_in(clinician, live_server, world.clinician.email)
    clinician.get_by_role("link", name=world.patient.display_name).click()
    clinician.get_by_role("link", name="Start a course").click()
    clinician.get_by_label("Planned infusions").fill("6")
    clinician.get_by_role("button", name="Start the course").click()
    expect(clinician.locator("#course")).to_contain_text("infusion 0 of 6")
    clinician.get_by_role("link", name="Record infusion 1").click()
    fill_infusion_form(clinician)
    clinician.get_by_role("button", name="Record the infusion").click()
    expect(clinician.get_by_text("Infusion 1 recorded.")).to_be_visible()
    check_page(clinician)

    alert_box = clinician.locator("#alerts .alert-box")
    expect(alert_box).to_have_count(1)
    alert_box.get_by_label("What was done").fill(NOTE)
    alert_box.get_by_role("button", name="Acknowledge").click()
    expect(clinician.get_by_text("Alert acknowledged.")).to_be_visible()
    check_page(clinician)
    check_traffic(live_server, *clinician_traffic)

    session.rollback()  # a fresh snapshot: the server committed on its own connections
    alert = session.scalar(select(Alert).where(Alert.patient_id == patient_id))
    assert (alert.kind, alert.crisis, alert.is_open) == ("suicide_risk", True, False)
    assert (alert.acknowledged_by_id, alert.acknowledgement_note) == (clinician_id, NOTE)
    assert session.scalar(select(func.count()).select_from(InfusionVersion)) == 1
