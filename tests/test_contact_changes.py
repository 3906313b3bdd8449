"""A patient changes their contact email and mobile number (issue 12 item 5): the new address
is used only once the patient, signed in, follows the link sent TO it (an email through the
local SMTP server, a text through the local SMS endpoint). The link is single-use and
short-lived, a newer change or a cancel stops it, and a used, expired, unknown or someone
else's link gets one clear page. The sign-in email never changes; audit rows hold no email
address and a number's last two digits only."""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
from urllib.parse import parse_qs

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from outcomes import create_app
from outcomes.extensions import db
from outcomes.models import AuditEvent, ContactConfirmation, Patient, PatientRevision
from outcomes.services import contact_changes, contact_links
from outcomes.services.deliveries import CONTACT_CHANGE_CLOSED, WORDING

from .channel_servers import Answer, Mailbox, certificates, https_server, trusted  # noqa: F401
from .conftest import PASSWORD, base_config, csrf_token, sign_in
from .helpers import T0
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    deliveries,
    mailbox,
    pinned,
    recipients,
    remindable_patient,
    tick,
)

SETTINGS = "/me/settings"
CONTACT = "/me/settings/contact"
RESEND = "/me/settings/contact/resend"
CANCEL = "/me/settings/contact/cancel"
CONFIRM = "/confirm-contact"
CONFIRM_IDENTITY = "/account/security/confirm"
NEW_EMAIL = "New.Address@Example.org"
NEW_EMAIL_STORED = "new.address@example.org"
TWILIO_SENT = Answer(201, json.dumps({"sid": "SM" + "f" * 32, "status": "queued"}).encode(),
                     {"Content-Type": "application/json"})


@pytest.fixture
def patient(app, session, factory, world, mailbox, pinned) -> Patient:
    """A patient reminded by email, at T0, with the app sending through the local SMTP
    server."""
    return remindable_patient(factory, session, world.clinic, world.clinician)


@pytest.fixture
def patient_client(app: Flask, patient: Patient) -> FlaskClient:
    """Signed in as ``patient``, the password given again (a change needs it fresh)."""
    client = app.test_client()
    sign_in(client, patient.user)
    confirm_identity(client)
    return client


def confirm_identity(client: FlaskClient, **data: str) -> None:
    answer = client.post(CONFIRM_IDENTITY, data={"secret": PASSWORD, **data})
    assert answer.status_code == 302, answer.status_code


def fresh(session, patient: Patient) -> Patient:
    session.expire_all()
    return session.get(Patient, patient.id)


def changes(session, patient: Patient) -> list[ContactConfirmation]:
    session.expire_all()
    return list(session.scalars(select(ContactConfirmation).where(
        ContactConfirmation.patient_id == patient.id).order_by(ContactConfirmation.id)))


def link_token(mail_text: str) -> str:
    return re.search(r"/confirm-contact#(\S+)", mail_text).group(1)


def last_token(mailbox: Mailbox) -> str:
    """The token of the last link received (reminders arrive alongside)."""
    return [link_token(text) for mail in mailbox.received
            if "/confirm-contact#" in (text := mail.message.get_content())][-1]


def audit_rows(session, patient: Patient) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).where(
        AuditEvent.patient_id == patient.id, AuditEvent.action.like("patient.contact%"))
        .order_by(AuditEvent.id)))


def test_a_new_email_is_used_only_once_its_link_is_followed(
        app, session, patient, patient_client, mailbox, pinned):
    sign_in_email = patient.user.email
    response = patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    assert response.status_code == 303 and response.location.endswith(SETTINGS + "#contact")
    page = patient_client.get(SETTINGS).get_data(as_text=True)
    assert "We sent an email with a link to your new email address" in page
    assert "Waiting for confirmation" in page and NEW_EMAIL_STORED in page
    assert "Send the link again" in page and "Cancel this change" in page
    assert fresh(session, patient).contact_email is None

    tick(app)  # the first reminder, and the link
    assert sorted(recipients(mailbox)) == sorted([sign_in_email, NEW_EMAIL_STORED])
    [link_mail] = [mail for mail in mailbox.received if NEW_EMAIL_STORED in mail.recipients]
    assert link_mail.message["Subject"] == WORDING["confirm_contact"].subject
    text = link_mail.message.get_content()
    assert "within a day" in text and "ignore this message" in text
    assert f"{BASE_URL}/confirm-contact#" in text
    [reminder] = [mail for mail in mailbox.received if sign_in_email in mail.recipients]
    assert reminder.message["Subject"] == WORDING["reminder"].subject  # the old address still

    assert patient_client.get(CONFIRM).status_code == 200
    confirmed = patient_client.post(CONFIRM, data={"token": link_token(text)})
    assert confirmed.status_code == 303 and confirmed.location.endswith(SETTINGS + "#contact")
    row = fresh(session, patient)
    assert row.contact_email == NEW_EMAIL_STORED
    assert row.user.email == sign_in_email  # how they sign in does not change
    page = patient_client.get(SETTINGS).get_data(as_text=True)
    assert "Your new email address is confirmed" in page
    assert "You still sign in with your sign-in email" in page
    assert "Waiting for confirmation" not in page

    pinned.advance(minutes=1)
    tick(app)  # the notice of the change: to the sign-in email, never the new address
    [notice] = [mail for mail in mailbox.received
                if mail.message["Subject"] == WORDING["contact_changed"].subject]
    assert notice.recipients == [sign_in_email]
    assert "If this was not you, tell your clinic now" in notice.message.get_content()

    pinned.set(T0 + dt.timedelta(days=1))
    tick(app)  # the next reminder goes to the new address
    assert recipients(mailbox)[-1] == NEW_EMAIL_STORED
    assert mailbox.received[-1].message["Subject"] == WORDING["reminder"].subject


def test_a_change_or_resend_needs_the_password_given_again(app, session, patient, mailbox,
                                                           pinned):
    """A phone left unlocked does not move the reminders: the password (or a code) first,
    then back to the settings page; nothing is asked for or sent until then."""
    client = app.test_client()
    sign_in(client, patient.user)
    referrer = {"Referer": f"http://localhost{SETTINGS}"}
    for route, data in ((CONTACT, {"email": NEW_EMAIL}), (RESEND, {"kind": "email"})):
        asked = client.post(route, data=data, headers=referrer)
        assert asked.status_code == 302
        assert asked.location == f"{CONFIRM_IDENTITY}?next={SETTINGS}"
    assert changes(session, patient) == []
    assert deliveries(session, account_notice="confirm_contact") == []
    wrong = client.post(f"{CONFIRM_IDENTITY}?next={SETTINGS}", data={"secret": "not it at all"})
    assert wrong.status_code == 401
    back = client.post(f"{CONFIRM_IDENTITY}?next={SETTINGS}", data={"secret": PASSWORD})
    assert back.status_code == 302 and back.location == SETTINGS
    assert client.post(CONTACT, data={"email": NEW_EMAIL}).status_code == 303
    assert [change.value for change in changes(session, patient)] == [NEW_EMAIL_STORED]
    pinned.advance(minutes=6)  # the password is fresh for five minutes
    assert client.post(RESEND, data={"kind": "email"}).status_code == 302
    assert changes(session, patient)[0].revoked_at is None


def test_the_link_works_once(app, session, patient, patient_client, mailbox, pinned):
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    tick(app)
    token = last_token(mailbox)
    assert patient_client.post(CONFIRM, data={"token": token}).status_code == 303
    again = patient_client.post(CONFIRM, data={"token": token})
    assert again.status_code == 404
    assert "This link has been used or has expired" in again.get_data(as_text=True)
    assert [row.action for row in audit_rows(session, patient)] == [
        "patient.contact_change_requested", "patient.contact_changed"]


def test_the_link_expires_a_day_after_it_was_sent(app, session, patient, patient_client,
                                                  mailbox, pinned):
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    tick(app)
    pinned.advance(hours=24, seconds=1)
    client = app.test_client()  # the first session has ended meanwhile
    sign_in(client, patient.user)
    expired = client.post(CONFIRM, data={"token": last_token(mailbox)})
    assert expired.status_code == 404
    assert "within 24 hours" in expired.get_data(as_text=True)
    assert fresh(session, patient).contact_email is None
    page = client.get(SETTINGS).get_data(as_text=True)
    assert "its link no longer works" in page  # and Resend or Cancel


@pytest.mark.parametrize("token", ["a-made-up-token", "x" * 129])
def test_an_unknown_link_gets_the_same_page(app, session, patient, patient_client, token):
    response = patient_client.post(CONFIRM, data={"token": token})
    assert response.status_code in (404, 422)
    assert fresh(session, patient).contact_email is None


def test_a_newer_change_stops_the_earlier_link(app, session, patient, patient_client,
                                               mailbox, pinned):
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    tick(app)
    first = last_token(mailbox)
    patient_client.post(CONTACT, data={"email": "second@example.org"})
    pinned.advance(minutes=1)
    tick(app)
    second = last_token(mailbox)
    assert "second@example.org" in recipients(mailbox)
    assert patient_client.post(CONFIRM, data={"token": first}).status_code == 404
    assert patient_client.post(CONFIRM, data={"token": second}).status_code == 303
    assert fresh(session, patient).contact_email == "second@example.org"
    assert [(row.value, row.revoked_at is not None, row.used_at is not None)
            for row in changes(session, patient)] == [
        (NEW_EMAIL_STORED, True, False), ("second@example.org", False, True)]


def test_the_address_in_use_or_already_waiting_changes_nothing(
        app, session, patient, patient_client, mailbox, pinned):
    same = patient_client.post(CONTACT, data={"email": patient.user.email.upper()})
    assert same.status_code == 303
    assert "nothing to change" in patient_client.get(SETTINGS).get_data(as_text=True)
    assert changes(session, patient) == []
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    patient_client.post(CONTACT, data={"email": NEW_EMAIL_STORED})
    assert "is on its way already" in patient_client.get(SETTINGS).get_data(as_text=True)
    assert len(changes(session, patient)) == 1
    assert len(deliveries(session, account_notice="confirm_contact")) == 1


def test_resend_issues_a_new_link_and_the_earlier_stops(app, session, patient,
                                                        patient_client, mailbox, pinned):
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    patient_client.post(RESEND, data={"kind": "email"})  # one on its way already: not doubled
    assert len(deliveries(session, account_notice="confirm_contact")) == 1
    tick(app)
    first = last_token(mailbox)
    assert patient_client.post(RESEND, data={"kind": "email"}).status_code == 303
    assert "A new link is on its way" in patient_client.get(SETTINGS).get_data(as_text=True)
    pinned.advance(minutes=1)
    tick(app)
    second = last_token(mailbox)
    assert first != second
    assert patient_client.post(CONFIRM, data={"token": first}).status_code == 404
    assert patient_client.post(CONFIRM, data={"token": second}).status_code == 303


def test_cancel_stops_the_link_and_withdraws_a_message_not_yet_sent(
        app, session, patient, patient_client, mailbox, pinned):
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    assert patient_client.post(CANCEL, data={"kind": "email"}).status_code == 303
    assert "is cancelled" in patient_client.get(SETTINGS).get_data(as_text=True)
    tick(app)
    assert NEW_EMAIL_STORED not in recipients(mailbox)
    [withdrawn] = deliveries(session, account_notice="confirm_contact")
    assert (withdrawn.status, withdrawn.last_error) == ("failed", CONTACT_CHANGE_CLOSED)
    assert patient_client.post(CANCEL, data={"kind": "email"}).status_code == 303
    assert "already confirmed or cancelled" in patient_client.get(SETTINGS).get_data(
        as_text=True)
    assert patient_client.post(CANCEL, data={"kind": "fax"}).status_code == 400


def test_another_patients_link_changes_nothing(app, session, factory, world, patient,
                                               patient_client, mailbox, pinned):
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    tick(app)
    token = last_token(mailbox)
    other = app.test_client()
    sign_in(other, world.patient_user)
    response = other.post(CONFIRM, data={"token": token})
    assert response.status_code == 404
    assert fresh(session, world.patient).contact_email is None
    assert fresh(session, patient).contact_email is None
    # Still the patient's own to confirm.
    assert patient_client.post(CONFIRM, data={"token": token}).status_code == 303


def test_signed_out_the_page_asks_to_sign_in_and_the_post_changes_nothing(
        app, session, patient, patient_client, mailbox, pinned):
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    tick(app)
    visitor = app.test_client()
    page = visitor.get(CONFIRM).get_data(as_text=True)
    assert "Sign in to confirm" in page and "/login?next=/confirm-contact" in page
    posted = visitor.post(CONFIRM, data={"token": last_token(mailbox)})
    assert posted.status_code == 302 and "/login" in posted.location
    assert fresh(session, patient).contact_email is None


@pytest.mark.parametrize(("field", "text", "message"), [
    ("email", "not-an-address", "That is not a valid email address"),
    ("phone", "12", "That is not a valid phone number in US"),
    ("phone", "call me", "That is not a phone number"),
    ("phone", "+44 20 7946 0958", "That number cannot receive text messages"),  # a landline
])
def test_a_bad_address_is_refused_with_a_message_and_changes_nothing(
        app, session, patient, patient_client, field, text, message):
    app.config["NOTIFICATION_OUTBOX"] = True  # texts offered
    response = patient_client.post(CONTACT, data={field: text})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and "could not be saved" in page
    assert 'aria-invalid="true"' in page
    assert changes(session, patient) == [] and not audit_rows(session, patient)
    assert deliveries(session, account_notice="confirm_contact") == []


def test_a_new_mobile_number_is_confirmed_by_a_text_to_it(app, session, patient,
                                                          patient_client, trusted, pinned):
    with https_server(trusted, TWILIO_SENT) as twilio:
        app.config.update(TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="token",
                          TWILIO_FROM_NUMBER="+14155550100", TWILIO_API_BASE_URL=twilio.url)
        page = patient_client.get(SETTINGS).get_data(as_text=True)
        assert 'name="phone"' in page
        patient_client.post(CONTACT, data={"email": patient.user.email,
                                           "phone": "+44 7911 123456"})
        tick(app)
        [text] = [request for request in twilio.requests]
    sent = parse_qs(text.body.decode())
    assert sent["To"] == ["+447911123456"]  # to the new number, with its country code
    token = re.search(r"/confirm-contact#(\S+)", sent["Body"][0]).group(1)
    assert fresh(session, patient).contact_phone is None
    assert patient_client.post(CONFIRM, data={"token": token}).status_code == 303
    assert fresh(session, patient).contact_phone == "+447911123456"
    flashed = patient_client.get(SETTINGS).get_data(as_text=True)
    assert "Your new mobile number is confirmed" in flashed
    assert "sign-in email" not in flashed.split("confirmed")[1].split("</")[0]


def test_a_message_that_did_not_leave_takes_its_token_with_it(app, session, patient,
                                                              patient_client, pinned):
    app.config.update(SMTP_PORT=1)  # nothing listens there: a temporary failure
    patient_client.post(CONTACT, data={"email": NEW_EMAIL})
    before = changes(session, patient)[0].token_hash
    tick(app)
    [waiting] = changes(session, patient)
    assert waiting.token_hash != before and waiting.used_at is None
    [delivery] = deliveries(session, account_notice="confirm_contact")
    assert (delivery.status, delivery.attempts) == ("pending", 1)


def test_a_number_is_removed_at_once_unless_texts_need_it(app, session, patient,
                                                          patient_client):
    app.config["NOTIFICATION_OUTBOX"] = True
    patient.contact_phone = "+12025550143"
    patient.reminder_channels = ["email", "sms"]
    session.commit()
    refused = patient_client.post(CONTACT, data={"email": patient.user.email, "phone": ""})
    assert refused.status_code == 422
    assert "untick text messages" in refused.get_data(as_text=True)
    assert fresh(session, patient).contact_phone == "+12025550143"
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["email"]})
    removed = patient_client.post(CONTACT, data={"email": patient.user.email, "phone": ""})
    assert removed.status_code == 303
    assert fresh(session, patient).contact_phone is None
    assert "Your mobile number is removed" in patient_client.get(SETTINGS).get_data(
        as_text=True)
    latest = session.scalars(select(PatientRevision).where(
        PatientRevision.patient_id == patient.id).order_by(PatientRevision.version.desc())).first()
    assert (latest.contact_phone, latest.reason) == (None, contact_changes.REMOVED_REASON)
    # The sign-in email is told, as of a confirmed change.
    assert [row.user_id for row in deliveries(session, account_notice="contact_changed")] == \
        [patient.user_id]


def test_the_audit_trail_holds_no_address(app, session, patient, patient_client, mailbox,
                                          pinned):
    app.config["NOTIFICATION_OUTBOX"] = True
    patient_client.post(CONTACT, data={"email": NEW_EMAIL, "phone": "(202) 555-0143"})
    tick(app)
    for token in [link_token(mail.message.get_content()) for mail in mailbox.received
                  if NEW_EMAIL_STORED in mail.recipients]:
        patient_client.post(CONFIRM, data={"token": token})
    rows = audit_rows(session, patient)
    assert [(row.action, row.actor_id) for row in rows] == [
        ("patient.contact_change_requested", patient.user_id),
        ("patient.contact_change_requested", patient.user_id),
        ("patient.contact_changed", patient.user_id)]
    assert rows[1].details == {"kind": "phone", "phone": "…43"}
    assert rows[2].object_version == 2  # the patient's details' new version
    assert (rows[2].old_values, rows[2].new_values) == ({"kind": "email"}, {"kind": "email"})
    everything = json.dumps([[row.old_values, row.new_values, row.details] for row in rows])
    assert "example.org" not in everything and "5550143" not in everything


def test_staff_have_no_contact_routes(app, client, world, session):
    sign_in(client, world.clinician)
    assert client.post(CONTACT, data={"email": NEW_EMAIL}).status_code == 404
    assert client.post(CONFIRM, data={"token": "a-made-up-token"}).status_code == 404
    assert session.scalars(select(ContactConfirmation)).all() == []


def test_each_form_needs_its_csrf_token(app, session, patient, mailbox, pinned):
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    login = client.get("/login")
    client.post("/login", data={"email": patient.user.email, "password": PASSWORD,
                                "csrf_token": csrf_token(login.data)})
    page = client.get(SETTINGS).data
    confirm_identity(client, csrf_token=csrf_token(client.get(CONFIRM_IDENTITY).data))
    assert client.post(CONTACT, data={"email": NEW_EMAIL}).status_code == 400
    assert changes(session, patient) == []
    assert client.post(CONTACT, data={"email": NEW_EMAIL, "csrf_token": csrf_token(page)}) \
        .status_code == 303
    page = client.get(SETTINGS).data  # now with the waiting change's buttons
    for route in (RESEND, CANCEL):
        assert client.post(route, data={"kind": "email"}).status_code == 400
    assert client.post(CONFIRM, data={"token": "a-made-up-token"}).status_code == 400
    assert len(changes(session, patient)) == 1 and changes(session, patient)[0].revoked_at is None
    assert len(deliveries(session, account_notice="confirm_contact")) == 1
    token = {"csrf_token": csrf_token(page)}
    assert client.post(RESEND, data={"kind": "email", **token}).status_code == 303
    assert client.post(CANCEL, data={"kind": "email", **token}).status_code == 303
    assert changes(session, patient)[0].revoked_at is not None
    assert client.post(CONFIRM, data={"token": "a-made-up-token", **token}).status_code == 404


def test_the_service_confirms_a_token_once_and_only_for_its_patient(app, session, world,
                                                                      patient):
    with app.app_context():
        actor = contact_changes.Actor(user=patient.user)
        change = contact_changes.request_change(session, actor, patient, "email",
                                                NEW_EMAIL_STORED)
        issued = contact_links.issue_link(session, change, valid_for=contact_links.LIFETIME)
        assert issued.address == NEW_EMAIL_STORED
        session.commit()
        stranger = contact_changes.Actor(user=world.patient_user)
        assert contact_changes.confirm(session, stranger, world.patient, issued.token) is None
        assert contact_changes.confirm(session, actor, patient, issued.token) is not None
        assert contact_changes.confirm(session, actor, patient, issued.token) is None
        session.commit()
    assert fresh(session, patient).contact_email == NEW_EMAIL_STORED
    [version] = session.scalars(select(PatientRevision).where(
        PatientRevision.patient_id == patient.id, PatientRevision.version > 1)).all()
    assert (version.contact_email, version.changed_by_id, version.reason) == (
        NEW_EMAIL_STORED, patient.user_id, contact_changes.CONFIRMED_REASON)


def test_messages_with_a_link_are_limited_per_account(database_url, world):
    """Five an hour (CONTACT_MESSAGES_PER_ACCOUNT): a stolen session cannot flood anyone's
    mailbox or phone."""
    limited = create_app({**base_config(database_url), "RATELIMIT_ENABLED": True,
                          "RATELIMIT_STORAGE_URI": "memory://"})
    try:
        client = limited.test_client()
        sign_in(client, world.patient_user)
        confirm_identity(client)
        answers = [client.post(CONTACT, data={"email": f"try{n}@example.org"}).status_code
                   for n in range(5)]
        answers.append(client.post(RESEND, data={"kind": "email"}).status_code)
        assert answers == [303] * 5 + [429]
    finally:
        with limited.app_context():
            db.engine.dispose()


def test_two_confirmations_of_one_link_at_once_use_it_once(app, session, patient, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one transaction at a time: there is no race to lose")
    with app.app_context():
        change = contact_changes.request_change(
            session, contact_changes.Actor(user=patient.user), patient, "email",
            NEW_EMAIL_STORED)
        token = contact_links.issue_link(session, change, valid_for=contact_links.LIFETIME).token
        session.commit()
    clients = [app.test_client() for _ in range(2)]
    for client in clients:
        sign_in(client, patient.user)
    statuses: list[int] = []
    start = threading.Barrier(2)

    def confirm(client: FlaskClient) -> None:
        start.wait()
        statuses.append(client.post(CONFIRM, data={"token": token}).status_code)

    both = [threading.Thread(target=confirm, args=(client,)) for client in clients]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert sorted(statuses) == [303, 404]
    assert [row.action for row in audit_rows(session, patient)] == [
        "patient.contact_change_requested", "patient.contact_changed"]
    assert session.scalar(select(func.count(PatientRevision.id)).where(
        PatientRevision.patient_id == patient.id)) == 2
