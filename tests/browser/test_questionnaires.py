"""A patient answers questionnaires on their phone: PCL-5 to its result, PHQ-9 to the crisis
screen (also from a form sent incomplete), and repeated submissions that store one record."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

import instruments
from outcomes.models import Alert, Assessment

from .conftest import check_page, expect, sign_in
from .pages import (
    GAD7_ANSWERS,
    PCL5_ANSWERS,
    PHQ9_ANSWERS,
    RESULT_URL,
    assessment_count,
    check_crisis_resources_come_first,
    open_questionnaire,
    submit,
    tap_answers,
)

pytestmark = pytest.mark.browser


def test_pcl5_incomplete_then_complete_shows_the_result(
        live_server, phone, world, session, screenshot):
    patient_id = world.patient.id
    sign_in(phone, live_server, world.patient_user.email)
    check_page(phone)
    open_questionnaire(phone, live_server, "pcl5")
    check_page(phone, keyboard=True)
    screenshot(phone, "patient-questionnaire")

    # Item 7 left blank: the page comes back with everything else kept and nothing stored.
    unanswered = 7
    tap_answers(phone, "pcl5", [None if number == unanswered else value
                                for number, value in enumerate(PCL5_ANSWERS, start=1)])
    expect(phone.locator("#progress-text")).to_have_text("19 of 20 answered")
    submit(phone, status=422)
    summary = phone.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(summary.get_by_role("heading")).to_have_text("1 question still needs an answer")
    expect(summary.get_by_role("link", name=f"Question {unanswered}")).to_have_attribute(
        "href", f"#item-{unanswered}")
    expect(phone.locator(f"#item-{unanswered}")).to_have_class(re.compile(r"\binvalid\b"))
    expect(phone.locator(f"#item-{unanswered} .error-message")).to_be_visible()
    expect(phone.locator("fieldset.invalid")).to_have_count(1)
    for number, value in enumerate(PCL5_ANSWERS, start=1):
        chosen = phone.locator(f'input[name="item_{number}"][value="{value}"]')
        if number == unanswered:
            expect(phone.locator(f'input[name="item_{number}"]:checked')).to_have_count(0)
        else:
            expect(chosen).to_be_checked()
    assert assessment_count(session, patient_id) == 0
    check_page(phone)

    summary.get_by_role("link", name=f"Question {unanswered}").click()
    tap_answers(phone, "pcl5", [PCL5_ANSWERS[number - 1] if number == unanswered else None
                                for number in range(1, 21)])
    submit(phone, status=302)
    expect(phone).to_have_url(RESULT_URL)

    expected = instruments.score("pcl5", PCL5_ANSWERS)
    expect(phone.locator(".score-card .total")).to_have_text(
        re.compile(rf"^\s*{expected.total}\s*/\s*80\s*$"))
    # Plotly draws the chart from the page's JSON; its SVG appears only if the script ran.
    expect(phone.locator(".chart .main-svg").first).to_be_visible()
    check_page(phone)

    assert assessment_count(session, patient_id) == 1
    stored = session.scalar(select(Assessment).where(Assessment.patient_id == patient_id))
    assert RESULT_URL.search(phone.url).group(1) == str(stored.id)
    assert stored.total == expected.total
    assert [answer.value for answer in stored.answers] == PCL5_ANSWERS
    assert stored.source == "patient"

    phone.get_by_role("link", name="Back to home").click()
    expect(phone.get_by_role("heading", name="Recently completed")).to_be_visible()
    expect(phone.locator(".chart .main-svg").first).to_be_visible()
    check_page(phone)


def test_phq9_item9_shows_crisis_resources_first_and_opens_an_alert(
        live_server, phone, world, session, screenshot):
    patient_id = world.patient.id
    crisis_phone = world.clinic.crisis_phone
    sign_in(phone, live_server, world.patient_user.email)
    open_questionnaire(phone, live_server, "phq9")
    check_page(phone, keyboard=True)
    tap_answers(phone, "phq9", PHQ9_ANSWERS)
    submit(phone, status=302)

    # The URL says nothing of the crisis (a neutral result address); the page does.
    expect(phone).to_have_url(RESULT_URL)
    check_crisis_resources_come_first(phone, crisis_phone)
    expected = instruments.score("phq9", PHQ9_ANSWERS)
    expect(phone.locator(".score-card .total")).to_have_text(
        re.compile(rf"^\s*{expected.total}\s*/\s*27\s*$"))
    check_page(phone)
    screenshot(phone, "patient-crisis")

    session.rollback()
    alert = session.scalar(select(Alert).where(Alert.patient_id == patient_id))
    assert alert is not None and alert.is_open
    assert (alert.kind, alert.value, alert.crisis) == ("suicide_risk", "positive", True)


def test_phq9_sent_incomplete_after_item9_still_shows_crisis_resources(
        live_server, phone, world, session):
    """No path skips the resources: not even a form sent back for a missing answer."""
    patient_id = world.patient.id
    sign_in(phone, live_server, world.patient_user.email)
    open_questionnaire(phone, live_server, "phq9")
    tap_answers(phone, "phq9", [None, *PHQ9_ANSWERS[1:]])  # item 1 blank, item 9 above 0
    submit(phone, status=422)

    check_crisis_resources_come_first(phone, world.clinic.crisis_phone)
    expect(phone.locator("#error-summary")).to_be_visible()
    expect(phone.locator("fieldset.invalid")).to_have_count(1)
    check_page(phone)
    assert assessment_count(session, patient_id) == 0
    alert = session.scalar(select(Alert).where(Alert.patient_id == patient_id))
    assert alert is not None and alert.is_open and alert.crisis


def test_a_double_tap_or_a_retry_stores_one_assessment(live_server, phone, world, session):
    """A double tap (chromium itself sends one request for it) and a retry of the very same
    form after a lost connection, which reaches the server, store one record."""
    patient_id = world.patient.id
    sign_in(phone, live_server, world.patient_user.email)
    open_questionnaire(phone, live_server, "gad7")
    check_page(phone, keyboard=True)
    tap_answers(phone, "gad7", GAD7_ANSWERS)

    posts = []
    phone.on("request", lambda request: request.method == "POST" and posts.append(request))
    phone.get_by_role("button", name="Send my answers").dblclick()
    expect(phone).to_have_url(RESULT_URL)
    result_url = phone.url
    check_page(phone)

    # The retry: the same form, sent again with the phone's cookies and, as a browser sends
    # it over HTTPS, the questionnaire's address as Referer (the CSRF check needs it).
    replay = phone.request.post(posts[0].url, data=posts[0].post_data, max_redirects=0,
                                headers={"Content-Type": "application/x-www-form-urlencoded",
                                         "Referer": posts[0].headers["referer"]})
    assert replay.status == 302, replay.status
    assert replay.headers["location"] in (result_url, result_url.removeprefix(live_server))
    assert assessment_count(session, patient_id) == 1


def test_back_then_send_again_stores_one_assessment(live_server, phone, world, session):
    """Back from the result reloads the questionnaire (under a new key) and chromium restores
    the answers; sending them again is a repeat, not a second record."""
    patient_id = world.patient.id
    sign_in(phone, live_server, world.patient_user.email)
    open_questionnaire(phone, live_server, "gad7")
    tap_answers(phone, "gad7", GAD7_ANSWERS)
    submit(phone, status=302)
    expect(phone).to_have_url(RESULT_URL)

    phone.go_back(wait_until="load")
    expect(phone.get_by_role("button", name="Send my answers")).to_be_visible()
    tap_answers(phone, "gad7", GAD7_ANSWERS)  # kept by the browser; tapped again to be sure
    submit(phone, status=302)
    expect(phone).to_have_url(RESULT_URL)
    assert assessment_count(session, patient_id) == 1
