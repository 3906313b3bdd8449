"""Password resets (issue 12 item 1, docs/accounts-and-sessions.md): "Forgot your password?"
emails a single-use link through the worker (the token issued as the message is claimed,
only its hash stored) and answers alike whatever the address; the link sets a new password
once, within its hour, ends every session of the account, is audited and tells the owner by
email; a clinician issues a patient a link and QR code that stops the earlier one; requests
are limited per address and per client."""
from __future__ import annotations

import datetime as dt
import re
import threading

import pytest

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from outcomes import create_app
from outcomes.extensions import db
from outcomes.models import AuditEvent, Delivery, PasswordReset, User, UserSession
from outcomes.services.deliveries import CLAIM, WORDING
from outcomes.services.password_resets import (
    CLINIC_ISSUED_LIFETIME,
    EMAILED_LIFETIME,
    issue_reset,
)

from .channel_servers import Mailbox
from .conftest import PASSWORD, base_config, csrf_token, sign_in
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    deliveries,
    mailbox,
    pinned,
    tick,
)

NEW_PASSWORD = "a brand new passphrase"
INVALID = b"This link has been used or has expired"
EMAILED = re.compile(re.escape(BASE_URL) + r"/reset#([A-Za-z0-9_-]+)")
SHOWN = re.compile(r'href="[^"]*/reset#([A-Za-z0-9_-]+)"')


def ask_for_reset(client: FlaskClient, email: str):
    return client.post("/forgot-password", data={"email": email})


def emailed_token(mail) -> str:
    match = EMAILED.search(mail.message.get_content())
    assert match, mail.message.get_content()
    return match.group(1)


def reset_password(client: FlaskClient, token: str, password: str = NEW_PASSWORD):
    """Open the link (its page's script posts the token), then choose the new password."""
    opened = client.post("/reset", data={"token": token})
    if opened.status_code != 200:
        return opened
    assert b"Save my new password" in opened.data
    return client.post("/reset/new-password",
                       data={"token": token, "password": password, "confirm": password})


def signs_in(app: Flask, user: User, password: str) -> bool:
    response = app.test_client().post("/login", data={"email": user.email,
                                                      "password": password})
    return response.status_code == 302


def test_a_forgotten_password_is_reset_by_email_once(app, session, world, mailbox: Mailbox,
                                                     pinned):
    user = world.patient_user
    elsewhere = app.test_client()
    sign_in(elsewhere, user)  # a session on another device
    assert elsewhere.get("/me/").status_code == 200

    client = app.test_client()
    assert b"Forgot your password?" in client.get("/login").data
    answer = ask_for_reset(client, user.email.upper())
    assert answer.status_code == 200 and b"Check your email" in answer.data
    assert [(row.purpose, row.account_notice, row.user_id, row.patient_id)
            for row in deliveries(session)] == [("account", "password_reset", user.id, None)]
    assert session.scalars(select(PasswordReset)).all() == []  # issued when claimed

    tick(app)
    mail = mailbox.received[-1]
    assert mail.recipients == [user.email]
    assert mail.message["Subject"] == WORDING["password_reset"].subject
    assert mail.message["From"].addresses[0].display_name == world.clinic.message_sender_name
    token = emailed_token(mail)
    reset = session.scalars(select(PasswordReset)).one()
    assert reset.token_hash != token and len(reset.token_hash) == 64
    assert reset.issued_by_id is None and reset.expires_at == pinned.now + EMAILED_LIFETIME

    opened = client.get("/reset")
    assert opened.status_code == 200 and b'id="open-password-reset"' in opened.data
    response = reset_password(client, token)
    assert response.status_code == 303 and response.location == "/login"
    assert b"Sign in with your new password" in client.get("/login").data
    assert signs_in(app, user, NEW_PASSWORD) and not signs_in(app, user, PASSWORD)
    # Every other session ended.
    assert elsewhere.get("/me/").status_code == 302

    again = reset_password(app.test_client(), token, "yet another passphrase")
    assert again.status_code == 404 and INVALID in again.data
    assert b"Ask for a new link" in again.data

    session.expire_all()
    assert session.get(PasswordReset, reset.id).used_at == pinned.now
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "account.password_reset")).one()
    assert (event.actor_id, event.clinic_id, event.patient_id) == (user.id, world.clinic.id,
                                                                   None)
    assert event.details == {"password_reset_id": reset.id, "issued_by_clinic": False}
    requested = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "account.password_reset_requested")).one()
    assert requested.object_id == str(user.id) and requested.details in (None, {})

    # The owner hears of the change.
    pinned.advance(minutes=1)
    tick(app)
    changed = mailbox.received[-1]
    assert changed.recipients == [user.email]
    assert changed.message["Subject"] == WORDING["password_changed"].subject
    assert [row.account_notice for row in deliveries(session, status="sent")] == [
        "password_reset", "password_changed"]


def test_an_unknown_address_is_answered_the_same(app, session, world, factory):
    closed = factory.staff(world.clinic)
    closed.active = False
    session.commit()
    pages = []
    for email in (world.patient_user.email, "nobody@example.org", closed.email):
        response = ask_for_reset(app.test_client(), email)
        pages.append((response.status_code, response.data))
    assert pages[0] == pages[1] == pages[2]
    assert [row.user_id for row in deliveries(session)] == [world.patient_user.id]
    # Asking again while the first message waits writes nothing more (it carries a fresh link).
    ask_for_reset(app.test_client(), world.patient_user.email)
    assert len(deliveries(session)) == 1


def test_bad_input_gets_a_clear_answer(app, session, world):
    client = app.test_client()
    assert client.post("/forgot-password", data={"email": "not an address"}).status_code == 422
    assert client.post("/reset", data={"token": ""}).status_code == 422
    assert client.post("/reset", data={"token": "x" * 500}).status_code == 422
    made_up = client.post("/reset/new-password", data={"token": "made-up", "password": "p"})
    assert made_up.status_code == 404 and INVALID in made_up.data
    assert deliveries(session) == []


def issued(app: Flask, session: Session, user: User, lifetime: dt.timedelta) -> str:
    with app.app_context():
        token = issue_reset(session, user, valid_for=lifetime).token
        session.commit()
    return token


def test_a_link_expires(app, session, world, pinned):
    token = issued(app, session, world.patient_user, EMAILED_LIFETIME)
    pinned.advance(minutes=59)
    assert app.test_client().post("/reset", data={"token": token}).status_code == 200
    pinned.advance(minutes=1)
    response = reset_password(app.test_client(), token)
    assert response.status_code == 404 and INVALID in response.data
    assert signs_in(app, world.patient_user, PASSWORD)


def test_an_unsent_link_works_only_while_its_claim_holds(app, session, world, pinned):
    token = issued(app, session, world.patient_user, CLAIM)
    pinned.advance(seconds=CLAIM.total_seconds())
    assert reset_password(app.test_client(), token).status_code == 404


def test_a_short_password_is_refused_and_the_link_still_works(app, session, world):
    token = issued(app, session, world.patient_user, EMAILED_LIFETIME)
    client = app.test_client()
    short = reset_password(client, token, "too short")
    assert short.status_code == 422 and b"12 to" in short.data
    mismatch = client.post("/reset/new-password", data={
        "token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "!"})
    assert mismatch.status_code == 422 and b"do not match" in mismatch.data
    assert reset_password(client, token).status_code == 303
    assert signs_in(app, world.patient_user, NEW_PASSWORD)


def test_two_saves_at_once_use_a_link_once(app, session, world, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one transaction at a time: there is no race to lose")
    token = issued(app, session, world.patient_user, EMAILED_LIFETIME)
    statuses: list[int] = []
    start = threading.Barrier(2)

    def save(password: str) -> None:
        client = app.test_client()
        start.wait()
        statuses.append(client.post("/reset/new-password", data={
            "token": token, "password": password, "confirm": password}).status_code)

    saves = [threading.Thread(target=save, args=(password,))
             for password in (NEW_PASSWORD, "the other new passphrase")]
    for thread in saves:
        thread.start()
    for thread in saves:
        thread.join()
    assert sorted(statuses) == [303, 404]
    assert len(session.scalars(select(AuditEvent).where(
        AuditEvent.action == "account.password_reset")).all()) == 1


def test_whoever_is_signed_in_on_the_device_is_signed_out_and_their_session_ended(
        app, session, world):
    client = app.test_client()
    sign_in(client, world.patient_user)  # the patient, on a shared device
    token = issued(app, session, world.clinician, EMAILED_LIFETIME)
    assert reset_password(client, token).status_code == 303
    assert client.get("/me/").status_code == 302
    session.expire_all()
    [row] = session.scalars(select(UserSession).where(
        UserSession.user_id == world.patient_user.id)).all()
    assert row.ended_reason == "signed_out"  # its row ended, not left open until it lapses


def test_a_closed_account_cannot_be_reset(app, session, world):
    token = issued(app, session, world.patient_user, EMAILED_LIFETIME)
    world.patient_user.active = False
    session.commit()
    assert reset_password(app.test_client(), token).status_code == 404


def test_asking_again_replaces_the_earlier_link(app, session, world, mailbox, pinned):
    first = issued(app, session, world.patient_user, CLINIC_ISSUED_LIFETIME)
    ask_for_reset(app.test_client(), world.patient_user.email)
    tick(app)
    emailed = emailed_token(mailbox.received[-1])
    assert reset_password(app.test_client(), first).status_code == 404
    assert reset_password(app.test_client(), emailed).status_code == 303


def test_a_failed_send_leaves_no_working_link(app, session, world, mailbox, pinned):
    mailbox.replies[world.patient_user.email] = "550 no such user"
    ask_for_reset(app.test_client(), world.patient_user.email)
    tick(app)
    assert [row.status for row in deliveries(session)] == ["failed"]
    session.expire_all()
    assert session.scalars(select(PasswordReset)).all() == []


# -- issued by the clinic ---------------------------------------------------------------------

def issue_from_patient_page(client: FlaskClient, patient_id: int):
    return client.post(f"/clinic/patients/{patient_id}/password-reset")


def test_a_clinician_issues_a_link_and_qr_code_that_stops_the_earlier_one(
        app, session, world, pinned):
    clinician = app.test_client()
    sign_in(clinician, world.clinician)
    record = clinician.get(f"/clinic/patients/{world.patient.id}")
    assert b"Issue a password reset link" in record.data

    first = issue_from_patient_page(clinician, world.patient.id)
    assert first.status_code == 200
    assert b"Password reset for" in first.data and b"<svg" in first.data
    first_token = SHOWN.search(first.data.decode()).group(1)
    second_token = SHOWN.search(
        issue_from_patient_page(clinician, world.patient.id).data.decode()).group(1)

    assert reset_password(app.test_client(), first_token).status_code == 404
    assert reset_password(app.test_client(), second_token).status_code == 303
    assert signs_in(app, world.patient_user, NEW_PASSWORD)

    session.expire_all()
    resets = session.scalars(select(PasswordReset).order_by(PasswordReset.id)).all()
    assert [(row.revoked_at is not None, row.used_at is not None) for row in resets] == [
        (True, False), (False, True)]
    assert all(row.issued_by_id == world.clinician.id for row in resets)
    assert resets[1].expires_at == pinned.now + CLINIC_ISSUED_LIFETIME
    issued_events = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "account.password_reset_issued")).all()
    assert [(event.actor_id, event.patient_id) for event in issued_events] == [
        (world.clinician.id, world.patient.id)] * 2
    redeemed = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "account.password_reset")).one()
    assert redeemed.details["issued_by_clinic"] is True


def test_another_clinics_patient_is_a_404_and_nothing_is_issued(app, session, world):
    clinician = app.test_client()
    sign_in(clinician, world.clinician)
    assert issue_from_patient_page(clinician, world.other_patient.id).status_code == 404
    assert issue_from_patient_page(clinician, 999_999).status_code == 404
    patient = app.test_client()
    sign_in(patient, world.patient_user)
    assert issue_from_patient_page(patient, world.patient.id).status_code == 404
    assert session.scalars(select(PasswordReset)).all() == []


def test_a_patient_without_an_account_gets_an_invitation_instead(app, session, world,
                                                                 factory):
    invited = factory.patient(world.clinic, world.clinician, with_login=False)
    clinician = app.test_client()
    sign_in(clinician, world.clinician)
    assert b"Issue a password reset link" not in clinician.get(
        f"/clinic/patients/{invited.id}").data
    response = issue_from_patient_page(clinician, invited.id)
    assert response.status_code == 303
    assert b"issue an invitation instead" in clinician.get(response.location).data


# -- limits -----------------------------------------------------------------------------------

def test_requests_are_limited_per_address_and_per_client(database_url, world):
    limited = create_app({**base_config(database_url), "RATELIMIT_ENABLED": True,
                          "RATELIMIT_STORAGE_URI": "memory://", "TRUSTED_PROXIES": 1,
                          "SIGN_IN_RATE_LIMIT": "6 per minute"})
    try:
        client = limited.test_client()

        def ask(email: str, address: str) -> int:
            return client.post("/forgot-password", data={"email": email},
                               headers={"X-Forwarded-For": address}).status_code

        # Per address (3 an hour), whatever the client, and whether or not it has an account.
        for email in (world.patient_user.email, "nobody@example.org"):
            assert [ask(email, f"198.51.100.{n}") for n in range(1, 5)] == [200] * 3 + [429]
        # Per client (SIGN_IN_RATE_LIMIT), whatever the address.
        assert [ask(f"someone{n}@example.org", "198.51.100.9")
                for n in range(7)] == [200] * 6 + [429]
    finally:
        with limited.app_context():
            db.engine.dispose()


def test_the_outbox_shows_account_notices(app, session, world, factory):
    app.config.update(NOTIFICATION_OUTBOX=True, PUBLIC_BASE_URL=BASE_URL)
    ask_for_reset(app.test_client(), world.patient_user.email)
    tick(app)
    clinician = app.test_client()
    sign_in(clinician, world.clinician)
    page = clinician.get("/clinic/outbox")
    assert page.status_code == 200
    assert WORDING["password_reset"].subject.encode() in page.data
    assert session.scalars(select(Delivery).where(Delivery.purpose == "account")).one().status \
        == "sent"


def test_the_new_password_form_needs_its_csrf_token(app, database_url, world, session):
    guarded = create_app({**base_config(database_url), "WTF_CSRF_ENABLED": True})
    try:
        token = issued(guarded, session, world.patient_user, EMAILED_LIFETIME)
        client = guarded.test_client()
        opened = client.post("/reset", data={"token": token,
                                             "csrf_token": csrf_token(client.get("/reset").data)})
        assert opened.status_code == 200
        form = {"token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        refused = client.post("/reset/new-password", data=form)
        assert refused.status_code != 303
        assert signs_in(app, world.patient_user, PASSWORD)  # (app: CSRF off)
        accepted = client.post("/reset/new-password",
                               data={**form, "csrf_token": csrf_token(opened.data)})
        assert accepted.status_code == 303
    finally:
        with guarded.app_context():
            db.engine.dispose()
