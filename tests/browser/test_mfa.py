"""Staff MFA in the browser (issue 12's "Done when"): over HTTPS with CSRF on, as in
production, a clinician sets up the authenticator app at their first sign-in, signs in with
its code, is refused the same code again, and signs in with a recovery code; a patient, who
need not, adds an authenticator app and is asked for its code from then on."""
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


def test_a_patient_may_add_an_authenticator_and_is_then_asked_for_its_code(
        live_server, phone, world):
    """Patients are never required to, but may: from their security page, after confirming
    their password; from then on their sign-in asks for the code."""
    email = world.patient_user.email
    give_password(phone, live_server, email)
    expect(phone.get_by_role("button", name="Sign out")).to_be_visible()  # no code asked
    goto(phone, f"{live_server}/account/security")
    expect(phone.get_by_text("It is your choice")).to_be_visible()
    check_page(phone)
    phone.get_by_role("link", name="Set up an authenticator app").click()
    expect(phone.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    check_page(phone)
    phone.get_by_label("Your password, or the code your authenticator app shows now") \
        .fill(PASSWORD)
    phone.get_by_role("button", name="Confirm").click()
    codes = enrol_on_page(phone, email)
    assert len(codes) == 10
    expect(phone.get_by_role("heading", name="Sign-in security")).to_be_visible()
    expect(phone.get_by_text("You sign in with a code from your authenticator app")) \
        .to_be_visible()
    sign_out(phone)

    give_password(phone, live_server, email)
    give_code(phone, AUTHENTICATORS[email].code())
    expect(phone.get_by_role("button", name="Sign out")).to_be_visible()
    goto(phone, f"{live_server}/me/")
    check_page(phone)
