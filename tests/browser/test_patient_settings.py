"""A patient sets their reminders on their phone (360 px): turns them off, then on again by
email, with the keyboard as well as taps; changes their email, which is used once they follow
the link it receives (through a real SMTP server, sent by the jobs' tick as the worker
would), signed in or after signing in; and the service worker shows a push message. The
clinic's server sends email and web push."""
from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from outcomes import clock
from outcomes.channels.contacts import base64url_encode
from outcomes.models import Patient

from ..channel_servers import Mailbox
from ..notification_world import tick
from ..conftest import PASSWORD
from .conftest import SERVER_ENVIRONMENT, check_page, expect, goto, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def clinic_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's settings switch on email and web push (nothing is sent in these tests)."""
    key = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    for name, value in {"SMTP_HOST": "127.0.0.1", "SMTP_FROM": "clinic@example.org",
                        "VAPID_PRIVATE_KEY": base64url_encode(key.to_bytes(32, "big")),
                        "VAPID_SUBJECT": "mailto:it@example.org"}.items():
        monkeypatch.setitem(SERVER_ENVIRONMENT, name, value)


def until(found: Callable[[], list], page, seconds: float = 5) -> list:
    """What ``found`` returns once it is not empty (the browser's events and the worker run
    on their own time), or its last empty answer after ``seconds``."""
    for _ in range(int(seconds * 10)):
        answer = found()
        if answer:
            return answer
        page.wait_for_timeout(100)  # lets Playwright take in the browser's events
    return found()


@pytest.fixture
def reminded_by_email(session, world) -> Patient:
    """The world's patient, reminded by email at any hour (no quiet hours: the test runs at
    whatever time it is)."""
    world.patient.reminder_channels = ["email"]
    world.clinic.quiet_from = world.clinic.quiet_until = dt.time(8, 0)
    session.commit()
    return world.patient


def confirmation_link(mailbox: Mailbox, live_server: str, address: str) -> str:
    [mail] = [received for received in mailbox.received if received.recipients == [address]
              and received.message["Subject"] == "Confirm your new contact address"]
    [link] = re.findall(re.escape(live_server) + r"/confirm-contact#[A-Za-z0-9_-]+",
                        mail.message.get_content())
    return link


def change_email_on_settings(phone, live_server: str, address: str) -> None:
    """Asked for the password first (a phone left unlocked does not move the reminders), then
    back on the settings page to make the change."""
    goto(phone, f"{live_server}/me/settings")
    phone.get_by_label("Email address for reminders").fill(address)
    phone.get_by_role("button", name="Save my contact details").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    check_page(phone)
    phone.get_by_label("Your password, or the code").fill(PASSWORD)
    phone.get_by_role("button", name="Confirm").click()
    phone.wait_for_url(f"{live_server}/me/settings")
    phone.get_by_label("Email address for reminders").fill(address)
    phone.get_by_role("button", name="Save my contact details").click()
    expect(phone.get_by_role("status").filter(
        has_text="We sent an email with a link to your new email address")).to_be_visible()
    expect(phone.get_by_text("Waiting for confirmation")).to_be_visible()
    expect(phone.get_by_role("button", name="Send the link again")).to_be_visible()
    expect(phone.get_by_role("button", name="Cancel this change")).to_be_visible()
    expect(phone.get_by_role("link", name="Change my password")).to_be_visible()
    expect(phone.get_by_role("link", name="sign out everywhere")).to_be_visible()
    check_page(phone)


def reminder_recipients(mailbox: Mailbox) -> list[list[str]]:
    return [received.recipients for received in mailbox.received
            if received.message["Subject"] == "A questionnaire is ready for you"]


def test_a_patient_changes_their_email_and_the_next_reminder_goes_there(
        app, session, world, reminded_by_email, live_server, server_log, mailbox, phone,
        monkeypatch):
    sign_in_email = world.patient_user.email
    new_address = "robin.new@example.org"
    sign_in(phone, live_server, sign_in_email)
    change_email_on_settings(phone, live_server, new_address)

    tick(app)  # the link, to the new address; the first reminder, still to the old one
    link = confirmation_link(mailbox, live_server, new_address)
    assert reminder_recipients(mailbox) == [[sign_in_email]]

    goto(phone, link)  # its script posts the token
    expect(phone.get_by_role("status").filter(
        has_text="Your new email address is confirmed")).to_be_visible()
    expect(phone.get_by_text("You still sign in with your sign-in email")).to_be_visible()
    expect(phone.get_by_text("Waiting for confirmation")).to_be_hidden()
    assert link.partition("#")[2] not in phone.url
    check_page(phone)

    # The next clinic day's reminder goes to the new address; the sign-in email hears of the
    # change.
    later = clock.utcnow() + dt.timedelta(days=1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    tick(app)
    assert reminder_recipients(mailbox) == [[sign_in_email], [new_address]]
    assert [received.recipients for received in mailbox.received
            if received.message["Subject"] == "Your contact details were changed"] == [
        [sign_in_email]]
    session.expire_all()
    assert session.get(Patient, world.patient.id).user.email == sign_in_email
    log = server_log.read_text(errors="replace")
    assert '"POST /confirm-contact HTTP' in log and link.partition("#")[2] not in log


def test_a_link_opened_signed_out_is_confirmed_after_signing_in(
        app, session, world, reminded_by_email, live_server, mailbox, phone, new_context):
    new_address = "robin.elsewhere@example.org"
    sign_in(phone, live_server, world.patient_user.email)
    change_email_on_settings(phone, live_server, new_address)
    tick(app)
    link = confirmation_link(mailbox, live_server, new_address)

    mail_app = new_context().new_page()  # the link opened where nobody is signed in
    goto(mail_app, link)
    expect(mail_app.get_by_role("heading", level=1)).to_have_text(
        "Confirm your new contact address")
    assert "#" not in mail_app.url
    check_page(mail_app)
    mail_app.get_by_role("link", name="Sign in to confirm").click()
    mail_app.get_by_label("Email").fill(world.patient_user.email)
    mail_app.get_by_label("Password").fill(PASSWORD)
    mail_app.get_by_role("button", name="Sign in").click()
    expect(mail_app.get_by_role("status").filter(
        has_text="Your new email address is confirmed")).to_be_visible()
    session.expire_all()
    assert session.get(Patient, world.patient.id).contact_email == new_address

    goto(mail_app, link)  # used: the calm page
    expect(mail_app.get_by_role("heading", level=1)).to_have_text(
        "This link has been used or has expired")
    check_page(mail_app)


def reminder_settings(session, patient_id: int) -> tuple:
    session.expire_all()
    patient = session.get(Patient, patient_id)
    return patient.reminders_enabled, list(patient.reminder_channels)


def test_a_patient_turns_reminders_off_and_on_by_email(
        clinic_channels, live_server, phone, world, session, screenshot):
    patient_id = world.patient.id
    sign_in(phone, live_server, world.patient_user.email)
    phone.get_by_role("navigation").get_by_role("link", name="Settings", exact=True).click()
    expect(phone.get_by_role("heading", level=1, name="Your settings")).to_be_visible()
    # push.js ran: this browser can show notifications, so the button replaces the sentence.
    expect(phone.get_by_role("button", name="Turn on notifications on this phone")) \
        .to_be_visible()
    expect(phone.get_by_text("not available in this browser")).to_be_hidden()
    check_page(phone)
    screenshot(phone, "patient-reminder-settings")

    phone.get_by_text("No reminders").click()
    phone.get_by_role("button", name="Save my reminder settings").click()
    expect(phone.get_by_role("status").filter(has_text="Reminders are off.")).to_be_visible()
    assert reminder_settings(session, patient_id) == (False, [])
    check_page(phone)

    # On again, by keyboard: the radio group's arrow keys, then Space ticks email.
    phone.get_by_label("No reminders").focus()
    phone.keyboard.press("ArrowUp")
    expect(phone.get_by_label("Yes, remind me")).to_be_checked()
    email = phone.get_by_role("checkbox", name="Email")
    email.focus()
    phone.keyboard.press("Space")
    expect(email).to_be_checked()
    phone.get_by_role("button", name="Save my reminder settings").click()
    expect(phone.get_by_role("status").filter(
        has_text="Your reminder settings are saved.")).to_be_visible()
    assert reminder_settings(session, patient_id) == (True, ["email"])
    expect(phone.get_by_role("checkbox", name="Email")).to_be_checked()
    check_page(phone)


def test_the_service_worker_shows_a_push_message_as_a_notification(
        clinic_channels, live_server, phone, world):
    """The worker push.js registers (served at /me/sw.js, its scope the patient's pages)
    shows what the push service delivers: the clinic's sender name as the title, the message
    as the text, its link kept for the tap. Chromium's DevTools protocol delivers the
    message, as a push service would once the browser has decrypted it."""
    phone.context.grant_permissions(["notifications"], origin=live_server)
    sign_in(phone, live_server, world.patient_user.email)
    goto(phone, f"{live_server}/me/settings")
    scope = phone.evaluate("""() => navigator.serviceWorker
        .register('/me/sw.js', {scope: '/me/'})
        .then(() => navigator.serviceWorker.ready).then((ready) => ready.scope)""")
    assert scope == f"{live_server}/me/"
    devtools = phone.context.new_cdp_session(phone)
    # Each event lists registrations as they change; one may be listed more than once.
    registrations: dict[str, dict] = {}
    versions: dict[str, dict] = {}
    devtools.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.update(
        {found["registrationId"]: found for found in event["registrations"]}))
    devtools.on("ServiceWorker.workerVersionUpdated", lambda event: versions.update(
        {found["versionId"]: found for found in event["versions"]}))
    devtools.send("ServiceWorker.enable")
    [registration] = until(lambda: [found for found in registrations.values()
                                    if found["scopeURL"] == scope and not found["isDeleted"]],
                           phone)
    # A push for a registration whose worker is not yet activated is dropped without a word:
    # on a loaded machine the registration is listed before its worker is ready.
    assert until(lambda: [version for version in versions.values()
                          if version["registrationId"] == registration["registrationId"]
                          and version["status"] == "activated"], phone, seconds=15)
    link = f"{live_server}/me/"
    message = {"origin": live_server, "registrationId": registration["registrationId"],
               "data": json.dumps({"title": "A questionnaire is ready for you",
                                   "body": "A questionnaire is ready for you — open Outcomes "
                                           "to fill it in.", "url": link,
                                   "sender": "Harbour Clinic"})}
    # DevTools' delivery is fire-and-forget, and Chromium sometimes drops one sent just after
    # the worker started (seen only when tests run back to back): a push service retries
    # too, so a second delivery stands for its retry. Only an empty list is retried, so a
    # duplicate would still fail the test.
    for _ in range(3):
        devtools.send("ServiceWorker.deliverPushMessage", message)
        shown = until(lambda: phone.evaluate("""() => navigator.serviceWorker.ready
            .then((ready) => ready.getNotifications())
            .then((all) => all.map((n) => [n.title, n.body, n.data.url]))"""), phone)
        if shown:
            break
    assert shown == [["Harbour Clinic",
                      "A questionnaire is ready for you — open Outcomes to fill it in.", link]]
