"""The demo clinic's pages with months of data: they pass the page checks on a phone, and on
the SQLite run they are photographed for the README (docs/screenshots/)."""
from __future__ import annotations

import pytest

from .conftest import check_page, expect, sign_in

pytestmark = pytest.mark.browser


def wait_for_charts(page) -> None:
    """Every chart on the page drawn by Plotly."""
    charts = page.locator(".chart")
    for index in range(charts.count()):
        expect(charts.nth(index).locator(".main-svg").first).to_be_visible()


def test_clinician_pages_with_demo_data(live_server, new_context, demo, screenshot):
    clinician, _ = demo
    for desktop in (False, True):
        page = new_context(desktop=desktop).new_page()
        sign_in(page, live_server, *clinician)
        expect(page.locator("tbody tr")).to_have_count(12)
        check_page(page)
        if desktop:
            screenshot(page, "clinician-patients")
        # The first row: open alerts come first, so this record has the most to show.
        page.locator("tbody tr").first.get_by_role("link").first.click()
        expect(page.locator("#assessments-title")).to_be_visible()
        wait_for_charts(page)
        check_page(page)
        if desktop:
            screenshot(page, "clinician-patient")


def test_patient_pages_with_demo_data(live_server, phone, demo, screenshot):
    _, patient = demo
    sign_in(phone, live_server, *patient)
    wait_for_charts(phone)
    check_page(phone)
    screenshot(phone, "patient-home")
    phone.locator("section[aria-labelledby=recent-title] .card-list a").first.click()
    expect(phone.locator(".score-card")).to_be_visible()
    wait_for_charts(phone)
    check_page(phone)
    screenshot(phone, "patient-result")
