"""Deliveries: writing each message once, and sending what is pending (issue 11,
docs/notifications.md).

A writer (``reminders``, ``alert_notifications``) calls ``write_delivery`` with a key that
names what the message is; the same key written again — a retry, a second worker — is a
no-op, so a message is queued once whoever queues it. ``send_pending`` then claims each due
delivery (with the patient's other reminders due on its channel: one message carries them),
builds its message from fixed wording (no health data) under the clinic's sender name, with a
reminder's single-use questionnaire link (``questionnaire_links``), sends it through its
channel (or development's outbox) and records what came of it: sent with the server's
receipt; a temporary failure retried with back-off up to ``MAX_ATTEMPTS``; a permanent one
failed; a push subscription the service no longer knows removed. Every outcome is audited without health data.

Sending commits as it goes, unlike other writers: a claim commits before its message leaves
(so a second sender skips it and no database lock is held while a server is slow), and the
outcome commits as soon as it is known (so a crash later cannot send it again).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .. import clock
from ..channels import (
    CHANNELS,
    OUTBOX,
    Channel,
    DeliveryError,
    Message,
    Receipt,
    SubscriptionGone,
    TemporaryFailure,
)
from ..models import (
    DELIVERY_PURPOSES,
    Alert,
    Assessment,
    Clinic,
    Delivery,
    Patient,
    PushSubscription,
    User,
)
from . import audit, contact_links
from .audit import Actor
from .password_resets import issue_reset, reset_sent, withdraw_reset
from .questionnaire_links import issue_link, link_sent, withdraw_link
from .reminder_rules import ReminderPolicy, in_quiet_hours

log = logging.getLogger(__name__)

#: Tries of a delivery before a temporary failure counts as final. With the back-off below,
#: the last is about four hours after the first: a mail server down for a morning loses
#: nothing, and a reminder is not sent a day late.
MAX_ATTEMPTS = 10
#: The wait after the n-th failed try: 2**(n-1) minutes, at most an hour (or longer when the
#: server asked for it with Retry-After).
LONGEST_RETRY_WAIT = dt.timedelta(hours=1)
#: How long a claim holds a delivery: longer than the slowest send (every step of a channel
#: waits at most NOTIFICATION_TIMEOUT), so a live sender keeps it; a sender that died leaves
#: it to be tried again after this.
CLAIM = dt.timedelta(minutes=5)
#: Who sends, in the audit trail.
SENDER = Actor(user=None, request_id="worker")


@dataclass(frozen=True)
class Wording:
    """A purpose's fixed message and the page its link opens (an endpoint of the app; a
    reminder's is the questionnaire link's page, the token after ``#``)."""

    subject: str
    body: str
    endpoint: str


#: The only words a message ever holds: never a score, an answer, a questionnaire's,
#: condition's or drug's name, or a person's name. Keyed by what the message says: a
#: delivery's purpose, or an account delivery's notice (``wording_key``).
WORDING: dict[str, Wording] = {
    "reminder": Wording("A questionnaire is ready for you",
                        "A questionnaire is ready for you — open Outcomes to fill it in.",
                        "auth.questionnaire_link"),
    "alert": Wording("A patient needs attention",
                     "A patient needs attention — open Outcomes.", "clinician.alerts"),
    "escalation": Wording("A patient still needs attention",
                          "A patient's alert has not been acknowledged yet — open Outcomes.",
                          "clinician.alerts"),
    "password_reset": Wording(
        "Choose a new password",
        "Someone asked to reset the password of your Outcomes account. If it was you, open "
        "this link within an hour to choose a new password; it works once. If it was not "
        "you, ignore this message: your password stays as it is.",
        "auth.password_reset"),
    "password_changed": Wording(
        "Your password was changed",
        "The password of your Outcomes account was just changed, and every other session "
        "of it was signed out. If this was not you, ask for a new password now and tell "
        "your clinic.",
        "auth.forgot_password"),
    # Sent both to the account whose factors were reset and to the admin who reset them.
    "factors_reset": Wording(
        "A sign-in was reset",
        "The clinic reset the second sign-in step (authenticator app, recovery codes and "
        "passkeys) of an Outcomes account: yours, or one that you reset. Its owner signs in "
        "with their password and sets it up again. If you did not expect this, tell your "
        "clinic.",
        "auth.login"),
    # To the account's sign-in email, which a contact change never alters: someone holding
    # the patient's unlocked phone for a minute cannot move their reminders unseen.
    "contact_changed": Wording(
        "Your contact details were changed",
        "The email address or mobile number your Outcomes reminders go to was just changed. "
        "If this was not you, tell your clinic now.",
        "patient.settings"),
    "factor_added": Wording(
        "A sign-in step was added",
        "A new second sign-in step (an authenticator app or a passkey) was just added to "
        "your Outcomes account. If this was not you, tell your clinic now.",
        "auth.security"),
    # Sent to the new address itself, never to the one in use.
    "confirm_contact": Wording(
        "Confirm your new contact address",
        "Someone asked to use this address for the reminders of an Outcomes account. If it "
        "was you, open this link within a day to confirm it; it works once. If it was not "
        "you, ignore this message: nothing changes.",
        "auth.confirm_contact"),
}


def wording_key(delivery: Delivery) -> str:
    """Which ``WORDING`` a delivery's message takes: its account notice, else its purpose."""
    return delivery.account_notice or delivery.purpose

#: What ``last_error`` says of a delivery withdrawn before it was sent (it is marked failed:
#: it will never be sent): the patient turned reminders or the channel off, or lost their
#: account; the clinic discharged the patient; the questionnaire was done meanwhile; the
#: alert was acknowledged; the contact change it confirms was cancelled or confirmed.
REMINDERS_OFF = "RemindersOff"
DISCHARGED = "PatientDischarged"
QUESTIONNAIRE_DONE = "QuestionnaireDone"
ALERT_ACKNOWLEDGED = "AlertAcknowledged"
CONTACT_CHANGE_CLOSED = "ContactChangeClosed"
#: ``last_error`` of a delivery with nowhere to go: no address, or no channel to carry it.
NO_ADDRESS = "NoAddress"
CHANNEL_OFF = "ChannelNotConfigured"


# --- writing ---------------------------------------------------------------------------------

def write_delivery(session: Session, key: str, **values: Any) -> bool:
    """Write the delivery named ``key`` with ``values`` (Delivery's columns) unless one with
    that key exists; True when this call wrote it. A concurrent writer of the same key waits
    for the first and then writes nothing (INSERT … ON CONFLICT DO NOTHING)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Delivery).values(key=key, **values).on_conflict_do_nothing(
        index_elements=[Delivery.key]).returning(Delivery.id)
    return session.execute(statement).scalar() is not None


def carrier(channel: str, config: Mapping[str, Any]) -> Channel | None:
    """The channel that carries a delivery for ``channel``: itself when the settings switch it
    on, else the outbox where it is on (development), else None."""
    own = CHANNELS.get(channel)
    if own is not None and own.configured(config):
        return own
    return OUTBOX if OUTBOX.configured(config) else None


@dataclass(frozen=True)
class Address:
    """Where a message goes: the channel's address, and for web push the subscription it is."""

    text: str
    subscription_id: int | None = None


def addresses(session: Session, channel: str, *, patient: Patient | None = None,
              user: User | None = None, clinic: Clinic | None = None) -> list[Address]:
    """Where ``channel`` reaches a patient (the contact email they confirmed, else their
    sign-in email; their phone; their account's push subscriptions), a staff account (its
    email, its push subscriptions) or, with neither, the clinic's on-call address (email
    only)."""
    account = patient.user if patient is not None else user
    if channel == "push":
        if account is None:
            return []
        return [Address(push_address(subscription), subscription.id)
                for subscription in session.scalars(
                    select(PushSubscription).where(PushSubscription.user_id == account.id)
                    .order_by(PushSubscription.id))]
    if channel == "sms":
        phone = patient.contact_phone if patient is not None else None
        return [Address(phone)] if phone else []
    if channel == "email":
        if patient is not None:
            email = contact_links.in_use(patient, contact_links.EMAIL)
        elif user is not None:
            email = user.email
        else:
            email = clinic.on_call_email if clinic is not None else None
        return [Address(email)] if email else []
    return []


def push_address(subscription: PushSubscription) -> str:
    """A stored subscription as the push channel's address (``PushSubscription.toJSON()``)."""
    return json.dumps({"endpoint": subscription.endpoint,
                       "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
                      separators=(",", ":"))


def message_for(says: str, config: Mapping[str, Any], sender_name: str,
                token: str | None = None) -> Message:
    """The message of a delivery that ``says`` (a ``WORDING`` key): fixed wording under the
    clinic's ``sender_name`` and a link into the app at PUBLIC_BASE_URL, ending in
    ``#<token>`` for a reminder's questionnaire link, a password reset's or a contact
    change's link (needs the app's context, for its URL map)."""
    wording = WORDING[says]
    link = app_link(wording.endpoint, config) + (f"#{token}" if token else "")
    return Message(wording.subject, wording.body, link, sender_name)


def app_link(endpoint: str, config: Mapping[str, Any]) -> str:
    """The absolute address of one of the app's pages at PUBLIC_BASE_URL, built outside any
    request."""
    base = urlsplit(config["PUBLIC_BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/",
                                       url_scheme=base.scheme)
    return adapter.build(endpoint, force_external=True)


# --- sending ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    """Claimed deliveries that one message carries (a patient's reminders due together on
    one channel go as one message), with all the send needs, so that no database work (and
    no lock) happens while the message is out: each delivery's id and the attempt it is on."""

    claims: list[tuple[int, int]]
    carrier: Channel
    message: Message
    addresses: list[Address]
    #: The reminder's questionnaire link the message carries (questionnaire_links).
    link_id: int | None = None
    #: The password reset whose link the message carries (password_resets).
    reset_id: int | None = None
    #: The contact change whose link the message carries (contact_changes).
    confirmation_id: int | None = None


@dataclass
class Outcome:
    """What came of one send: a receipt, or the kind (class name) of the failure that counts
    and whether it is temporary; the push subscriptions found gone."""

    receipt: Receipt | None = None
    error: str | None = None
    temporary: bool = False
    retry_after: float | None = None
    gone: list[int] = field(default_factory=list)

    def failed(self, error: Exception) -> None:
        """Note a failure; a temporary one outweighs a permanent one (of another push
        subscription), since trying again may still reach the person."""
        temporary = isinstance(error, TemporaryFailure) or not isinstance(error, DeliveryError)
        if self.error is not None and self.temporary and not temporary:
            return
        self.error, self.temporary = type(error).__name__, temporary
        self.retry_after = error.retry_after if isinstance(error, TemporaryFailure) else None


def send_pending(session: Session, config: Mapping[str, Any],
                 purposes: Collection[str] = DELIVERY_PURPOSES) -> int:
    """Send every delivery for ``purposes`` that is pending and due, one message at a time,
    each claimed first so that concurrent senders never send one twice; how many messages
    were tried.
    Commits what the session holds first, then after each claim and each outcome."""
    session.commit()
    tried = 0
    while (outgoing := _claim_next(session, config, purposes)) is not None:
        outcome = _send(outgoing, config)
        _record(session, outgoing, outcome)
        session.commit()
        tried += 1
    return tried


def _claim_next(session: Session, config: Mapping[str, Any],
                purposes: Collection[str]) -> Outgoing | None:
    """Claim the next due delivery (with the patient's other reminders due on its channel)
    and commit the claim: one more attempt, and no other sender takes them for ``CLAIM``.
    Deliveries no longer wanted or with nowhere to go are settled on the way; reminders in
    their clinic's quiet hours wait for the hours' end."""
    while True:
        now = clock.utcnow()
        due = (select(Delivery).where(Delivery.status == "pending",
                                      Delivery.next_attempt_at <= now)
               .order_by(Delivery.next_attempt_at, Delivery.id)
               # SKIP LOCKED: a sender passes over rows another is claiming (PostgreSQL;
               # SQLite's transactions take its one write lock at BEGIN, so are serial).
               .with_for_update(skip_locked=True))
        first = session.scalar(due.where(Delivery.purpose.in_(purposes)).limit(1))
        if first is None:
            session.commit()
            return None
        together = [first]
        if first.purpose == "reminder":
            together += session.scalars(due.where(
                Delivery.purpose == "reminder", Delivery.patient_id == first.patient_id,
                Delivery.channel == first.channel, Delivery.id != first.id)).all()
        outgoing = _prepare(session, together, config, now)
        session.commit()
        if outgoing is not None:
            return outgoing


def _prepare(session: Session, together: list[Delivery], config: Mapping[str, Any],
             now: dt.datetime) -> Outgoing | None:
    """The claim of deliveries to one recipient on one channel, or None when none is to be
    sent now (each withdrawn, failed or put off)."""
    first = together[0]
    clinic = session.get(Clinic, first.clinic_id)
    patient = session.get(Patient, first.patient_id) if first.patient_id else None
    wanted = []
    for delivery in together:
        withdrawn = _withdrawn(session, delivery, patient)
        if withdrawn is None:
            wanted.append(delivery)
        else:
            _settle(session, delivery, patient, "failed", now, withdrawn,
                    action="delivery.withdrawn")
    if not wanted:
        return None
    if first.purpose == "reminder":
        policy = ReminderPolicy.of(clinic)
        if in_quiet_hours(now, clinic, policy):
            for delivery in wanted:
                delivery.next_attempt_at = quiet_hours_end(now, clinic, policy)
            return None
    channel = carrier(first.channel, config)
    user = session.get(User, first.user_id) if first.user_id else None
    change = (contact_links.change_awaiting_message(session, first.user_id, first.channel)
              if first.account_notice == contact_links.CONFIRM_CONTACT else None)
    # A contact change's link goes to the new address, which is not in use yet.
    found = ([Address(change.value)] if change is not None
             else addresses(session, first.channel, patient=patient, user=user, clinic=clinic))
    if channel is None or not found:
        for delivery in wanted:
            _settle(session, delivery, patient, "failed", now,
                    CHANNEL_OFF if channel is None else NO_ADDRESS)
        return None
    for delivery in wanted:
        delivery.attempts += 1
        delivery.next_attempt_at = now + CLAIM
    claims = [(delivery.id, delivery.attempts) for delivery in wanted]
    if first.account_notice == "password_reset" and user is not None:
        # As a reminder's link: issued now, valid only while the claim holds until the
        # message is known to have left (it revokes the account's earlier open reset).
        reset = issue_reset(session, user, valid_for=CLAIM)
        return Outgoing(claims, channel, message_for("password_reset", config,
                                                     clinic.message_sender_name, reset.token),
                        found, reset_id=reset.reset_id)
    if change is not None:
        # Issued the same way: its token works while the claim holds, a day once sent.
        link = contact_links.issue_link(session, change, valid_for=CLAIM)
        return Outgoing(claims, channel,
                        message_for(contact_links.CONFIRM_CONTACT, config,
                                    clinic.message_sender_name, link.token),
                        found, confirmation_id=link.confirmation_id)
    if first.purpose != "reminder":
        return Outgoing(claims, channel, message_for(wording_key(first), config,
                                                     clinic.message_sender_name), found)
    # A fresh link for each message, valid only while its claim holds until the message is
    # known to have left. A message carrying several questionnaires opens the first.
    link = issue_link(session, patient_id=wanted[0].patient_id,
                      instrument_key=wanted[0].instrument_key, delivery_id=wanted[0].id,
                      valid_for=CLAIM)
    return Outgoing(claims, channel, message_for(first.purpose, config,
                                                 clinic.message_sender_name, link.token),
                    found, link.link_id)


def _withdrawn(session: Session, delivery: Delivery, patient: Patient | None) -> str | None:
    """Why a delivery is no longer wanted (None: it is)."""
    if delivery.purpose == "escalation":
        alert = session.get(Alert, delivery.alert_id)
        return ALERT_ACKNOWLEDGED if alert is not None and not alert.is_open else None
    if delivery.account_notice == contact_links.CONFIRM_CONTACT:
        waiting = contact_links.change_awaiting_message(session, delivery.user_id,
                                                          delivery.channel)
        return None if waiting is not None else CONTACT_CHANGE_CLOSED
    if delivery.purpose != "reminder" or patient is None:
        return None
    if patient.discharged_at is not None:
        return DISCHARGED
    if (not patient.reminders_enabled or delivery.channel not in patient.reminder_channels
            or patient.user is None or not patient.user.active):
        return REMINDERS_OFF
    done = session.scalar(select(exists().where(
        Assessment.patient_id == patient.id,
        Assessment.instrument_key == delivery.instrument_key,
        Assessment.administered_at >= delivery.occurrence_opens_at)))
    return QUESTIONNAIRE_DONE if done else None


def quiet_hours_end(now: dt.datetime, clinic: Clinic, policy: ReminderPolicy) -> dt.datetime:
    """When the clinic's quiet hours that ``now`` falls in end."""
    today = clock.local_date(now, clinic)
    end = clock.at_local_time(clinic, today, policy.quiet_until)
    return end if end > now else clock.at_local_time(clinic, today + dt.timedelta(days=1),
                                                     policy.quiet_until)


def _send(outgoing: Outgoing, config: Mapping[str, Any]) -> Outcome:
    """Send to every address (a person's push subscriptions, or their one address): sent when
    any of them took it."""
    outcome = Outcome()
    for address in outgoing.addresses:
        try:
            receipt = outgoing.carrier.send(outgoing.message, address.text, config)
        except DeliveryError as error:
            if isinstance(error, SubscriptionGone) and address.subscription_id is not None:
                outcome.gone.append(address.subscription_id)
            outcome.failed(error)
            continue
        except Exception as error:  # a fault of the channel's own: retried like a server's
            log.error("deliveries %s: the %s channel failed with %s",
                      [claim[0] for claim in outgoing.claims], outgoing.carrier.name,
                      type(error).__name__)
            outcome.failed(error)
            continue
        outcome.receipt = outcome.receipt or receipt
    return outcome


def _record(session: Session, outgoing: Outgoing, outcome: Outcome) -> None:
    """Store what came of a send on each delivery it carried, unless its claim lapsed and
    another sender took it over."""
    now = clock.utcnow()
    if outcome.gone:
        session.execute(delete(PushSubscription).where(PushSubscription.id.in_(outcome.gone)))
    if outgoing.link_id is not None:
        # A link that left lives its full time; one that did not is withdrawn (a retry
        # carries a new one).
        if outcome.receipt is not None:
            link_sent(session, outgoing.link_id, now)
        else:
            withdraw_link(session, outgoing.link_id)
    if outgoing.reset_id is not None:
        if outcome.receipt is not None:
            reset_sent(session, outgoing.reset_id, now)
        else:
            withdraw_reset(session, outgoing.reset_id)
    if outgoing.confirmation_id is not None:
        if outcome.receipt is not None:
            contact_links.link_sent(session, outgoing.confirmation_id, now)
        else:
            contact_links.withdraw_link(session, outgoing.confirmation_id)
    for delivery_id, attempt in outgoing.claims:
        delivery = session.get(Delivery, delivery_id, with_for_update=True,
                               populate_existing=True)
        if delivery is None or delivery.status != "pending" or delivery.attempts != attempt:
            log.warning("delivery %s: its claim lapsed before the send ended; the later "
                        "claim records it", delivery_id)
            continue
        patient = session.get(Patient, delivery.patient_id) if delivery.patient_id else None
        if outcome.receipt is not None:
            delivery.receipt = outcome.receipt.reference
            _settle(session, delivery, patient, "sent", now, None)
        elif outcome.temporary and delivery.attempts < MAX_ATTEMPTS:
            delivery.last_error = outcome.error
            delivery.next_attempt_at = now + retry_wait(delivery.attempts, outcome.retry_after)
        else:
            _settle(session, delivery, patient, "failed", now, outcome.error)


def retry_wait(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    """How long to wait after the ``attempts``-th failed try: doubling from a minute, at most
    ``LONGEST_RETRY_WAIT``, and never less than the server's own Retry-After."""
    wait = min(dt.timedelta(minutes=2 ** (attempts - 1)), LONGEST_RETRY_WAIT)
    if retry_after is not None:
        wait = max(wait, dt.timedelta(seconds=retry_after))
    return wait


def _settle(session: Session, delivery: Delivery, patient: Patient | None, status: str,
            now: dt.datetime, error: str | None, action: str | None = None) -> None:
    """Mark a delivery sent or failed for good, and audit it (no health data: its purpose,
    channel, tries and error kind)."""
    delivery.status = status
    delivery.next_attempt_at = None
    if status == "sent":
        delivery.sent_at = now
    else:
        delivery.failed_at = now
        delivery.last_error = error
    details: dict[str, Any] = {"purpose": delivery.purpose, "channel": delivery.channel,
                               "attempts": delivery.attempts}
    if delivery.alert_id is not None:
        details["alert_id"] = delivery.alert_id
    if delivery.account_notice is not None:
        details["notice"] = delivery.account_notice
    if error is not None:
        details["error"] = error
    audit.record(session, SENDER, action or f"delivery.{status}", clinic_id=delivery.clinic_id,
                 patient=patient, object_type="delivery", object_id=delivery.id,
                 details=details)
