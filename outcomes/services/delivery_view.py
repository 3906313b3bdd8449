"""Deliveries as staff read them (issue 11): who a message went to, through which channel,
and what became of it — on the alert it was about, and in development's outbox with the
message itself, rebuilt from its fixed wording (a message is never stored, and holds no
health data)."""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..channels import CHANNELS, OUTBOX_RECEIPT_PREFIX, Message
from ..channels.sms import text_of
from ..models import Clinic, Delivery, QuestionnaireLink
from .deliveries import (
    ALERT_ACKNOWLEDGED,
    CHANNEL_OFF,
    CONTACT_CHANGE_CLOSED,
    DISCHARGED,
    MAX_ATTEMPTS,
    NO_ADDRESS,
    QUESTIONNAIRE_DONE,
    REMINDERS_OFF,
    WORDING,
    app_link,
    wording_key,
)

#: Who a delivery was for, as staff call them (never the patient's name: the outbox links
#: to the patient's page instead).
RECIPIENTS = {"reminder": "patient", "alert": "clinician", "escalation": "admin",
              "account": "account holder"}
ON_CALL = "on-call"

#: Why a delivery failed or was withdrawn, in words (``Delivery.last_error`` holds a kind).
FAILURES = {
    "TemporaryFailure": "the server could not be reached or could not take it",
    "PermanentFailure": "refused: it can never reach this address",
    "SubscriptionGone": "the browser's push subscription has ended",
    REMINDERS_OFF: "withdrawn: the patient turned reminders or this channel off",
    DISCHARGED: "withdrawn: the patient was discharged",
    QUESTIONNAIRE_DONE: "withdrawn: the questionnaire was done meanwhile",
    ALERT_ACKNOWLEDGED: "withdrawn: the alert was acknowledged",
    CONTACT_CHANGE_CLOSED: "withdrawn: the contact change was cancelled or already confirmed",
    NO_ADDRESS: "there is no address to send it to",
    CHANNEL_OFF: "this channel is not set up",
}

OUTBOX_PAGE_SIZE = 50


@dataclass(frozen=True)
class DeliveryLine:
    """One delivery in words: whom, how, when and how it went."""

    delivery: Delivery
    #: "patient", "clinician", "admin" or "on-call".
    recipient: str
    channel: str
    #: "sent", "failed", "waiting for retry (attempt 2 of 10 failed)", "waiting to be sent".
    status: str
    #: The tag's tone: "good" (sent), "alert" (failed), "due" (waiting).
    tone: str
    #: Why it failed, or what the last try met, in words; None when nothing went wrong.
    reason: str | None
    #: The moment that goes with the status (sent or failed at, next try, due) and its words.
    when: dt.datetime | None
    when_label: str


def delivery_line(delivery: Delivery) -> DeliveryLine:
    """``delivery`` described for staff."""
    recipient = ON_CALL if delivery.patient_id is None and delivery.user_id is None \
        else RECIPIENTS[delivery.purpose]
    channel = CHANNELS[delivery.channel].label if delivery.channel in CHANNELS \
        else delivery.channel
    reason = FAILURES.get(delivery.last_error, delivery.last_error) \
        if delivery.last_error is not None else None
    line = functools.partial(DeliveryLine, delivery, recipient, channel)
    if delivery.status == "sent":
        return line("sent", "good", None, delivery.sent_at, "at")
    if delivery.status == "failed":
        tries = f" ({delivery.attempts} tries)" if delivery.attempts > 1 else ""
        return line("failed", "alert", (reason or "not sent") + tries, delivery.failed_at, "at")
    if delivery.last_error is not None:
        return line(f"waiting for retry (attempt {delivery.attempts} of {MAX_ATTEMPTS} failed)",
                    "due", reason, delivery.next_attempt_at, "next try")
    if delivery.attempts:
        return line(f"being sent (attempt {delivery.attempts})", "due", None,
                    delivery.next_attempt_at, "claimed until")
    return line("waiting to be sent", "due", None, delivery.next_attempt_at, "due")


def alert_delivery_lines(session: Session, alert_ids: list[int]
                         ) -> dict[int, list[DeliveryLine]]:
    """The notifications about each of these alerts (one statement for all), oldest first."""
    if not alert_ids:
        return {}
    found: dict[int, list[DeliveryLine]] = {}
    for delivery in session.scalars(select(Delivery).where(Delivery.alert_id.in_(alert_ids))
                                    .order_by(Delivery.created_at, Delivery.id)):
        found.setdefault(delivery.alert_id, []).append(delivery_line(delivery))
    return found


# --- the outbox (development) -------------------------------------------------------------

@dataclass(frozen=True)
class OutboxEntry:
    """A delivery and its message as it was (or would be) sent."""

    line: DeliveryLine
    message: Message
    #: The text exactly as an SMS carries it (texts have no subject).
    sms_text: str | None
    #: True when the outbox carried it: it never left the machine.
    kept: bool
    #: For a reminder sent with a single-use link: only its hash is kept, so the link
    #: shown is the page it opened after sign-in.
    single_use_link: bool


@dataclass(frozen=True)
class OutboxPage:
    entries: list[OutboxEntry]
    page: int
    pages: int
    total: int


def outbox_page(session: Session, clinic: Clinic, base_url: str, page: int) -> OutboxPage:
    """A page of the clinic's deliveries, newest first (``OUTBOX_PAGE_SIZE`` a page), each with
    its message rebuilt from the fixed wording and the clinic's sender name, linking to the
    app at ``base_url`` (PUBLIC_BASE_URL, where the worker's messages link)."""
    total = session.scalar(select(func.count()).select_from(Delivery)
                           .where(Delivery.clinic_id == clinic.id)) or 0
    pages = max(1, -(-total // OUTBOX_PAGE_SIZE))
    page = min(max(1, page), pages)
    deliveries = list(session.scalars(
        select(Delivery).where(Delivery.clinic_id == clinic.id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .offset((page - 1) * OUTBOX_PAGE_SIZE).limit(OUTBOX_PAGE_SIZE)))
    linked = set(session.scalars(select(QuestionnaireLink.delivery_id).where(
        QuestionnaireLink.delivery_id.in_([delivery.id for delivery in deliveries]))))
    messages = {says: _message(says, clinic, base_url) for says in WORDING}
    entries = []
    for delivery in deliveries:
        message = messages[wording_key(delivery)]
        entries.append(OutboxEntry(
            delivery_line(delivery), message,
            text_of(message) if delivery.channel == "sms" else None,
            kept=(delivery.receipt or "").startswith(OUTBOX_RECEIPT_PREFIX),
            single_use_link=delivery.id in linked))
    return OutboxPage(entries, page, pages, total)


def _message(says: str, clinic: Clinic, base_url: str) -> Message:
    wording = WORDING[says]
    return Message(wording.subject, wording.body,
                   app_link(wording.endpoint, {"PUBLIC_BASE_URL": base_url}),
                   clinic.message_sender_name)
