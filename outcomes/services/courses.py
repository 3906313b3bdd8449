"""Treatment courses and the infusion log.

Infusion records are versioned: a correction adds a version with a reason, and every earlier
version stays in the history. Values outside physiological bounds are refused with the
field named; the same bounds are database constraints.

Each change from a form carries the form's submission key (``submissions``): sent twice, it
changes the record once. Changes to one patient's courses and infusions are serialised on the
patient's row (``patients.lock_patient``), so two forms sent at once for one patient act as
if sent one after the other: the second sees the first's course, infusion number or version.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..clock import clinic_today
from ..models import COURSE_STATUSES, INDICATIONS, Course, Infusion, InfusionVersion, Patient, utcnow
from . import audit, submissions, summaries
from .audit import Actor
from .patients import lock_patient

#: Side effects a clinician can tick, from the common and the rare serious ones.
SIDE_EFFECTS = {
    "dissociation": "Dissociation",
    "dizziness": "Dizziness",
    "nausea": "Nausea",
    "vomiting": "Vomiting",
    "headache": "Headache",
    "blurred_vision": "Blurred vision",
    "anxiety": "Anxiety",
    "raised_blood_pressure": "Raised blood pressure",
    "raised_heart_rate": "Raised heart rate",
    "hallucinations": "Hallucinations",
    "confusion": "Severe confusion",
    "allergic_reaction": "Allergic reaction",
}

INDICATION_LABELS = {"ptsd": "PTSD", "depression": "Depression", "anxiety": "Anxiety",
                     "other": "Other"}
STATUS_LABELS = {"planned": "Planned", "active": "Active", "completed": "Completed",
                 "stopped": "Stopped"}


@dataclass(frozen=True)
class Bound:
    label: str
    low: float
    high: float
    unit: str


#: Physiological and practical bounds for each measured field (mirrored in the schema).
BOUNDS: dict[str, Bound] = {
    "weight_kg": Bound("Weight", 20, 350, "kg"),
    "dose_mg_per_kg": Bound("Dose", 0.01, 3, "mg/kg"),
    "total_dose_mg": Bound("Total dose", 0.1, 1000, "mg"),
    "duration_minutes": Bound("Duration", 1, 480, "minutes"),
    **{f"systolic_{when}": Bound(f"Systolic pressure ({when})", 50, 300, "mmHg")
       for when in ("before", "peak", "after")},
    **{f"diastolic_{when}": Bound(f"Diastolic pressure ({when})", 20, 200, "mmHg")
       for when in ("before", "peak", "after")},
    **{f"heart_rate_{when}": Bound(f"Heart rate ({when})", 20, 250, "beats/min")
       for when in ("before", "peak", "after")},
    **{f"spo2_{when}": Bound(f"SpO2 ({when})", 50, 100, "%") for when in ("before", "peak", "after")},
    "dissociation_rating": Bound("Dissociation rating", 0, 4, ""),
}
OPTIONAL_FIELDS = {"systolic_peak", "diastolic_peak", "heart_rate_peak", "spo2_peak",
                   "dissociation_rating"}
#: A total dose may differ from weight × dose per kg by this much (rounding, syringe sizes).
TOTAL_DOSE_TOLERANCE = 0.05
OPEN_COURSE_EXISTS = "This patient already has an open course; complete or stop it first."


class CourseError(ValueError):
    """A course or infusion change that cannot be made, with the reason (and the field)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def start_course(session: Session, actor: Actor, patient: Patient, indication: str,
                 planned_infusions: int, start_date: dt.date,
                 next_infusion_at: dt.datetime | None = None,
                 submission_key: str | None = None) -> Course:
    """Open a new course for the patient (one open course at a time).

    Raises RepeatedSubmission when the form with ``submission_key`` was stored before."""
    claim = submissions.claim(session, actor, "course.start", submission_key,
                              [patient.id, indication, planned_infusions, start_date,
                               next_infusion_at])
    if indication not in INDICATIONS:
        raise CourseError(f"Unknown indication {indication!r}.", "indication")
    if not 1 <= planned_infusions <= 24:
        raise CourseError("Plan between 1 and 24 infusions.", "planned_infusions")
    lock_patient(session, patient.id)
    if _open_course_id(session, patient.id) is not None:
        raise CourseError(OPEN_COURSE_EXISTS)
    course = Course(patient_id=patient.id, indication=indication,
                    planned_infusions=planned_infusions, start_date=start_date, status="planned",
                    next_infusion_at=next_infusion_at, created_by_id=actor.user.id)
    session.add(course)
    session.flush()
    claim.stored(course.id)
    audit.record(session, actor, "course.start", patient=patient, object_type="course",
                 object_id=course.id, new=_course_values(course))
    summaries.touch(session, patient.id)
    return course


def update_course(session: Session, actor: Actor, course: Course, *, status: str,
                  planned_infusions: int, next_infusion_at: dt.datetime | None,
                  ended_on: dt.date | None = None, submission_key: str | None = None) -> Course:
    """Change a course's status, plan or next infusion; old and new values are audited.

    ``ended_on`` is the day a course that finishes now ends (a finished course keeps its
    day). Raises RepeatedSubmission when the form with ``submission_key`` was stored before."""
    claim = submissions.claim(session, actor, "course.update", submission_key,
                              [course.id, status, planned_infusions, next_infusion_at])
    if status not in COURSE_STATUSES:
        raise CourseError(f"Unknown status {status!r}.", "status")
    if not 1 <= planned_infusions <= 24:
        raise CourseError("Plan between 1 and 24 infusions.", "planned_infusions")
    lock_patient(session, course.patient_id)
    session.refresh(course)
    given = _infusions_recorded(session, course.id)
    if planned_infusions < given:
        raise CourseError(f"{given} infusions are already recorded.", "planned_infusions")
    finished = status in ("completed", "stopped")
    if finished and next_infusion_at is not None:
        raise CourseError("A finished course has no next infusion.", "next_infusion_at")
    if not finished and _open_course_id(session, course.patient_id) not in (None, course.id):
        raise CourseError(OPEN_COURSE_EXISTS, "status")
    before = _course_values(course)
    course.status = status
    course.planned_infusions = planned_infusions
    course.next_infusion_at = next_infusion_at
    course.ended_on = ((course.ended_on or ended_on
                        or clinic_today(course_patient(session, course).clinic))
                       if finished else None)
    session.flush()
    claim.stored(course.id)
    after = _course_values(course)
    if after != before:
        audit.record(session, actor, "course.update", patient=course_patient(session, course),
                     object_type="course", object_id=course.id,
                     old=before, new=after)
        summaries.touch(session, course.patient_id)
    return course


def course_patient(session: Session, course: Course) -> Patient:
    return session.get(Patient, course.patient_id)


def _open_course_id(session: Session, patient_id: int) -> int | None:
    return session.scalar(select(Course.id).where(Course.patient_id == patient_id,
                                                  Course.status.in_(("planned", "active"))))


def _infusions_recorded(session: Session, course_id: int) -> int:
    return session.scalar(select(func.count(Infusion.id)).where(Infusion.course_id == course_id))


def _course_values(course: Course) -> dict[str, Any]:
    return {"indication": course.indication, "planned_infusions": course.planned_infusions,
            "start_date": course.start_date.isoformat(), "status": course.status,
            "next_infusion_at": course.next_infusion_at.isoformat()
            if course.next_infusion_at else None,
            "ended_on": course.ended_on.isoformat() if course.ended_on else None}


def check_infusion_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The infusion values, checked against physiological bounds; refuses with the field."""
    checked: dict[str, Any] = {}
    for name, bound in BOUNDS.items():
        value = values.get(name)
        if value is None:
            if name in OPTIONAL_FIELDS:
                checked[name] = None
                continue
            raise CourseError(f"{bound.label} is required.", name)
        if not bound.low <= value <= bound.high:
            raise CourseError(f"{bound.label} must be between {bound.low:g} and {bound.high:g}"
                              f"{' ' + bound.unit if bound.unit else ''}; {value:g} is not "
                              "possible.", name)
        checked[name] = value
    for when in ("before", "peak", "after"):
        systolic, diastolic = checked[f"systolic_{when}"], checked[f"diastolic_{when}"]
        if systolic is not None and diastolic is not None and diastolic >= systolic:
            raise CourseError(f"Diastolic pressure ({when}) must be below systolic.",
                              f"diastolic_{when}")
        if (systolic is None) != (diastolic is None):
            raise CourseError(f"Give both blood pressure values ({when}) or neither.",
                              f"systolic_{when}")
    expected = checked["weight_kg"] * checked["dose_mg_per_kg"]
    if abs(checked["total_dose_mg"] - expected) > max(1.0, expected * TOTAL_DOSE_TOLERANCE):
        raise CourseError(f"Total dose {checked['total_dose_mg']:g} mg does not match "
                          f"{checked['weight_kg']:g} kg × {checked['dose_mg_per_kg']:g} mg/kg "
                          f"= {expected:.1f} mg.", "total_dose_mg")
    unknown = set(values.get("side_effects") or ()) - set(SIDE_EFFECTS)
    if unknown:
        raise CourseError(f"Unknown side effects: {', '.join(sorted(unknown))}.", "side_effects")
    administered_at = values.get("administered_at")
    if administered_at is None:
        raise CourseError("Give the date and time of the infusion.", "administered_at")
    if administered_at > utcnow() + dt.timedelta(minutes=5):
        raise CourseError("An infusion cannot be recorded before it happens.", "administered_at")
    checked["administered_at"] = administered_at
    checked["side_effects"] = sorted(set(values.get("side_effects") or ()))
    for name in ("adverse_events", "notes"):
        text = (values.get(name) or "").strip()
        checked[name] = text or None
    return checked


def record_infusion(session: Session, actor: Actor, course: Course,
                    values: Mapping[str, Any],
                    next_infusion_at: dt.datetime | None = None,
                    submission_key: str | None = None) -> Infusion:
    """Record the next infusion of an open course; the course becomes active.

    Raises RepeatedSubmission when the form with ``submission_key`` was stored before."""
    claim = submissions.claim(session, actor, "infusion.record", submission_key,
                              [course.id, dict(values), next_infusion_at])
    checked = check_infusion_values(values)
    lock_patient(session, course.patient_id)
    session.refresh(course)
    if course.status not in ("planned", "active"):
        raise CourseError("This course is finished; start a new course to record infusions.")
    number = (session.scalar(select(func.max(Infusion.number))
                             .where(Infusion.course_id == course.id)) or 0) + 1
    if number > course.planned_infusions:
        raise CourseError(f"All {course.planned_infusions} planned infusions are recorded; "
                          "change the plan of the course first.")
    infusion = Infusion(course_id=course.id, number=number)
    session.add(infusion)
    session.flush()
    claim.stored(infusion.id)
    version = InfusionVersion(infusion_id=infusion.id, version=1, recorded_by_id=actor.user.id,
                              recorded_at=utcnow(), **checked)
    session.add(version)
    course.status = "active"
    course.next_infusion_at = next_infusion_at
    session.flush()
    session.refresh(infusion)
    audit.record(session, actor, "infusion.record", patient=course_patient(session, course),
                 object_type="infusion", object_id=infusion.id, object_version=1,
                 new=_json_values(checked), details={"number": number})
    summaries.touch(session, course.patient_id)
    return infusion


def correct_infusion(session: Session, actor: Actor, infusion: Infusion,
                     values: Mapping[str, Any], reason: str,
                     submission_key: str | None = None,
                     corrects_version: int | None = None) -> InfusionVersion:
    """Add a corrected version of an infusion record; the earlier versions stay.

    ``corrects_version`` is the version the correction was made from (the form's): if the
    record has moved on since, the correction is refused rather than silently replacing a
    colleague's. Raises RepeatedSubmission when the form with ``submission_key`` was stored
    before."""
    claim = submissions.claim(session, actor, "infusion.correct", submission_key,
                              [infusion.id, dict(values), reason, corrects_version])
    reason = (reason or "").strip()
    if not reason:
        raise CourseError("Say why the record is being corrected.", "correction_reason")
    checked = check_infusion_values(values)
    lock_patient(session, infusion.course.patient_id)
    previous = session.scalars(select(InfusionVersion)
                               .where(InfusionVersion.infusion_id == infusion.id)
                               .order_by(InfusionVersion.version.desc()).limit(1)).one()
    if corrects_version is not None and corrects_version != previous.version:
        raise CourseError(f"Infusion {infusion.number} was corrected by someone else while "
                          f"this form was open (it is now at version {previous.version}). "
                          "Reload the page to see that version, then correct it if needed.")
    version = InfusionVersion(infusion_id=infusion.id, version=previous.version + 1,
                              recorded_by_id=actor.user.id, recorded_at=utcnow(),
                              correction_reason=reason, **checked)
    session.add(version)
    session.flush()
    claim.stored(infusion.id)
    session.refresh(infusion)
    audit.record(session, actor, "infusion.correct",
                 patient=course_patient(session, infusion.course),
                 object_type="infusion", object_id=infusion.id,
                 object_version=version.version, reason=reason,
                 old=_json_values(version_values(previous)), new=_json_values(checked))
    summaries.touch(session, infusion.course.patient_id)
    return version


def version_values(version: InfusionVersion) -> dict[str, Any]:
    """A version's recorded values, as ``check_infusion_values`` takes them."""
    names = list(BOUNDS) + ["administered_at", "side_effects", "adverse_events", "notes"]
    return {name: getattr(version, name) for name in names}


def _json_values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, dt.datetime) else value
            for key, value in values.items()}
