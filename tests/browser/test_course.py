"""The infusion course in the browser at phone width: a clinician starts a course, records an
infusion with its vitals (a value out of bounds is refused first, nothing stored), and the
dashboard shows the course's progress and filters by it."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from outcomes.models import InfusionVersion

from .conftest import check_page, expect, sign_in
from .pages import fill_infusion_form

pytestmark = pytest.mark.browser


def versions(session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(InfusionVersion))


def test_a_clinician_records_an_infusion_on_a_phone_and_the_dashboard_shows_it(
        live_server, phone, world, session):
    name = world.patient.display_name
    sign_in(phone, live_server, world.clinician.email)
    phone.get_by_role("link", name=name).click()
    phone.get_by_role("link", name="Start a course").click()
    check_page(phone)
    phone.get_by_label("Planned infusions").fill("6")
    phone.get_by_role("button", name="Start the course").click()
    expect(phone.locator("#course")).to_contain_text("infusion 0 of 6")

    phone.get_by_role("link", name="Record infusion 1").click()
    check_page(phone)
    fill_infusion_form(phone)
    phone.get_by_label("Systolic before (mmHg)").fill("420")  # a typing slip
    phone.get_by_text("Dissociation", exact=True).click()  # tap the label, not the box
    phone.get_by_role("button", name="Record the infusion").click()
    summary = phone.locator("#error-summary")
    expect(summary).to_contain_text("Systolic pressure (before) must be between 50 and 300")
    check_page(phone)
    assert versions(session) == 0

    phone.get_by_label("Systolic before (mmHg)").fill("124")
    expect(phone.get_by_label("Dissociation", exact=True)).to_be_checked()  # kept on the page
    phone.get_by_role("button", name="Record the infusion").click()
    expect(phone.get_by_text("Infusion 1 recorded.")).to_be_visible()
    expect(phone.locator("#course")).to_contain_text("0.5 mg/kg (40.0 mg)")
    assert versions(session) == 1

    phone.get_by_role("navigation").get_by_role("link", name="Patients").click()
    phone.get_by_label("Course").select_option("active")
    phone.get_by_role("button", name="Show").click()
    rows = phone.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(name)
    expect(rows.first).to_contain_text("Active 1/6")  # infusions done of planned
    check_page(phone)
