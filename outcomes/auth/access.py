"""Who may reach what. A page for another audience answers 404, like a missing record, so
nobody learns what exists by probing; so does an id that is not the user's to see.

The views load every record a URL names through the loaders here, one per kind: a staff
member's clinic patients and their records, a patient's own record and assessments."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort
from flask_login import current_user, login_required

from ..extensions import db
from ..models import STAFF_ROLES, Alert, Assessment, Course, Infusion, Patient
from ..services import records

View = TypeVar("View", bound=Callable[..., Any])


def roles_required(*roles: str) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(404)
            return view(*args, **kwargs)
        return wrapped  # type: ignore[return-value]
    return decorator


patient_required = roles_required("patient")
staff_required = roles_required(*STAFF_ROLES)


def safe_next_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(character) < 32 for character in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


Record = TypeVar("Record")


def _found(record: Record | None) -> Record:
    if record is None:
        abort(404)
    return record


def clinic_patient_or_404(patient_id: int) -> Patient:
    """A patient of the signed-in staff member's clinic."""
    return _found(records.clinic_patient(db.session, current_user.clinic_id, patient_id))


def own_patient() -> Patient:
    """The signed-in patient's own record."""
    return _found(current_user.patient)


def assessment_or_404(patient: Patient, assessment_id: int) -> Assessment:
    """One of ``patient``'s assessments (a patient loaded by one of the loaders above)."""
    return _found(records.patient_assessment(db.session, patient.id, assessment_id))


def course_or_404(patient: Patient, course_id: int) -> Course:
    """One of ``patient``'s courses."""
    return _found(records.patient_course(db.session, patient.id, course_id))


def infusion_or_404(patient: Patient, infusion_id: int) -> Infusion:
    """An infusion of one of ``patient``'s courses."""
    return _found(records.patient_infusion(db.session, patient.id, infusion_id))


def alert_or_404(alert_id: int) -> Alert:
    """An alert about a patient of the signed-in staff member's clinic."""
    return _found(records.clinic_alert(db.session, current_user.clinic_id, alert_id))
