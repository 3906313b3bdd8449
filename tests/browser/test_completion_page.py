"""Questionnaire completion on a phone: the demo clinic's outcomes page, its completion tables
and the dashboard's link to them pass the page checks at 360 px."""
from __future__ import annotations

import pytest

from .conftest import check_page, expect, sign_in

pytestmark = pytest.mark.browser


def test_completion_on_a_phone(live_server, phone, demo):
    clinician, _ = demo
    sign_in(phone, live_server, *clinician)
    figure = phone.locator(".completion-figure a")
    expect(figure).to_contain_text("last 30 and 90 days")
    figure.click()
    section = phone.locator("#completion")
    expect(section.locator("table caption")).to_have_text(["Last 30 days", "Last 90 days"])
    expect(section.locator("h3")).to_have_text(["Last 30 days", "Last 90 days"])
    section.scroll_into_view_if_needed()
    check_page(phone)
