"""Issue 12's browser tests of password recovery, against gunicorn in production settings
(TLS, CSRF on): a patient who forgot their password asks for a link on a phone, gets it by
email through a real SMTP server (the jobs' tick, as the worker would), chooses a new
password, and their session on another device ends; a clinician issues a patient a reset
link and QR code from the patient's page, and the patient uses it. The tokens reach no line
of the server's log.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest

from outcomes import clock

from ..conftest import PASSWORD
from ..notification_world import tick
from .conftest import check_page, expect, goto, sign_in

pytestmark = pytest.mark.browser

NEW_PASSWORD = "harbour lights at dusk"


def choose_new_password(page, live_server: str) -> None:
    """On the reset link's page (its script has posted the token): the new password, then
    the sign-in page says to use it."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    assert "#" not in page.url, "the page's script takes the token out of the address bar"
    check_page(page)
    page.get_by_label("Choose a password").fill(NEW_PASSWORD)
    page.get_by_label("Type the password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save my new password").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.get_by_text("Sign in with your new password")).to_be_visible()
    check_page(page)


def test_a_patient_resets_a_forgotten_password_by_email(
        app, session, world, live_server, server_log, mailbox, phone, new_context, monkeypatch):
    patient = world.patient_user
    laptop = new_context(desktop=True).new_page()
    sign_in(laptop, live_server, patient.email)  # a session left open elsewhere

    goto(phone, f"{live_server}/login")
    phone.get_by_role("link", name="Forgot your password?").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Forgot your password?")
    check_page(phone)
    phone.get_by_label("Your email address").fill(patient.email)
    phone.get_by_role("button", name="Send me a link").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Check your email")
    check_page(phone)

    tick(app)  # (the patient's due questionnaires are reminded of too)
    [mail] = [received for received in mailbox.received
              if received.message["Subject"] == "Choose a new password"]
    assert mail.recipients == [patient.email]
    [link] = re.findall(re.escape(live_server) + r"/reset#[A-Za-z0-9_-]+",
                        mail.message.get_content())
    goto(phone, link)
    choose_new_password(phone, live_server)

    phone.get_by_label("Email").fill(patient.email)
    phone.get_by_label("Password").fill(NEW_PASSWORD)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("button", name="Sign out")).to_be_visible()

    # The laptop's session ended with the reset.
    laptop.reload()
    expect(laptop.get_by_role("heading", level=1)).to_have_text("Sign in")
    # The link was used: opening it again shows the calm page, with a way to ask again.
    other_phone = new_context().new_page()
    goto(other_phone, link)  # its script posts the token; the answer is a 404 page
    expect(other_phone.get_by_role("heading", level=1)).to_have_text(
        "This link has been used or has expired")
    expect(other_phone.get_by_role("link", name="Ask for a new link")).to_be_visible()
    check_page(other_phone)

    # The worker's next minute (its jobs run once a period) tells the owner.
    later = clock.utcnow() + dt.timedelta(minutes=1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    tick(app)
    assert [received.recipients for received in mailbox.received
            if received.message["Subject"] == "Your password was changed"] == [[patient.email]]
    log = server_log.read_text(errors="replace")
    assert '"POST /reset/new-password HTTP' in log
    assert link.partition("#")[2] not in log and NEW_PASSWORD not in log


def test_a_clinician_issues_a_reset_qr_link_and_the_patient_uses_it(
        app, session, world, live_server, server_log, phone, new_context):
    clinician = new_context(desktop=True).new_page()
    sign_in(clinician, live_server, world.clinician.email, PASSWORD)
    goto(clinician, f"{live_server}/clinic/patients/{world.patient.id}")
    clinician.get_by_role("button", name="Issue a password reset link").click()
    expect(clinician.get_by_role("heading", level=1)).to_have_text(
        f"Password reset for {world.patient.display_name}")
    expect(clinician.locator(".qr svg")).to_be_visible()
    link = clinician.locator(".invitation-link a").get_attribute("href")
    assert link and link.startswith(f"{live_server}/reset#"), link
    check_page(clinician)

    goto(phone, link)  # what the phone's camera opens from the QR code
    choose_new_password(phone, live_server)
    sign_in(phone, live_server, world.patient_user.email, NEW_PASSWORD)

    log = server_log.read_text(errors="replace")
    assert "/password-reset HTTP" in log and link.partition("#")[2] not in log
