"""Every message the worker produces carries no health data (issues 11 and 12): reminders,
crisis alert notifications and their escalations, account notices (a password reset's link,
a changed password, reset sign-in factors, a new contact address's link), through every channel (email to a real SMTP
server; push and SMS taken by the outbox), are read in full and hold no score, answer,
questionnaire, condition or drug name, and no patient's name or identifier."""
from __future__ import annotations

import re

import pytest

import instruments
from outcomes.channels import Channel, Message
from outcomes.models import Delivery, PushSubscription
from outcomes.services.audit import Actor
from outcomes.services.contact_changes import request_change
from outcomes.services.deliveries import WORDING, wording_key

from .channel_servers import Mailbox
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    crisis_alert,
    deliveries,
    mailbox,
    pinned,
    recipients,
    remindable_patient,
    tick,
)

PATIENT_NAME = "Zebulon Quartermaine"
IDENTIFIER = "MRN-QX7731"
#: Words of the conditions and treatment a message must never name.
CLINICAL_WORDS = ("ptsd", "depress", "anxiety", "ketamine", "suicid", "infusion", "trauma",
                  "self-harm", "crisis", "score", "severe")


def forbidden_words() -> list[str]:
    words = [*PATIENT_NAME.split(), IDENTIFIER, *CLINICAL_WORDS]
    for instrument in instruments.all():
        words += [instrument.key, instrument.title, instrument.measure]
    return [word.lower() for word in words]


@pytest.fixture
def sent_messages(monkeypatch) -> list[tuple[str, Message]]:
    """Every message any channel (the outbox too) is asked to send, with its channel."""
    seen: list[tuple[str, Message]] = []
    send = Channel.send

    def recording(channel: Channel, message: Message, address: str, config) -> object:
        seen.append((channel.name, message))
        return send(channel, message, address, config)

    monkeypatch.setattr(Channel, "send", recording)
    return seen


def test_no_message_holds_a_score_an_answer_a_questionnaire_or_a_name(
        app, session, factory, world, mailbox: Mailbox, pinned, sent_messages):
    app.config["NOTIFICATION_OUTBOX"] = True  # push and SMS go to the outbox
    world.clinic.on_call_email = "on-call@clinic.example"
    session.commit()
    admin = factory.staff(world.clinic, "admin")
    patient = remindable_patient(factory, session, world.clinic, world.clinician,
                                 channels=("email", "sms", "push"), only=None,
                                 contact_phone="+12025550143", display_name=PATIENT_NAME,
                                 identifier=IDENTIFIER)
    session.add(PushSubscription(user_id=patient.user_id,
                                 endpoint="https://push.example/device-1",
                                 p256dh="BAAA", auth="AAAAAAAAAAAAAAAAAAAAAA"))
    session.commit()
    tick(app)  # the reminders
    crisis_alert(factory, patient)  # PHQ-9 total 14, item 9 answered 2
    pinned.advance(minutes=1)
    tick(app)  # the alert to the clinician and the on-call address
    pinned.advance(minutes=world.clinic.escalation_minutes)
    tick(app)  # its escalation to the admin
    app.test_client().post("/forgot-password", data={"email": patient.user.email})
    pinned.advance(minutes=1)
    tick(app)  # the reset link
    token = mailbox.received[-1].message.get_content().split("/reset#")[1].split()[0]
    app.test_client().post("/reset/new-password", data={
        "token": token, "password": "a brand new passphrase",
        "confirm": "a brand new passphrase"})
    session.add(Delivery(key="account:factors_reset:test", clinic_id=world.clinic.id,
                         purpose="account", channel="email", user_id=admin.id,
                         account_notice="factors_reset"))
    session.add(Delivery(key="account:factor_added:test", clinic_id=world.clinic.id,
                         purpose="account", channel="email", user_id=admin.id,
                         account_notice="factor_added"))
    session.add(Delivery(key="account:contact_changed:test", clinic_id=world.clinic.id,
                         purpose="account", channel="email", user_id=patient.user.id,
                         account_notice="contact_changed"))
    with app.app_context():
        for kind, address in (("email", "new-address@example.org"), ("phone", "+12025550199")):
            request_change(session, Actor(user=patient.user), patient, kind, address)
    session.commit()
    pinned.advance(minutes=1)
    tick(app)  # the password changed, the factors reset, a factor added, a contact changed, the
    # contact links

    says = {wording_key(row) for row in deliveries(session)}
    assert says == set(WORDING)
    assert {channel for channel, _ in sent_messages} == {"email", "outbox"}
    assert {message.subject for _, message in sent_messages} == {
        wording.subject for wording in WORDING.values()}
    assert admin.email in {address for mail in mailbox.received for address in mail.recipients}
    assert "new-address@example.org" in recipients(mailbox)

    words = forbidden_words()
    for _, message in sent_messages:
        # A reminder's, a reset's or a contact change's link ends in its random token (after "#"), which says
        # nothing.
        link = message.link.partition("#")[0]
        text = " ".join([message.subject, message.body, link, message.sender_name])
        assert not any(word in text.lower() for word in words), text
        assert not re.search(r"\d", text), f"a number (a score or an answer?) in {text!r}"
        assert message.link.startswith(BASE_URL + "/")
    for mail in mailbox.received:
        raw = mail.message.as_string().lower()
        assert not any(word in raw for word in words), raw
