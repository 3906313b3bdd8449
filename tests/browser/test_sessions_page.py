"""Session control in the browser (issue 12 items 3 and 5), against gunicorn in production
settings (TLS, CSRF on): a patient signed in on a phone and a laptop ends the laptop's session
from the phone's sessions page, and the laptop is signed out at its next click; signed in
again there, the phone changes the password, which signs the laptop out again and leaves the
phone signed in."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from outcomes.models import UserSession

from ..conftest import PASSWORD
from .conftest import check_page, expect, goto, sign_in

pytestmark = pytest.mark.browser

NEW_PASSWORD = "harbour lights at dusk"


def expect_signed_out_at_next_click(page, live_server: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name="Settings", exact=True).click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_a_patient_ends_another_session_and_changes_their_password(
        live_server, new_context, phone, world, session):
    patient = world.patient_user
    laptop = new_context(desktop=True).new_page()
    sign_in(laptop, live_server, patient.email)
    sign_in(phone, live_server, patient.email)

    goto(phone, f"{live_server}/account/sessions")
    expect(phone.get_by_role("heading", name="Where you are signed in")).to_be_visible()
    expect(phone.get_by_text("(this device)")).to_have_count(1)
    check_page(phone)
    phone.get_by_role("button", name=re.compile(r"^End the session on ")).click()
    expect(phone.get_by_text(re.compile(r"The session on .* has ended\."))).to_be_visible()
    expect(phone.get_by_role("button", name=re.compile(r"^End the session on "))).to_have_count(0)
    check_page(phone)

    expect_signed_out_at_next_click(laptop, live_server)

    sign_in(laptop, live_server, patient.email)
    phone.get_by_role("link", name="change your password").click()
    expect(phone.get_by_role("heading", name="Change your password")).to_be_visible()
    check_page(phone)
    phone.get_by_label("Your current password").fill("not the password")
    phone.get_by_label("Choose a password").fill(NEW_PASSWORD)
    phone.get_by_label("Type the password again").fill(NEW_PASSWORD)
    phone.get_by_role("button", name="Save my new password").click()
    expect(phone.get_by_text("That is not your current password", exact=False).first
           ).to_be_visible()
    check_page(phone)
    phone.get_by_label("Your current password").fill(PASSWORD)
    phone.get_by_label("Choose a password").fill(NEW_PASSWORD)
    phone.get_by_label("Type the password again").fill(NEW_PASSWORD)
    phone.get_by_role("button", name="Save my new password").click()
    expect(phone.get_by_text("Your password is changed.")).to_be_visible()
    expect(phone.get_by_role("heading", name="Where you are signed in")).to_be_visible()

    expect_signed_out_at_next_click(laptop, live_server)
    phone.get_by_role("navigation").get_by_role("link", name="Settings", exact=True).click()
    expect(phone.get_by_role("button", name="Sign out")).to_be_visible()
    sign_in(laptop, live_server, patient.email, NEW_PASSWORD)

    session.rollback()
    reasons = session.scalars(select(UserSession.ended_reason).where(
        UserSession.user_id == patient.id).order_by(UserSession.id)).all()
    assert reasons == ["ended_by_user", None, "password_changed", None]
