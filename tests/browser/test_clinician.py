"""The clinician's side in the browser: a patient's new scores and alert reach the clinic at
once, the alert is acknowledged, and another clinic's patients stay out of reach."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

import instruments
from outcomes.models import Alert

from .conftest import check_page, expect, goto, sign_in
from .pages import (
    PCL5_ANSWERS,
    PHQ9_ANSWERS,
    RESULT_URL,
    open_questionnaire,
    submit,
    tap_answers,
)

pytestmark = pytest.mark.browser

NOTE = "Called the patient at 14:10; safe, safety plan reviewed, seen tomorrow."


def test_clinician_sees_new_scores_and_acknowledges_the_alert(
        live_server, new_context, factory, world, session):
    # Alphabetically first, but without an alert: the patient with one must come first.
    factory.patient(world.clinic, world.clinician, with_login=False, name="Aaron Abbott")
    patient_id, clinician_id = world.patient.id, world.clinician.id
    name = world.patient.display_name

    patient_page = new_context().new_page()
    sign_in(patient_page, live_server, world.patient_user.email)
    for key, answers in (("pcl5", PCL5_ANSWERS), ("phq9", PHQ9_ANSWERS)):
        open_questionnaire(patient_page, live_server, key)
        tap_answers(patient_page, key, answers)
        submit(patient_page, status=302)
        expect(patient_page).to_have_url(RESULT_URL)

    page = new_context().new_page()
    sign_in(page, live_server, world.clinician.email)
    expect(page).to_have_url(f"{live_server}/clinic/patients")
    check_page(page)
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    row = rows.first
    headers = page.locator("thead th").all_inner_texts()
    expect(row.locator("td").nth(headers.index("Patient"))).to_contain_text(name)
    expect(row.locator("td").nth(headers.index("Alert"))).to_contain_text("PHQ-9 item 9 · '")
    for measure, key, answers in (("PCL-5", "pcl5", PCL5_ANSWERS), ("PHQ-9", "phq9", PHQ9_ANSWERS)):
        cell = row.locator("td").nth(headers.index(f"{measure} from → latest"))
        total = instruments.score(key, answers).total  # one score, no course: since first
        expect(cell).to_have_text(re.compile(rf"^\s*since first {total} → {total}\s*$"),
                                  use_inner_text=True)
    expect(rows.nth(1)).to_contain_text("Aaron Abbott")

    row.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    alert_box = page.locator("#alerts .alert-box")
    expect(alert_box).to_have_count(1)
    expect(alert_box).to_contain_text("Open")
    expect(alert_box).to_contain_text("PHQ-9 item 9")
    expect(page.locator(".chart .main-svg").first).to_be_visible()
    check_page(page)

    alert_box.get_by_label("What was done").fill(NOTE)
    alert_box.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Alert acknowledged.")).to_be_visible()
    expect(page.locator("#alerts .alert-box")).to_have_count(0)
    acknowledged = page.locator("#alerts details")
    acknowledged.get_by_text("Acknowledged alerts (1)").click()
    expect(acknowledged).to_contain_text(NOTE)
    expect(acknowledged).to_contain_text(world.clinician.email)
    check_page(page)

    session.rollback()
    alert = session.scalar(select(Alert).where(Alert.patient_id == patient_id))
    assert not alert.is_open
    assert (alert.acknowledged_by_id, alert.acknowledgement_note) == (clinician_id, NOTE)

    # Back on the list the alert no longer counts as open.
    page.get_by_role("navigation").get_by_role("link", name="Patients").click()
    headers = page.locator("thead th").all_inner_texts()
    alert_cell = page.locator("tbody tr").filter(has_text=name).locator("td").nth(
        headers.index("Alert"))
    expect(alert_cell).to_have_text("—")
    check_page(page)


def test_another_clinics_patient_is_not_found(live_server, phone, app, world, session):
    other_id = world.other_patient.id
    sign_in(phone, live_server, world.clinician.email)

    goto(phone, f"{live_server}/clinic/patients/999999", status=404)
    missing = phone.locator("main").inner_text()
    check_page(phone)
    for path in (f"/clinic/patients/{other_id}", f"/clinic/patients/{other_id}/paper/pcl5"):
        goto(phone, live_server + path, status=404)
        expect(phone.get_by_role("heading", level=1)).to_have_text("Page not found")
        # Exactly as a patient who does not exist: nothing tells the two apart.
        assert phone.locator("main").inner_text() == missing
        check_page(phone)


def test_a_patient_cannot_open_another_patients_result(live_server, phone, world, factory):
    other = factory.assessment(world.other_patient, "gad7", [1, 1, 1, 1, 1, 1, 1])
    sign_in(phone, live_server, world.patient_user.email)
    for path in (f"/me/results/{other.id}",
                 f"/clinic/patients/{world.other_patient.id}"):
        goto(phone, live_server + path, status=404)
        check_page(phone)
