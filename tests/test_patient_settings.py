"""The patient's own reminder settings (issue 11 item 3): reminders on or off, their channels
among those the clinic has (text messages only to a mobile number they confirmed: changing
contact details is tests/test_contact_changes.py), and notifications on this phone (web-push
subscriptions stored, updated and removed). Bad input is refused with a message and changes
nothing; the audit trail keeps the change without the full number."""
from __future__ import annotations

import json
import re
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import select

from outcomes.channels.contacts import base64url_encode
from outcomes.channels.webpush import vapid_public_key
from outcomes.models import AuditEvent, Patient, PushSubscription, QuestionnaireLink
from outcomes.services.deliveries import CLAIM
from outcomes.services.questionnaire_links import issue_link, link_sent

from .conftest import PASSWORD, World, csrf_token, sign_in

SETTINGS = "/me/settings"
SUBSCRIBE = "/me/push-subscriptions"
UNSUBSCRIBE = "/me/push-subscriptions/remove"
MOBILE = "(202) 555-0143"
MOBILE_E164 = "+12025550143"
ENDPOINT = "https://push.example.net/send/abc123"


def vapid_private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return base64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))


def with_channels(app: Flask, *names: str) -> None:
    """Switch on the named channels (the setting each channel's ``configured`` reads, and
    the rest of its group), the others off, and the outbox off."""
    settings = {
        "email": {"SMTP_HOST": "smtp.example.net", "SMTP_FROM": "clinic@example.net"},
        "sms": {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token",
                "TWILIO_FROM_NUMBER": "+12025550100"},
        "push": {"VAPID_PRIVATE_KEY": vapid_private_key(),
                 "VAPID_SUBJECT": "mailto:it@example.net"},
    }
    app.config["NOTIFICATION_OUTBOX"] = False
    for channel, values in settings.items():
        app.config.update({name: value if channel in names else "" for name, value in
                           values.items()})


def subscription(endpoint: str = ENDPOINT) -> dict:
    """A browser's ``PushSubscription.toJSON()``: a fresh P-256 key and auth secret."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "expirationTime": None,
            "keys": {"p256dh": base64url_encode(public), "auth": base64url_encode(os.urandom(16))}}


def patient_row(session, patient: Patient) -> tuple:
    session.expire_all()
    row = session.get(Patient, patient.id)
    return row.reminders_enabled, list(row.reminder_channels), row.contact_phone


def with_confirmed_mobile(session, patient: Patient) -> None:
    """The patient's mobile number, as confirming it by its link leaves it."""
    patient.contact_phone = MOBILE_E164
    session.commit()


def subscriptions(session) -> list[tuple]:
    session.expire_all()
    return [(row.user_id, row.endpoint, row.p256dh, row.auth) for row in
            session.scalars(select(PushSubscription).order_by(PushSubscription.id))]


def settings_audit(session, patient: Patient) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).where(
        AuditEvent.action == "patient.reminder_settings",
        AuditEvent.patient_id == patient.id).order_by(AuditEvent.id)))


@pytest.fixture
def patient_client(app, client, world: World):
    sign_in(client, world.patient_user)
    return client


# -- reminders and channels ---------------------------------------------------------------

def test_a_patient_chooses_email_and_texts_to_their_confirmed_mobile_number(
        app, patient_client, world, session):
    with_channels(app, "email", "sms")
    with_confirmed_mobile(session, world.patient)
    page = patient_client.get(SETTINGS)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'value="email"' in text and 'value="sms"' in text and 'value="push"' not in text
    assert world.patient_user.email in text  # email reminders go to the account's address
    response = patient_client.post(SETTINGS, data={
        "reminders": "on", "channels": ["email", "sms"]})
    assert response.status_code == 303 and response.location.endswith(SETTINGS)
    assert patient_row(session, world.patient) == (True, ["email", "sms"], MOBILE_E164)
    shown = patient_client.get(SETTINGS).get_data(as_text=True)
    assert "Your reminder settings are saved." in shown
    assert f'value="{MOBILE_E164}"' in shown
    assert re.search(r'<input checked [^>]*value="sms"', shown)


def test_a_patient_turns_reminders_off_and_on_again(app, patient_client, world, session):
    with_channels(app, "email")
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["email"]})
    off = patient_client.post(SETTINGS, data={"reminders": "off", "channels": ["email"]})
    assert off.status_code == 303
    assert patient_row(session, world.patient) == (False, ["email"], None)
    assert "Reminders are off." in patient_client.get(SETTINGS).get_data(as_text=True)
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["email"]})
    assert patient_row(session, world.patient) == (True, ["email"], None)


def test_texts_without_a_confirmed_number_are_refused_and_change_nothing(
        app, patient_client, world, session):
    with_channels(app, "email", "sms")
    before = patient_row(session, world.patient)
    # A number typed into the reminders' form is not theirs: it is no field of it.
    response = patient_client.post(SETTINGS, data={
        "reminders": "on", "channels": ["email", "sms"], "phone": MOBILE})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Text messages need your mobile number" in text and "could not be saved" in text
    assert 'id="channels-error"' in text  # the channels say they are at fault
    assert patient_row(session, world.patient) == before
    assert not settings_audit(session, world.patient)


def test_without_texts_the_number_is_not_asked_for_and_stays_as_stored(
        app, patient_client, world, session):
    with_channels(app, "email", "sms")
    with_confirmed_mobile(session, world.patient)
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["sms"]})
    with_channels(app, "email")
    assert 'name="phone"' not in patient_client.get(SETTINGS).get_data(as_text=True)
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["email"]})
    assert patient_row(session, world.patient) == (True, ["email"], MOBILE_E164)


def test_a_channel_the_clinic_has_not_configured_is_refused(app, patient_client, world,
                                                            session):
    with_channels(app, "email")
    page = patient_client.get(SETTINGS).get_data(as_text=True)
    assert 'value="sms"' not in page
    response = patient_client.post(SETTINGS, data={
        "reminders": "on", "channels": ["email", "sms"]})
    assert response.status_code == 422
    assert "Text message (SMS) is not available at your clinic" in response.get_data(
        as_text=True)
    assert patient_row(session, world.patient) == (True, [], None)


def test_the_outbox_stands_in_for_channels_the_settings_leave_off(app, patient_client, world,
                                                                  session):
    with_channels(app)
    app.config["NOTIFICATION_OUTBOX"] = True
    page = patient_client.get(SETTINGS).get_data(as_text=True)
    # Web push needs the clinic's own keys: a browser subscribes with its public key.
    assert 'value="email"' in page and 'value="sms"' in page and 'value="push"' not in page
    with_confirmed_mobile(session, world.patient)
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["sms"]})
    assert patient_row(session, world.patient) == (True, ["sms"], MOBILE_E164)


def test_with_no_channel_the_page_says_so_and_reminders_can_only_be_off(
        app, patient_client, world, session):
    with_channels(app)
    page = patient_client.get(SETTINGS).get_data(as_text=True)
    assert "has not set up a way to send reminders" in page
    assert "does not send notifications to phones" in page
    refused = patient_client.post(SETTINGS, data={"reminders": "on"})
    assert refused.status_code == 422
    assert "Choose at least one way to be reminded" in refused.get_data(as_text=True)
    assert patient_client.post(SETTINGS, data={"reminders": "off"}).status_code == 303
    assert patient_row(session, world.patient) == (False, [], None)


def test_another_patient_changes_only_their_own_settings(app, world, factory, session):
    with_channels(app, "email", "sms", "push")
    other = factory.patient(world.clinic, world.clinician, name="Sam Other")
    mine = app.test_client()
    sign_in(mine, world.patient_user)
    mine.post(SUBSCRIBE, data={"subscription": json.dumps(subscription())})
    with_confirmed_mobile(session, world.patient)
    mine.post(SETTINGS, data={"reminders": "on", "channels": ["sms", "push"]})
    before = patient_row(session, world.patient)
    theirs = app.test_client()
    sign_in(theirs, other.user)
    assert theirs.post(SETTINGS, data={"reminders": "off"}).status_code == 303
    # This browser's endpoint is not theirs to remove: nothing happens to it.
    assert theirs.post(UNSUBSCRIBE, data={"endpoint": ENDPOINT}).status_code == 200
    # Stored in the registry's order, whatever the order they were ticked in.
    assert patient_row(session, world.patient) == before == (True, ["push", "sms"],
                                                              MOBILE_E164)
    assert patient_row(session, other)[0] is False
    assert [row[:2] for row in subscriptions(session)] == [(world.patient_user.id, ENDPOINT)]


def test_staff_have_no_settings_page_of_a_patients(app, client, world, session):
    with_channels(app, "email")
    sign_in(client, world.clinician)
    assert client.get(SETTINGS).status_code == 404
    assert client.post(SETTINGS, data={"reminders": "off"}).status_code == 404
    assert patient_row(session, world.patient) == (True, [], None)


def test_the_change_is_audited_without_the_full_number(app, patient_client, world, session):
    with_channels(app, "email", "sms")
    with_confirmed_mobile(session, world.patient)
    patient_client.get(SETTINGS)
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["email", "sms"]})
    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["email", "sms"]})
    # no change: no second row
    [event] = settings_audit(session, world.patient)
    assert (event.actor_id, event.object_type, event.object_id) == (
        world.patient_user.id, "patient", str(world.patient.id))
    assert event.old_values == {"reminders_enabled": True, "channels": [], "phone": "…43"}
    assert event.new_values == {"reminders_enabled": True, "channels": ["email", "sms"],
                                "phone": "…43"}
    everything = json.dumps([event.old_values, event.new_values, event.details, event.reason])
    assert "5550143" not in everything and "555-0143" not in everything
    assert session.scalar(select(AuditEvent).where(
        AuditEvent.action == "patient.view_settings", AuditEvent.patient_id == world.patient.id))


# -- notifications on this phone -------------------------------------------------------------

def test_the_page_offers_notifications_with_the_clinics_public_key(app, patient_client):
    with_channels(app, "email", "push")
    page = patient_client.get(SETTINGS).get_data(as_text=True)
    assert f'data-key="{vapid_public_key(app.config)}"' in page
    assert 'data-worker="/me/sw.js"' in page and 'data-scope="/me/"' in page
    # Without JavaScript, this sentence is what shows.
    assert "Notifications on this phone are not available in this browser." in page
    assert "The other ways of reminding you above still work." in page


def test_a_subscription_is_stored_updated_and_removed(app, patient_client, world, session):
    with_channels(app, "email", "push")
    first = subscription()
    stored = patient_client.post(SUBSCRIBE, data={"subscription": json.dumps(first)})
    assert stored.status_code == 200
    assert stored.json == {"message": "Notifications are on for this phone."}
    assert subscriptions(session) == [(world.patient_user.id, ENDPOINT, first["keys"]["p256dh"],
                                       first["keys"]["auth"])]
    assert patient_row(session, world.patient)[1] == ["push"]
    assert "Notifications are on for this phone." in patient_client.get(SETTINGS).get_data(
        as_text=True)

    # The same browser subscribing again (new keys): the one row is updated.
    again = subscription()
    patient_client.post(SUBSCRIBE, data={"subscription": json.dumps(again)})
    assert subscriptions(session) == [(world.patient_user.id, ENDPOINT, again["keys"]["p256dh"],
                                       again["keys"]["auth"])]

    patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["email", "push"]})
    removed = patient_client.post(UNSUBSCRIBE, data={"endpoint": ENDPOINT})
    assert removed.status_code == 200
    assert removed.json == {"message": "Notifications are off for this phone."}
    assert subscriptions(session) == []
    # With the account's last browser gone, push leaves the channels; email stays.
    assert patient_row(session, world.patient)[1] == ["email"]
    actions = session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("push_subscription.%")).order_by(AuditEvent.id)).all()
    assert actions == ["push_subscription.save"] * 2 + ["push_subscription.remove"]


def test_choosing_phone_notifications_needs_a_subscribed_phone(app, patient_client, world,
                                                                session):
    with_channels(app, "email", "push")
    refused = patient_client.post(SETTINGS, data={"reminders": "on", "channels": ["push"]})
    assert refused.status_code == 422
    assert "Turn on notifications on this phone first" in refused.get_data(as_text=True)
    assert patient_row(session, world.patient) == (True, [], None)


@pytest.mark.parametrize(("sent", "message"), [
    ("", "sent no push subscription"),
    ("not json", "it is not a subscription's JSON"),
    (json.dumps({**subscription(), "endpoint": "http://push.example.net/x"}),
     "its endpoint is not an https:// address"),
    (json.dumps({**subscription(), "keys": {"p256dh": "AAAA", "auth": "AAAA"}}),
     "its p256dh key is not a P-256 public key"),
    (json.dumps(subscription("https://push.example.net/" + "x" * 2048)),
     "its endpoint is too long"),
])
def test_a_bad_subscription_is_refused_with_a_message_and_nothing_is_stored(
        app, patient_client, world, session, sent, message):
    with_channels(app, "email", "push")
    response = patient_client.post(SUBSCRIBE, data={"subscription": sent})
    assert response.status_code == 400
    assert message in response.json["error"]
    assert subscriptions(session) == []
    assert patient_row(session, world.patient) == (True, [], None)


@pytest.mark.parametrize("endpoint", [
    "https://127.0.0.1:8443/push", "https://localhost/push", "https://[::1]/push",
    "https://10.0.0.5/push", "https://169.254.169.254/latest", "https://push.internal/x",
    "https://router/push", "https://[::ffff:10.0.0.1]/x",
    "https://127.1/push", "https://0x7f.1/push",  # short forms the resolver reads as 127.0.0.1
])
def test_in_production_an_endpoint_on_a_private_host_is_refused(
        app, patient_client, session, endpoint):
    """The worker posts to the endpoint: it must not be sent into the clinic's network."""
    with_channels(app, "push")
    app.config["OUTCOMES_ENV"] = "production"
    response = patient_client.post(SUBSCRIBE, data={
        "subscription": json.dumps(subscription(endpoint))})
    assert response.status_code == 400
    assert "not a public push service" in response.json["error"]
    assert subscriptions(session) == []


def test_in_production_a_push_services_endpoint_is_accepted(app, patient_client, session):
    with_channels(app, "push")
    app.config["OUTCOMES_ENV"] = "production"
    endpoint = "https://fcm.googleapis.com/fcm/send/dGhpcyBicm93c2Vy"
    response = patient_client.post(SUBSCRIBE, data={
        "subscription": json.dumps(subscription(endpoint))})
    assert response.status_code == 200
    assert [row[1] for row in subscriptions(session)] == [endpoint]


def test_outside_production_a_loopback_endpoint_is_accepted(app, patient_client, session):
    """The tests' own push service listens on 127.0.0.1."""
    with_channels(app, "push")
    endpoint = "https://127.0.0.1:8443/push/1"
    response = patient_client.post(SUBSCRIBE, data={
        "subscription": json.dumps(subscription(endpoint))})
    assert response.status_code == 200
    assert [row[1] for row in subscriptions(session)] == [endpoint]


def test_a_clinic_without_web_push_stores_no_subscription(app, patient_client, session):
    with_channels(app, "email")
    response = patient_client.post(SUBSCRIBE, data={"subscription": json.dumps(subscription())})
    assert response.status_code == 400
    assert response.json["error"] == "Your clinic does not send notifications to phones."
    assert subscriptions(session) == []


def test_a_browser_moves_to_the_account_that_subscribed_it_last(app, world, factory, session):
    """A shared phone: the notifications go to whoever turned them on last on it."""
    with_channels(app, "push")
    other = factory.patient(world.clinic, world.clinician, name="Sam Other")
    for user in (world.patient_user, other.user):
        client = app.test_client()
        sign_in(client, user)
        client.post(SUBSCRIBE, data={"subscription": json.dumps(subscription())})
    assert [row[:2] for row in subscriptions(session)] == [(other.user.id, ENDPOINT)]


def test_the_service_worker_is_served_from_the_patients_pages(client):
    response = client.get("/me/sw.js")  # signed out: browsers update it whenever they like
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    assert b"showNotification" in response.data and b"notificationclick" in response.data


def test_the_browser_updating_the_worker_keeps_a_reminder_links_session(app, client, world,
                                                                         session):
    """A patient who turned notifications on opens a reminder's link: their browser fetches
    the worker again as they open the questionnaire, and the link's session goes on."""
    with app.app_context():
        issued = issue_link(session, patient_id=world.patient.id, instrument_key="phq9",
                            delivery_id=None, valid_for=CLAIM)
        link_sent(session, issued.link_id, session.get(QuestionnaireLink,
                                                       issued.link_id).created_at)
        session.commit()
    assert client.post("/r", data={"token": issued.token}).status_code == 303
    assert client.get("/me/sw.js").status_code == 200
    assert client.get("/me/questionnaires/phq9").status_code == 200


def test_the_patient_home_links_to_the_settings(patient_client):
    assert f'href="{SETTINGS}"'.encode() in patient_client.get("/me/").data


# -- with CSRF on, as in production --------------------------------------------------------------

@pytest.fixture
def csrf_app(app: Flask) -> Flask:
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def test_each_form_needs_its_token(csrf_app, world, session):
    with_channels(csrf_app, "email", "push")
    client = csrf_app.test_client()
    login = client.get("/login")
    client.post("/login", data={"email": world.patient_user.email, "password": PASSWORD,
                                "csrf_token": csrf_token(login.data)})
    page = client.get(SETTINGS).data
    sent = {"subscription": json.dumps(subscription())}
    assert client.post(SUBSCRIBE, data=sent).status_code == 400
    assert client.post(SETTINGS, data={"reminders": "off"}).status_code == 400
    assert subscriptions(session) == [] and patient_row(session, world.patient)[0] is True
    assert client.post(SUBSCRIBE, data={**sent, "csrf_token": csrf_token(page)}).status_code \
        == 200
    assert client.post(SETTINGS, data={"reminders": "off", "csrf_token": csrf_token(page)}) \
        .status_code == 303
    assert len(subscriptions(session)) == 1 and patient_row(session, world.patient)[0] is False
    removal = {"endpoint": ENDPOINT}
    assert client.post(UNSUBSCRIBE, data=removal).status_code == 400
    assert len(subscriptions(session)) == 1
    assert client.post(UNSUBSCRIBE, data={**removal, "csrf_token": csrf_token(page)}) \
        .status_code == 200
    assert subscriptions(session) == []


def test_the_page_links_to_the_accounts_password_and_sessions(patient_client):
    page = patient_client.get(SETTINGS).get_data(as_text=True)
    assert 'href="/account/password"' in page and 'href="/account/sessions"' in page
