"""A patient's new contact address, used only once they follow the link sent to it (issue 12
item 5): a new email is confirmed by an email to it, a new mobile number by a text to it.

Asking for a change keeps the address (``ContactConfirmation``) and queues an account
delivery (``confirm_contact``) that the worker sends to the NEW address. As with a password
reset, the link's token is issued as the message is claimed and works only while the claim
holds, then ``LIFETIME`` from its sending (``contact_links``); a message that did not leave
takes its token with it. The token travels after ``#`` and only its SHA-256 is stored. A
patient has at most one change waiting per kind: a newer one revokes it, as do cancelling
and the staff changing that address (``patient_admin``). Confirming (signed in as that
patient) puts the address in use as a new version of the patient's details
(``patient_admin.record_version``, as the staff's edits are); the sign-in email of the
patient's account is a separate thing and stays as it is, and hears of the change
(``contact_changed``).

Audit rows name the kind of address and, for a phone, its last two digits
(``mask_phone``), as the reminder settings' rows do; never an email address.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ..channels import ContactError
from ..channels.contacts import email_address, phone_number
from ..models import CONTACT_KINDS, ContactConfirmation, Delivery, Patient, utcnow
from . import audit
from .account_notices import notify_account
from .audit import Actor
from .contact_links import (
    CHANNEL_OF_KIND,
    CONFIRM_CONTACT,
    EMAIL,
    LIFETIME,
    PHONE,
    in_use,
    waiting_change,
)
from .patient_admin import record_version, revoke_waiting_changes
from .patient_settings import mask_phone
from .patients import lock_patient
from .tokens import could_be_token, new_token, token_hash

#: The kinds as the patient reads them.
KIND_WORDS = {EMAIL: "email address", PHONE: "mobile number"}
#: Why a version of the patient's details was made (``PatientRevision.reason``).
CONFIRMED_REASON = "The patient changed it on their settings page and confirmed it by the " \
                   "link sent to the new address"
REMOVED_REASON = "The patient removed it on their settings page"
#: The account notice telling the patient, at their sign-in email, that a change was confirmed.
CONTACT_CHANGED = "contact_changed"


class ContactChangeError(ValueError):
    """A change that cannot be made, with a message for the patient and the field (the
    kind) it is about."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def normalised(kind: str, text: str, config: Mapping[str, Any]) -> str:
    """``text`` as an address of ``kind`` is stored (a lower-case email, an E.164 number),
    refused with ``ContactChangeError`` when it cannot be used."""
    try:
        if kind == EMAIL:
            return email_address(text).lower()
        return phone_number(text, config["PHONE_REGION"])
    except ContactError as error:
        raise ContactChangeError(str(error), kind) from None


@dataclass(frozen=True)
class WaitingChange:
    """A change as the patient's settings page shows it."""

    kind: str
    #: The new address (the patient's own, shown to them only).
    value: str
    #: Whether its link no longer works (or its message could not leave): resend or cancel.
    link_expired: bool


def waiting_changes(session: Session, patient: Patient) -> list[WaitingChange]:
    """The patient's waiting changes, email first."""
    now = utcnow()
    return [WaitingChange(change.kind, change.value, change.expires_at <= now)
            for kind in CONTACT_KINDS
            if (change := waiting_change(session, patient.id, kind)) is not None]


def _details(kind: str, value: str | None) -> dict[str, Any]:
    """What an audit row says of an address: its kind, and a phone's last two digits."""
    return {"kind": kind, **({"phone": mask_phone(value)} if kind == PHONE else {})}


def update_contact(session: Session, actor: Actor, patient: Patient, kind: str, text: str,
                   config: Mapping[str, Any]) -> str:
    """What the patient typed for ``kind``: a new address starts a change confirmed by the
    link sent to it ("requested"; an earlier waiting one is revoked); the address in use
    changes nothing ("unchanged"), nor does the one already waiting ("waiting"); a blank
    removes the address at once ("removed": no link is needed to stop using one). Raises
    ``ContactChangeError`` (nothing changed) for an address that cannot be used, or a number
    that text reminders still need."""
    if kind not in CONTACT_KINDS:
        raise ContactChangeError("That is not a kind of contact address.")
    if not text.strip():
        return "removed" if remove_contact(session, actor, patient, kind) else "unchanged"
    value = normalised(kind, text, config)
    if value == in_use(patient, kind):
        return "unchanged"
    waiting = waiting_change(session, patient.id, kind)
    if waiting is not None and waiting.value == value:
        return "waiting"
    request_change(session, actor, patient, kind, value)
    return "requested"


def request_change(session: Session, actor: Actor, patient: Patient, kind: str,
                   value: str) -> ContactConfirmation:
    """Keep ``value`` (normalised) as the patient's new address of ``kind`` until confirmed,
    revoking any change of that kind waiting, and queue the message with its link. Audited."""
    if patient.user_id is None:
        raise ContactChangeError("Your contact details can be changed once your account is "
                                 "set up.", kind)
    revoke_waiting_changes(session, patient, [kind])
    now = utcnow()
    # The token of a link nobody has: the real one is issued as the message is claimed.
    change = ContactConfirmation(patient_id=patient.id, kind=kind, value=value,
                                 token_hash=token_hash(new_token()), created_at=now,
                                 expires_at=now + LIFETIME)
    session.add(change)
    session.flush()
    _queue_message(session, patient, kind)
    audit.record(session, actor, "patient.contact_change_requested", patient=patient,
                 object_type="contact_confirmation", object_id=change.id,
                 details=_details(kind, value))
    return change


def resend(session: Session, actor: Actor, patient: Patient, kind: str) -> bool:
    """Send the waiting change's link again (a new token: the earlier link stops working).
    False when no change of ``kind`` is waiting. A message already on its way is not
    doubled: it will carry a fresh link."""
    change = waiting_change(session, patient.id, kind)
    if change is None:
        return False
    on_its_way = session.scalar(select(exists().where(
        Delivery.user_id == patient.user_id, Delivery.account_notice == CONFIRM_CONTACT,
        Delivery.channel == CHANNEL_OF_KIND[kind], Delivery.status == "pending")))
    if not on_its_way:
        _queue_message(session, patient, kind)
    audit.record(session, actor, "patient.contact_change_resent", patient=patient,
                 object_type="contact_confirmation", object_id=change.id,
                 details=_details(kind, change.value))
    return True


def cancel(session: Session, actor: Actor, patient: Patient, kind: str) -> bool:
    """Withdraw the waiting change of ``kind`` (its link stops working; a message not yet
    sent is withdrawn by the worker). False when none was waiting."""
    change = waiting_change(session, patient.id, kind)
    if change is None:
        return False
    change.revoked_at = utcnow()
    session.flush()
    audit.record(session, actor, "patient.contact_change_cancelled", patient=patient,
                 object_type="contact_confirmation", object_id=change.id,
                 details=_details(kind, change.value))
    return True


def remove_contact(session: Session, actor: Actor, patient: Patient, kind: str) -> bool:
    """Stop using the patient's contact address of ``kind`` (email reminders then go to the
    sign-in email); any change of that kind waiting is withdrawn too. False when there was
    none. A number is kept while text reminders are chosen."""
    old = patient.contact_phone if kind == PHONE else patient.contact_email
    if old is not None and kind == PHONE and CHANNEL_OF_KIND[PHONE] in patient.reminder_channels:
        raise ContactChangeError("Text-message reminders need your mobile number: untick "
                                 "text messages under Reminders first.", kind)
    cancelled = cancel(session, actor, patient, kind)
    if old is None:
        return cancelled
    _hold(session, patient)
    if kind == PHONE:
        patient.contact_phone = None
    else:
        patient.contact_email = None
    revision = record_version(session, actor, patient, REMOVED_REASON)
    audit.record(session, actor, "patient.contact_removed", patient=patient,
                 object_type="patient", object_id=patient.id,
                 object_version=revision.version, old=_details(kind, old),
                 new=_details(kind, None))
    # Told like a confirmed change: a removal moves email reminders to the sign-in address.
    assert patient.user is not None  # removed from the patient's own settings
    notify_account(session, patient.user, CONTACT_CHANGED)
    return True


def _queue_message(session: Session, patient: Patient, kind: str) -> None:
    """The account notice carrying the link, sent by the worker (services.deliveries) to
    the change's address."""
    assert patient.user is not None  # a change is asked for from the patient's account
    notify_account(session, patient.user, CONFIRM_CONTACT, channel=CHANNEL_OF_KIND[kind])
    session.flush()


# --- confirming ------------------------------------------------------------------------------

def confirm(session: Session, actor: Actor, patient: Patient,
            token: str) -> ContactConfirmation | None:
    """Put the address the link ``token`` confirms into use for ``patient`` (the signed-in
    patient): the link is used and the change audited. None, changing nothing, when the link
    is unknown, used, replaced, cancelled, expired or another patient's (the caller says the
    same for each). The account's sign-in email is not changed."""
    if not could_be_token(token):
        return None
    # Locked, so that two requests sending one link at once use it once (PostgreSQL;
    # SQLite's writes are serial).
    change = session.scalar(select(ContactConfirmation)
                            .where(ContactConfirmation.token_hash == token_hash(token))
                            .with_for_update())
    if (change is None or change.patient_id != patient.id or change.used_at is not None
            or change.revoked_at is not None or change.expires_at <= utcnow()):
        return None
    change.used_at = utcnow()
    _hold(session, patient)
    if change.kind == PHONE:
        old, patient.contact_phone = patient.contact_phone, change.value
    else:
        old, patient.contact_email = patient.contact_email, change.value
    revision = record_version(session, actor, patient, CONFIRMED_REASON)
    audit.record(session, actor, "patient.contact_changed", patient=patient,
                 object_type="patient", object_id=patient.id,
                 object_version=revision.version, old=_details(change.kind, old),
                 new=_details(change.kind, change.value),
                 details={"contact_confirmation_id": change.id})
    # To the sign-in email, which no contact change alters (never the new address): someone
    # holding the patient's unlocked phone cannot move their reminders unseen.
    assert patient.user is not None  # confirmed signed in as the patient
    notify_account(session, patient.user, CONTACT_CHANGED)
    return change


def _hold(session: Session, patient: Patient) -> None:
    """Lock the patient's row and read it again, as the staff's changes do
    (``patient_admin``): versions are numbered one after the other, each from what is
    committed."""
    lock_patient(session, patient.id)
    session.refresh(patient)
