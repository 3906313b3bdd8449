"""A patient's details in the browser (issue 12 item 4), over HTTPS with CSRF on, as in
production, on a 360-px phone: a clinician corrects a patient's name with a reason, sees the
change in the history, discharges the patient (who leaves the dashboard and whose home then
says their questionnaires are closed) and re-admits them."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from outcomes.models import AuditEvent, PatientRevision

from .conftest import check_page, expect, goto, sign_in

pytestmark = pytest.mark.browser


def test_a_clinician_corrects_a_name_sees_the_history_discharges_and_readmits(
        live_server, phone, new_context, world, session):
    patient = world.patient
    sign_in(phone, live_server, world.clinician.email)
    goto(phone, f"{live_server}/clinic/patients/{patient.id}")
    phone.get_by_role("link", name="Details and history").click()
    expect(phone.get_by_role("heading", name="Details and history")).to_be_visible()
    check_page(phone)

    phone.get_by_label("Name", exact=True).fill("Pat Exemple")
    phone.get_by_role("button", name="Save the details").click()  # no reason yet
    expect(phone.get_by_text("Give the reason for the change.").first).to_be_visible()
    check_page(phone)
    phone.get_by_label("Reason for the change").first.fill("Name misspelt at enrolment")
    phone.get_by_role("button", name="Save the details").click()
    expect(phone.get_by_text("Saved: name changed.")).to_be_visible()
    history = phone.locator("#version-2")
    expect(history).to_contain_text("Name misspelt at enrolment")
    expect(history).to_contain_text("Pat Example")
    expect(history).to_contain_text("Pat Exemple")
    expect(history).to_contain_text(world.clinician.email)
    expect(phone.locator("#version-1")).to_contain_text("As enrolled")
    check_page(phone)

    care = phone.locator("section", has=phone.get_by_role("heading", name="Discharge"))
    care.get_by_label("Reason for the change").fill("Course completed, doing well")
    phone.get_by_role("button", name="Discharge the patient").click()
    expect(phone.get_by_text("Discharged: nothing is due for them")).to_be_visible()
    expect(phone.locator("#version-3")).to_contain_text("Course completed, doing well")
    check_page(phone)

    goto(phone, f"{live_server}/clinic/patients")
    expect(phone.get_by_text("1 discharged patient is not listed")).to_be_visible()
    expect(phone.get_by_role("link", name="Pat Exemple")).to_have_count(0)
    phone.get_by_role("link", name="Show discharged patients").click()
    expect(phone.get_by_role("link", name="Pat Exemple")).to_be_visible()
    check_page(phone)

    own = new_context().new_page()
    sign_in(own, live_server, world.patient_user.email)
    expect(own.get_by_text("Your clinic has closed your questionnaires for now")).to_be_visible()
    expect(own.get_by_role("link", name="Start")).to_have_count(0)
    check_page(own)

    phone.get_by_role("link", name="Pat Exemple").click()
    phone.get_by_role("link", name="Re-admit").click()
    care = phone.locator("section", has=phone.get_by_role("heading", name="Re-admit"))
    care.get_by_label("Reason for the change").fill("Back for a new course")
    phone.get_by_role("button", name="Re-admit the patient").click()
    expect(phone.get_by_text("Re-admitted")).to_be_visible()
    check_page(phone)

    own.reload()
    expect(own.get_by_role("link", name="Start").first).to_be_visible()

    session.rollback()
    versions = session.scalars(select(PatientRevision).where(
        PatientRevision.patient_id == patient.id).order_by(PatientRevision.version)).all()
    assert [(v.version, v.display_name, v.discharged) for v in versions] == [
        (1, "Pat Example", False), (2, "Pat Exemple", False), (3, "Pat Exemple", True),
        (4, "Pat Exemple", False)]
    assert {"patient.update_details", "patient.discharge", "patient.readmit"} <= set(
        session.scalars(select(AuditEvent.action).where(AuditEvent.patient_id == patient.id)))
