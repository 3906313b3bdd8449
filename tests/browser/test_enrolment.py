"""A clinician enrols a patient; the patient accepts the invitation on their own phone."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from outcomes.models import Invitation, Patient

from .conftest import check_page, expect, goto, sign_in

pytestmark = pytest.mark.browser

NEW_PATIENT_PASSWORD = "river stones and quiet mornings"


def test_clinician_enrols_and_patient_accepts_invitation_once(
        live_server, new_context, world, session):
    clinician_page = new_context().new_page()
    sign_in(clinician_page, live_server, world.clinician.email)
    check_page(clinician_page)

    clinician_page.get_by_role("link", name="Add a patient").first.click()
    expect(clinician_page.get_by_role("heading", name="Add a patient")).to_be_visible()
    check_page(clinician_page)
    clinician_page.get_by_label("Clinic identifier").fill("MRN-4471")
    clinician_page.get_by_label("Patient's name").fill("Jordan Lee")
    clinician_page.get_by_label("Email (optional)").fill("jordan.lee@example.org")
    expect(clinician_page.get_by_label("Assigned clinician")).to_have_value(str(world.clinician.id))
    clinician_page.get_by_role("button", name="Add and create an invitation").click()

    expect(clinician_page.get_by_role("heading", name="Invitation for Jordan Lee")).to_be_visible()
    expect(clinician_page.locator(".qr svg")).to_be_visible()
    link = clinician_page.locator(".invitation-link a").get_attribute("href")
    # The token rides in the fragment, which the browser never sends: no server log has it.
    assert link and link.startswith(f"{live_server}/invite#"), link
    check_page(clinician_page)

    # The patient's own phone: nothing shared with the clinician's browser.
    patient_page = new_context().new_page()
    goto(patient_page, link)
    expect(patient_page.get_by_role("heading", name=f"Welcome to {world.clinic.name}")).to_be_visible()
    check_page(patient_page)
    email = patient_page.get_by_label("Your email address")
    expect(email).to_have_value("jordan.lee@example.org")
    patient_page.get_by_label("Choose a password").fill(NEW_PATIENT_PASSWORD)
    patient_page.get_by_label("Type the password again").fill(NEW_PATIENT_PASSWORD)
    patient_page.get_by_role("button", name="Create my account").click()

    expect(patient_page).to_have_url(f"{live_server}/me/")
    expect(patient_page.get_by_role("heading", name="Hello, Jordan")).to_be_visible()
    expect(patient_page.get_by_text("Your account is ready.")).to_be_visible()
    check_page(patient_page)

    # A second opening, even from the same phone, finds a dead link (the page posts the
    # token from the fragment, and the answer is the dead-link page).
    goto(patient_page, link)
    expect(patient_page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    assert "#" not in patient_page.url  # taken out of the address bar and the history entry
    check_page(patient_page)

    session.rollback()  # a fresh snapshot: the server committed after ours began
    patient = session.scalar(select(Patient).where(Patient.identifier == "MRN-4471"))
    assert patient.clinic_id == world.clinic.id
    assert patient.user is not None and patient.user.email == "jordan.lee@example.org"
    invitation = session.scalar(select(Invitation).where(Invitation.patient_id == patient.id))
    assert invitation.used_at is not None
