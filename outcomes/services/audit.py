"""The audit trail: who did what to which record, when and from where."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..models import AuditEvent, Patient, User


@dataclass(frozen=True)
class Actor:
    """Whoever causes a change: a signed-in user, or the system (a CLI command, the seeder)."""

    user: User | None
    ip_address: str | None = None
    request_id: str | None = None

    @property
    def role(self) -> str:
        return self.user.role if self.user is not None else "system"


SYSTEM = Actor(user=None, request_id="cli")


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    clinic_id: int | None = None,
    patient: Patient | None = None,
    object_type: str | None = None,
    object_id: int | str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit event to the session (committed with the change it describes)."""
    if clinic_id is None:
        clinic_id = patient.clinic_id if patient is not None else (
            actor.user.clinic_id if actor.user is not None else None
        )
    event = AuditEvent(
        actor_id=actor.user.id if actor.user is not None else None,
        actor_role=actor.role,
        clinic_id=clinic_id,
        patient_id=patient.id if patient is not None else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id) if object_id is not None else None,
        ip_address=actor.ip_address,
        request_id=actor.request_id,
        details=details or {},
    )
    session.add(event)
    return event
