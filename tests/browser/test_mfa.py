"""Staff MFA in the browser (issue 12's "Done when"): over HTTPS with CSRF on, as in
production, a clinician sets up the authenticator app at their first sign-in, signs in with
its code, is refused the same code again, and signs in with a recovery code."""
from __future__ import annotations

from .conftest import (
    AUTHENTICATORS,
    check_page,
    enrol_on_page,
    expect,
    give_code,
    goto,
)
from ..conftest import PASSWORD


def give_password(page, live_server: str, email: str) -> None:
    goto(page, f"{live_server}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()


def test_a_clinician_enrols_signs_in_with_a_code_once_and_with_a_recovery_code(
        live_server, phone, world, screenshot):
    email = world.clinician.email
    give_password(phone, live_server, email)
    expect(phone.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    expect(phone.locator(".qr svg")).to_be_visible()
    screenshot(phone, "mfa-enrolment")
    # A wrong first code stores nothing and says so.
    phone.get_by_label("The 6-digit code your app shows now").fill("000000")
    phone.get_by_role("button", name="Confirm").click()
    expect(phone.get_by_text("That code is not right")).to_be_visible()
    codes = enrol_on_page(phone, email)
    assert len(set(codes)) == 10
    expect(phone.get_by_role("heading", name="Patients")).to_be_visible()
    check_page(phone)
    sign_out(phone)

    give_password(phone, live_server, email)
    code = AUTHENTICATORS[email].code()
    give_code(phone, code)
    expect(phone.get_by_role("button", name="Sign out")).to_be_visible()
    sign_out(phone)

    give_password(phone, live_server, email)
    give_code(phone, code)  # the same code again
    expect(phone.get_by_text("used already")).to_be_visible()
    expect(phone.get_by_role("button", name="Sign out")).to_have_count(0)
    check_page(phone)

    give_code(phone, codes[0])
    expect(phone.get_by_text("You signed in with a recovery code; 9 left")).to_be_visible()
    expect(phone.get_by_role("heading", name="Sign-in security")).to_be_visible()
    check_page(phone)
    sign_out(phone)
    give_password(phone, live_server, email)
    give_code(phone, codes[0])  # used up
    expect(phone.get_by_text("used already")).to_be_visible()
