"""Enrolling patients and their one-time invitation links."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import Clinic, Invitation, Patient, User, utcnow
from . import audit, plans, submissions, summaries
from .accounts import AccountError, checked_new_email, hash_password
from .audit import Actor
from .patient_admin import AS_ENROLLED, readable, record_version
from .tokens import could_be_token, new_token, token_hash


class EnrolmentError(ValueError):
    """An enrolment request that cannot be carried out, with the reason."""


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    #: The secret part of the link. Shown once; only its hash is stored.
    token: str


def enrol_patient(
    session: Session,
    actor: Actor,
    clinic: Clinic,
    identifier: str,
    display_name: str,
    contact_email: str | None = None,
    assigned_clinician: User | None = None,
    submission_key: str | None = None,
) -> Patient:
    """Add a patient to the clinic with the default measurement plan; their details as
    enrolled are version 1 (``patient_admin``).

    Raises RepeatedSubmission when the form with ``submission_key`` was stored before."""
    claim = submissions.claim(session, actor, "patient.enrol", submission_key,
                              [clinic.id, identifier, display_name, contact_email,
                               assigned_clinician.id if assigned_clinician else None])
    identifier, display_name = identifier.strip(), display_name.strip()
    if not readable(identifier) or not readable(display_name):
        raise EnrolmentError("A patient needs an identifier and a name with letters or digits.")
    exists = session.scalar(
        select(Patient.id).where(Patient.clinic_id == clinic.id, Patient.identifier == identifier)
    )
    if exists:
        raise EnrolmentError(f"A patient with identifier {identifier!r} is already enrolled.")
    if assigned_clinician is not None and (
        assigned_clinician.clinic_id != clinic.id or not assigned_clinician.is_staff
    ):
        raise EnrolmentError("The assigned clinician must work at this clinic.")
    patient = Patient(
        clinic_id=clinic.id,
        identifier=identifier,
        display_name=display_name,
        contact_email=(contact_email or "").strip().lower() or None,
        assigned_clinician_id=assigned_clinician.id if assigned_clinician else None,
    )
    try:
        with session.begin_nested():
            session.add(patient)
            session.flush()
    except IntegrityError:  # the same patient added twice at once (a double click)
        raise EnrolmentError(f"A patient with identifier {identifier!r} is already "
                             "enrolled.") from None
    claim.stored(patient.id)
    record_version(session, actor, patient, AS_ENROLLED)
    plans.add_default_plan(session, patient)
    audit.record(session, actor, "patient.enrol", patient=patient, object_type="patient",
                 object_id=patient.id)
    summaries.touch(session, patient.id)
    return patient


def issue_invitation(
    session: Session, actor: Actor, patient: Patient, valid_days: int = 7
) -> IssuedInvitation:
    """A new one-time link for the patient; any earlier unused link stops working."""
    if patient.user_id is not None:
        raise EnrolmentError("This patient has already set up their account.")
    now = utcnow()
    session.execute(
        update(Invitation)
        .where(Invitation.patient_id == patient.id, Invitation.used_at.is_(None),
               Invitation.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    token = new_token()
    invitation = Invitation(
        patient_id=patient.id,
        token_hash=token_hash(token),
        created_by_id=actor.user.id if actor.user else None,
        created_at=now,
        expires_at=now + dt.timedelta(days=valid_days),
    )
    try:
        with session.begin_nested():
            session.add(invitation)
            session.flush()
    except IntegrityError:  # another link was issued at the same moment
        raise EnrolmentError("Another invitation was created at the same moment. Reload the "
                             "patient's page and try again.") from None
    audit.record(session, actor, "invitation.issue", patient=patient, object_type="invitation",
                 object_id=invitation.id)
    return IssuedInvitation(invitation=invitation, token=token)


def usable_invitation(session: Session, token: str) -> Invitation | None:
    """The invitation this token opens, if it is unused, not revoked and not expired."""
    if not could_be_token(token):
        return None
    invitation = session.scalar(select(Invitation).where(Invitation.token_hash == token_hash(token)))
    if invitation is None or invitation.used_at or invitation.revoked_at:
        return None
    if invitation.expires_at <= utcnow():
        return None
    return invitation


def accept_invitation(
    session: Session, actor: Actor, token: str, email: str, password: str
) -> User:
    """Create the patient's login from a valid invitation; the link then stops working."""
    invitation = usable_invitation(session, token)
    if invitation is None:
        raise EnrolmentError("This invitation link is no longer valid. Ask the clinic for a "
                             "new one.")
    patient = invitation.patient
    try:
        user = User(
            clinic_id=patient.clinic_id,
            email=checked_new_email(session, email),
            role="patient",
            password_hash=hash_password(password),
        )
    except AccountError as error:
        raise EnrolmentError(str(error)) from None
    session.add(user)
    session.flush()
    # Claimed with conditional updates, so two acceptances racing cannot both succeed.
    claimed = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None),
               Invitation.revoked_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount
    linked = session.execute(
        update(Patient).where(Patient.id == patient.id, Patient.user_id.is_(None))
        .values(user_id=user.id).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1 or linked != 1:
        raise EnrolmentError("This invitation link is no longer valid. Ask the clinic for a "
                             "new one.")
    session.refresh(invitation)
    session.refresh(patient)
    audit.record(session, Actor(user, actor.ip_address, actor.request_id), "invitation.accept",
                 patient=patient, object_type="invitation", object_id=invitation.id)
    return user
