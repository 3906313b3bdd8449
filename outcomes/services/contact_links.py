"""The link that confirms a patient's new contact address (issue 12 item 5), as the worker
sends it: which change a ``confirm_contact`` delivery carries, its token issued as the message
is claimed, its lifetime once sent, and its token withdrawn when the message did not leave.
Asking for, cancelling and confirming a change is ``contact_changes``; this part is apart so
that ``deliveries`` can use it without importing the patient's administrative versions.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import CONTACT_KINDS, ContactConfirmation, Patient, utcnow
from .tokens import new_token, token_hash

EMAIL, PHONE = CONTACT_KINDS
#: How long a link works from its sending. Local policy, not a standard: a day lets a patient
#: who asked in the evening confirm the next morning, and no longer than that leaves a
#: working link lying in a mailbox or a phone's messages.
LIFETIME = dt.timedelta(hours=24)
#: The channel that carries each kind's link, and the kind a channel confirms.
CHANNEL_OF_KIND = {EMAIL: "email", PHONE: "sms"}
KIND_OF_CHANNEL = {channel: kind for kind, channel in CHANNEL_OF_KIND.items()}
#: The account notice (``Delivery.account_notice``) carrying the link.
CONFIRM_CONTACT = "confirm_contact"


@dataclass(frozen=True)
class IssuedLink:
    confirmation_id: int
    #: The secret part of the link, put in one message; only its hash is kept.
    token: str
    #: Where the message goes: the new address.
    address: str


def in_use(patient: Patient, kind: str) -> str | None:
    """The address of ``kind`` that messages to the patient go to now: their contact email,
    else their account's sign-in email; their mobile number."""
    if kind == PHONE:
        return patient.contact_phone
    return patient.contact_email or (patient.user.email if patient.user is not None else None)


def waiting_change(session: Session, patient_id: int, kind: str) -> ContactConfirmation | None:
    """The patient's change of ``kind`` waiting for its link to be followed (its link may
    have expired: the patient then resends or cancels it)."""
    return session.scalar(select(ContactConfirmation).where(
        ContactConfirmation.patient_id == patient_id, ContactConfirmation.kind == kind,
        ContactConfirmation.used_at.is_(None), ContactConfirmation.revoked_at.is_(None)))


def change_awaiting_message(session: Session, user_id: int | None,
                            channel: str) -> ContactConfirmation | None:
    """The waiting change a ``confirm_contact`` delivery to account ``user_id`` on
    ``channel`` carries the link of (None: cancelled, replaced by none, or confirmed)."""
    patient_id = session.scalar(select(Patient.id).where(Patient.user_id == user_id))
    if patient_id is None or channel not in KIND_OF_CHANNEL:
        return None
    return waiting_change(session, patient_id, KIND_OF_CHANNEL[channel])


def issue_link(session: Session, change: ContactConfirmation, *,
               valid_for: dt.timedelta) -> IssuedLink:
    """A new token for ``change``'s link, valid for ``valid_for``: the one any earlier
    message carried stops working."""
    token = new_token()
    now = utcnow()
    change.token_hash = token_hash(token)
    change.expires_at = max(now, change.created_at) + valid_for
    session.flush()
    return IssuedLink(change.id, token, change.value)


def link_sent(session: Session, confirmation_id: int, sent_at: dt.datetime) -> None:
    """The link has left: it works for ``LIFETIME`` from ``sent_at``."""
    change = session.get(ContactConfirmation, confirmation_id)
    if change is not None and change.used_at is None and change.revoked_at is None:
        change.expires_at = max(sent_at, change.created_at) + LIFETIME


def withdraw_link(session: Session, confirmation_id: int) -> None:
    """The link's message did not leave: its token is replaced by one nobody has (the change
    stays waiting; a retry or a resend carries a new link)."""
    change = session.get(ContactConfirmation, confirmation_id)
    if change is not None and change.used_at is None:
        change.token_hash = token_hash(new_token())


