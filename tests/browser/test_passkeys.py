"""Passkeys in the browser (issue 12 item 2): over HTTPS with CSRF on, as in production, a
clinician adds a passkey from their security page and signs in with it instead of the code;
without script the code page offers only the code.

The authenticator is Chromium's virtual one (the DevTools protocol's WebAuthn domain), a
platform authenticator that verifies its user. WebAuthn takes a host name as its relying
party id, never an IP address (Chromium: "This is an invalid domain"), so the server here is
opened as https://localhost:<port>, its PUBLIC_BASE_URL (the ``localhost_server`` fixture);
the run's certificate names 127.0.0.1, and Chromium trusts its key whatever the name (the
SPKI allow-list), so the page is still a secure context without certificate errors, which
WebAuthn also requires.
"""
from __future__ import annotations

import pytest

from ..conftest import PASSWORD
from .conftest import AUTHENTICATORS, PHONE, check_page, expect, give_code, goto, sign_in

VIRTUAL_AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                         "hasUserVerification": True, "isUserVerified": True}


def give_password(page, base_url: str, email: str) -> None:
    goto(page, f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your code")).to_be_visible()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()


def test_a_clinician_adds_a_passkey_and_signs_in_with_it(localhost_server, phone, world,
                                                         browser, screenshot):
    base_url, email = localhost_server, world.clinician.email
    devtools = phone.context.new_cdp_session(phone)
    devtools.send("WebAuthn.enable")
    authenticator = devtools.send("WebAuthn.addVirtualAuthenticator",
                                  {"options": VIRTUAL_AUTHENTICATOR})["authenticatorId"]

    sign_in(phone, base_url, email)  # sets up the authenticator app, as a first sign-in does
    goto(phone, f"{base_url}/account/security")
    expect(phone.get_by_text("You have no passkey.")).to_be_visible()
    phone.get_by_role("link", name="Add a passkey").click()
    expect(phone.get_by_role("heading", name="Add a passkey")).to_be_visible()
    expect(phone.get_by_text("This browser cannot make passkeys")).to_be_hidden()
    check_page(phone)
    screenshot(phone, "passkey-new")
    phone.get_by_label("A name for this passkey").fill("Work laptop")
    phone.get_by_role("button", name="Create the passkey").click()
    expect(phone.get_by_text("Your passkey “Work laptop” is added")).to_be_visible()
    expect(phone.get_by_role("heading", name="Sign-in security")).to_be_visible()
    expect(phone.locator(".passkeys strong")).to_have_text(["Work laptop"])
    check_page(phone)
    credentials = devtools.send("WebAuthn.getCredentials",
                                {"authenticatorId": authenticator})["credentials"]
    assert [credential["rpId"] for credential in credentials] == ["localhost"]
    sign_out(phone)

    give_password(phone, base_url, email)
    check_page(phone)
    phone.get_by_role("button", name="Use a passkey").click()
    expect(phone.get_by_role("button", name="Sign out")).to_be_visible()
    expect(phone.get_by_role("heading", name="Patients")).to_be_visible()
    check_page(phone)
    sign_out(phone)

    # Without script, the code page offers the code alone, and the code still signs in.
    without_script = browser.new_context(**PHONE, java_script_enabled=False)
    try:
        page = without_script.new_page()
        give_password(page, base_url, email)
        expect(page.get_by_role("button", name="Use a passkey")).to_be_hidden()
        give_code(page, AUTHENTICATORS[email].code())
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    finally:
        without_script.close()
