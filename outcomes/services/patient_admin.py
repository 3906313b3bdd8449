"""A patient's administrative details, kept by the clinic's staff (issue 12 item 4): name,
identifier (the clinic's MRN) and contact details, the assigned clinician, discharge and
re-admission.

Every change needs a reason and makes a new version (``PatientRevision``): version 1 is the
patient as enrolled (``record_version``, from ``enrolment``), each later one the full details
after the change, with who made it and why. The patient's row holds the latest. A change is
audited old → new; no change stores nothing.

Writers lock the patient's row first (``patients.lock_patient``), so two changes of one
patient at once take consecutive versions and the second sees the first. An edit of the
details names the version its form showed: fields someone else changed meanwhile are kept,
and a field both changed differently is refused rather than silently overwritten.

Staff changing a contact address revoke the patient's own change of it still waiting for its
link (``contact_changes``), so that an old link cannot overwrite the clinic's correction.

A discharged patient is asked for nothing and reminded of nothing (``schedule``), is left off
the dashboard unless asked for, and keeps their history, results and exports; they can still
sign in and see it. Re-admission puts them back under the clinic's care.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..channels.contacts import ContactError, email_address, phone_number
from ..models import STAFF_ROLES, ContactConfirmation, Patient, PatientRevision, User, utcnow
from . import audit, summaries
from .audit import Actor
from .contact_links import EMAIL, PHONE
from .patient_settings import mask_phone
from .patients import lock_patient

#: Version 1's reason, as migration 0015 wrote it for the patients enrolled before it.
AS_ENROLLED = "As enrolled"
NAME_MAX = 200
IDENTIFIER_MAX = 64
EMAIL_MAX = 254
REASON_MAX = 500


class PatientAdminRefused(ValueError):
    """A change that cannot be made: a message per field (by its name, or "form"). Nothing
    was changed."""

    def __init__(self, problems: dict[str, str], stale: bool = False) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems
        #: The form showed details someone else has changed since: it needs the latest.
        self.stale = stale


@dataclass(frozen=True)
class PatientDetails:
    """What staff edit on the details form, as the patient's columns hold it."""

    display_name: str
    identifier: str
    contact_email: str | None
    contact_phone: str | None


_DETAILS = tuple(field.name for field in dataclasses.fields(PatientDetails))

#: The versioned columns in words, for the history and the audit trail's readers.
LABELS = {"display_name": "Name", "identifier": "Identifier", "contact_email": "Email",
          "contact_phone": "Mobile number", "assigned_clinician_id": "Clinician",
          "discharged": "Discharged"}
_VERSIONED = tuple(LABELS)
#: The kind of contact address (``ContactConfirmation.kind``) each contact column holds.
_CONTACT_KIND = {"contact_email": EMAIL, "contact_phone": PHONE}


def readable(text: str) -> bool:
    """Whether ``text`` has a letter or digit: refuses blanks and invisible-only text
    (zero-width characters and the like)."""
    return any(character.isalnum() for character in text)


# -- reads ------------------------------------------------------------------------------------

def details_of(patient: Patient) -> PatientDetails:
    """The patient's details as they stand."""
    return PatientDetails(**{name: getattr(patient, name) for name in _DETAILS})


def latest_version(session: Session, patient_id: int) -> int:
    """The number of the patient's latest version (0 before version 1 is written)."""
    return session.scalar(select(func.coalesce(func.max(PatientRevision.version), 0))
                          .where(PatientRevision.patient_id == patient_id)) or 0


@dataclass(frozen=True)
class Change:
    """One column of a version that differs from the version before, in words."""

    label: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    """One version of the patient's details, with what it changed."""

    revision: PatientRevision
    #: Who made it (their login); None for version 1 of a patient enrolled before versions.
    changed_by: str | None
    #: The details it holds (version 1) or those it changed (later ones), in words.
    changes: list[Change]


def history(session: Session, patient: Patient) -> list[HistoryEntry]:
    """The patient's versions, newest first, each with what it changed from the one
    before."""
    revisions = list(session.scalars(
        select(PatientRevision).where(PatientRevision.patient_id == patient.id)
        .order_by(PatientRevision.version)))
    people = {user.id: user.email for user in session.scalars(
        select(User).where(User.id.in_(
            ({r.changed_by_id for r in revisions}
             | {r.assigned_clinician_id for r in revisions}) - {None})))}
    entries = []
    before: PatientRevision | None = None
    for revision in revisions:
        entries.append(HistoryEntry(revision, people.get(revision.changed_by_id), [
            Change(LABELS[name], _in_words(name, getattr(before, name), people)
                   if before is not None else "",
                   _in_words(name, getattr(revision, name), people))
            for name in _VERSIONED
            if before is None or getattr(before, name) != getattr(revision, name)]))
        before = revision
    return entries[::-1]


def _in_words(name: str, value: Any, people: dict[int, str]) -> str:
    if name == "assigned_clinician_id":
        return people.get(value, "none") if value is not None else "none"
    if name == "discharged":
        return "yes" if value else "no"
    return value if value else "none"


# -- rules ------------------------------------------------------------------------------------

def checked_details(session: Session, patient: Patient, wanted: PatientDetails,
                    phone_region: str) -> PatientDetails:
    """``wanted`` in its stored form (trimmed, the email normalised, the phone in E.164, a
    blank contact none), or ``PatientAdminRefused`` naming every problem: a name or
    identifier without letters or digits or too long, an identifier another patient of the
    clinic has, an email or phone that is not one (the phone read as dialled in
    ``phone_region``)."""
    problems: dict[str, str] = {}
    name, identifier = wanted.display_name.strip(), wanted.identifier.strip()
    if not readable(name):
        problems["display_name"] = "Give the patient's name."
    elif len(name) > NAME_MAX:
        problems["display_name"] = f"Keep the name to {NAME_MAX} characters."
    if not readable(identifier):
        problems["identifier"] = "Give the clinic's identifier (MRN) for the patient."
    elif len(identifier) > IDENTIFIER_MAX:
        problems["identifier"] = f"Keep the identifier to {IDENTIFIER_MAX} characters."
    elif identifier != patient.identifier and _identifier_taken(session, patient, identifier):
        problems["identifier"] = _TAKEN
    email = (wanted.contact_email or "").strip() or None
    if email is not None:
        try:
            # Lower case, as enrolment stores it.
            email = email_address(email).lower()
        except ContactError as error:
            problems["contact_email"] = str(error)
    phone = (wanted.contact_phone or "").strip() or None
    if phone is not None:
        try:
            phone = phone_number(phone, phone_region)
        except ContactError as error:
            problems["contact_phone"] = str(error)
    if problems:
        raise PatientAdminRefused(problems)
    return PatientDetails(name, identifier, email, phone)


_TAKEN = "Another patient of this clinic already has this identifier."
_STALE = "The form was out of date. It now shows the latest details; make your change again."


def _identifier_taken(session: Session, patient: Patient, identifier: str) -> bool:
    return bool(session.scalar(select(exists().where(
        Patient.clinic_id == patient.clinic_id, Patient.identifier == identifier,
        Patient.id != patient.id))))


def checked_reason(reason: str | None) -> str:
    """The reason for a change, trimmed; ``PatientAdminRefused`` when blank or too long."""
    reason = (reason or "").strip()
    if not readable(reason):
        raise PatientAdminRefused({"reason": "Give the reason for the change."})
    if len(reason) > REASON_MAX:
        raise PatientAdminRefused({"reason": f"Keep the reason to {REASON_MAX} characters."})
    return reason


# -- writers ----------------------------------------------------------------------------------

def record_version(session: Session, actor: Actor, patient: Patient,
                   reason: str) -> PatientRevision:
    """Store the patient's details as they stand as their next version (version 1 for a
    patient just enrolled). The caller holds the patient's row (or has just created it)."""
    revision = PatientRevision(
        patient_id=patient.id, version=latest_version(session, patient.id) + 1,
        display_name=patient.display_name, identifier=patient.identifier,
        contact_email=patient.contact_email, contact_phone=patient.contact_phone,
        assigned_clinician_id=patient.assigned_clinician_id,
        discharged=patient.discharged_at is not None, reason=reason,
        changed_by_id=actor.user.id if actor.user is not None else None)
    session.add(revision)
    session.flush()
    return revision


def update_details(session: Session, actor: Actor, patient: Patient, wanted: PatientDetails,
                   based_on: int, reason: str, phone_region: str) -> list[str]:
    """Change the patient's name, identifier and contact details to ``wanted``, as edited on
    a form that showed version ``based_on``, for ``reason``: a new version, audited old →
    new. The names of the fields changed (none: nothing stored, nothing audited).

    Only the fields the form changed from ``based_on`` are applied, so a change someone made
    meanwhile to another field stands; one they made to the same field, differently, is
    refused. A contact address changed here revokes the patient's own change of it still
    waiting for its link. ``PatientAdminRefused``: nothing changed."""
    _hold(session, patient)
    shown = _version(session, patient.id, based_on)
    if shown is None:
        raise PatientAdminRefused({"form": _STALE}, stale=True)
    wanted = checked_details(session, patient, wanted, phone_region)
    before = details_of(patient)
    edited = [name for name in _DETAILS if getattr(wanted, name) != getattr(shown, name)]
    clashes = [LABELS[name] for name in edited
               if getattr(before, name) not in (getattr(shown, name), getattr(wanted, name))]
    if clashes:
        raise PatientAdminRefused({"form": (
            f"{' and '.join(clashes)} changed while you were editing (see the history). "
            f"Nothing was saved: the form now shows the latest details; make your change "
            f"again.")}, stale=True)
    changed = [name for name in edited if getattr(before, name) != getattr(wanted, name)]
    if not changed:
        return []
    reason = checked_reason(reason)
    for name in changed:
        setattr(patient, name, getattr(wanted, name))
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # the identifier was given to another patient at the same moment
        session.refresh(patient)
        raise PatientAdminRefused({"identifier": _TAKEN}) from None
    revision = record_version(session, actor, patient, reason)
    revoked = revoke_waiting_changes(session, patient, [
        _CONTACT_KIND[name] for name in changed if name in _CONTACT_KIND])
    audit.record(session, actor, "patient.update_details", patient=patient,
                 object_type="patient", object_id=patient.id, object_version=revision.version,
                 old={name: _audited(name, getattr(before, name)) for name in changed},
                 new={name: _audited(name, getattr(wanted, name)) for name in changed},
                 reason=reason,
                 details={"contact_changes_revoked": revoked} if revoked else None)
    summaries.touch(session, patient.id)  # the dashboard shows the name and identifier
    return changed


def revoke_waiting_changes(session: Session, patient: Patient, kinds: list[str]) -> list[str]:
    """Revoke the patient's own contact changes of ``kinds`` still waiting for their link
    (``contact_changes``): its link stops working and a message not yet sent is withdrawn by
    the worker. The kinds that had one."""
    if not kinds:
        return []
    # A statement, flushed before any insert, so the one-open-per-kind index never sees two.
    revoked = session.scalars(
        update(ContactConfirmation)
        .where(ContactConfirmation.patient_id == patient.id,
               ContactConfirmation.kind.in_(kinds), ContactConfirmation.used_at.is_(None),
               ContactConfirmation.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(ContactConfirmation.kind)
        .execution_options(synchronize_session="fetch"))
    return sorted(revoked)


def reassign_clinician(session: Session, actor: Actor, patient: Patient, clinician_id: int,
                       reason: str) -> bool:
    """Make the clinic's active clinician or admin ``clinician_id`` the patient's clinician,
    for ``reason``: a new version, audited old → new. False when they already are (nothing
    stored). ``PatientAdminRefused``: nothing changed."""
    _hold(session, patient)
    clinician = session.get(User, clinician_id)
    if (clinician is None or clinician.clinic_id != patient.clinic_id
            or clinician.role not in STAFF_ROLES or not clinician.active):
        raise PatientAdminRefused({"clinician": "Choose an active clinician or admin of this "
                                                "clinic."})
    if patient.assigned_clinician_id == clinician.id:
        return False
    reason = checked_reason(reason)
    before = patient.assigned_clinician_id
    patient.assigned_clinician_id = clinician.id
    session.flush()
    revision = record_version(session, actor, patient, reason)
    audit.record(session, actor, "patient.reassign", patient=patient, object_type="patient",
                 object_id=patient.id, object_version=revision.version,
                 old={"assigned_clinician_id": before},
                 new={"assigned_clinician_id": clinician.id}, reason=reason)
    summaries.touch(session, patient.id)
    return True


def discharge(session: Session, actor: Actor, patient: Patient, reason: str) -> None:
    """Discharge the patient, for ``reason``: from now on nothing is due for them and no
    reminder is written; their records stay. A new version, audited.
    ``PatientAdminRefused`` when already discharged: nothing changed."""
    _hold(session, patient)
    if patient.discharged_at is not None:
        raise PatientAdminRefused({"form": "This patient is already discharged."})
    reason = checked_reason(reason)
    patient.discharged_at = utcnow()
    _record_care(session, actor, patient, reason, "patient.discharge")


def readmit(session: Session, actor: Actor, patient: Patient, reason: str) -> None:
    """Re-admit a discharged patient, for ``reason``: their plan applies again from now. A new
    version, audited. ``PatientAdminRefused`` when not discharged: nothing changed."""
    _hold(session, patient)
    if patient.discharged_at is None:
        raise PatientAdminRefused({"form": "This patient is under the clinic's care already."})
    reason = checked_reason(reason)
    patient.discharged_at = None
    _record_care(session, actor, patient, reason, "patient.readmit")


def _record_care(session: Session, actor: Actor, patient: Patient, reason: str,
                 action: str) -> None:
    session.flush()
    revision = record_version(session, actor, patient, reason)
    discharged = patient.discharged_at is not None
    audit.record(session, actor, action, patient=patient, object_type="patient",
                 object_id=patient.id, object_version=revision.version,
                 old={"discharged": not discharged}, new={"discharged": discharged},
                 reason=reason)
    summaries.touch(session, patient.id)  # what is due, and so the dashboard's row


def _hold(session: Session, patient: Patient) -> None:
    """Lock the patient's row and read it again: a change committed while this one waited
    is what this one starts from."""
    lock_patient(session, patient.id)
    session.refresh(patient)


def _version(session: Session, patient_id: int, version: int) -> PatientRevision | None:
    return session.scalar(select(PatientRevision).where(
        PatientRevision.patient_id == patient_id, PatientRevision.version == version))


def _audited(name: str, value: Any) -> Any:
    """A detail as the audit trail keeps it: the phone number's last two digits only, as for
    the patient's own settings."""
    return mask_phone(value) if name == "contact_phone" else value
