"""Issue 12 item 4's browser test of the clinic's settings, against gunicorn in production
settings (TLS, CSRF on): an admin mistypes the clinic's time zone and is told which zone was
meant, nothing saved; then changes the zone and the crisis phone, and a patient's pages follow
at once (the date a questionnaire shows, the number on the crisis screen). Production requires
staff MFA, which the page says cannot be turned off.
"""
from __future__ import annotations

import pytest

from outcomes.models import Clinic

from ..helpers import RECORDS_LATE
from .conftest import check_page, expect, goto, sign_in

pytestmark = pytest.mark.browser


def test_an_admin_changes_the_zone_and_crisis_phone_and_patients_see_them(
        app, session, world, factory, live_server, phone, new_context):
    admin = factory.staff(world.clinic, "admin")
    # 23:00 on 19 June in New York, the clinic's zone: 04:00 on 20 June in London.
    gad7 = factory.assessment(world.patient, "gad7", [0] * 7, at=RECORDS_LATE)
    sign_in(phone, live_server, world.patient_user.email)
    goto(phone, f"{live_server}/me/results/{gad7.id}")
    expect(phone.get_by_text("Completed 19 Jun 2025, 23:00.")).to_be_visible()

    desk = new_context(desktop=True).new_page()
    sign_in(desk, live_server, admin.email)
    goto(desk, f"{live_server}/clinic/settings")
    expect(desk.get_by_role("heading", level=1)).to_have_text("Clinic settings")
    check_page(desk)
    # Production: the second factor for staff is shown as required, with no control to untick.
    expect(desk.get_by_text("this server requires a second factor of every clinician and "
                            "admin")).to_be_visible()
    expect(desk.locator("input[type=checkbox]")).to_have_count(0)

    zone = desk.get_by_label("Time zone")
    expect(zone).to_have_value("America/New_York")
    zone.fill("Europe/Lodnon")
    desk.get_by_label("Crisis phone shown to patients").fill("415 555 0123")
    desk.get_by_role("button", name="Save the clinic's details").click()
    expect(desk.get_by_role("alert")).to_contain_text("The settings could not be saved")
    expect(desk.locator("#timezone-error")).to_have_text(
        "“Europe/Lodnon” is not a time zone this server knows. Did you mean Europe/London?")
    expect(desk.get_by_label("Time zone")).to_have_attribute("aria-invalid", "true")
    check_page(desk)
    session.expire_all()
    clinic = session.get(Clinic, world.clinic.id)
    assert (clinic.timezone, clinic.crisis_phone) == ("America/New_York", "+1 555 0100")

    desk.get_by_label("Time zone").fill("Europe/London")
    desk.get_by_role("button", name="Save the clinic's details").click()
    expect(desk.get_by_text("Saved: crisis phone, time zone.")).to_be_visible()
    expect(desk.get_by_label("Crisis phone shown to patients")).to_have_value("(415) 555-0123")
    expect(desk.get_by_label("Time zone")).to_have_value("Europe/London")
    check_page(desk)

    # The patient's next pages follow: the same questionnaire on London's calendar, and the
    # clinic's new number on the crisis screen, ready to dial.
    phone.reload()
    expect(phone.get_by_text("Completed 20 Jun 2025, 04:00.")).to_be_visible()
    goto(phone, f"{live_server}/me/help")
    call = phone.get_by_role("link", name="Call Harbour Clinic: (415) 555-0123")
    expect(call).to_have_attribute("href", "tel:(415)555-0123")
    check_page(phone)

    # The admin's page works on a phone too (360 px: long hints, the zone's suggestions).
    admin_phone = new_context().new_page()
    sign_in(admin_phone, live_server, admin.email)
    goto(admin_phone, f"{live_server}/clinic/settings")
    check_page(admin_phone)
