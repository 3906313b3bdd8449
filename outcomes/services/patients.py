"""A clinic's staff, and holding a patient's row while their record changes (a clinic's
patient by id: records.clinic_patient)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import STAFF_ROLES, Patient, User


def lock_patient(session: Session, patient_id: int) -> None:
    """Hold the patient's row until the transaction ends, so that staff changes to one
    patient's record (a course, an infusion, a plan) happen one after the other and each
    sees the last. PostgreSQL's FOR NO KEY UPDATE leaves foreign-key checks (audit rows and
    the like naming the patient) unblocked; SQLite's transactions are serial already."""
    session.execute(select(Patient.id).where(Patient.id == patient_id)
                    .with_for_update(key_share=True))


def clinic_staff(session: Session, clinic_id: int, *, active_only: bool = False) -> list[User]:
    """The clinic's clinicians and admins (only those whose accounts are active, when asked:
    who may be a patient's clinician, or have their factors reset), by email."""
    statement = select(User).where(User.clinic_id == clinic_id, User.role.in_(STAFF_ROLES))
    if active_only:
        statement = statement.where(User.active.is_(True))
    return list(session.scalars(statement.order_by(User.email)))
