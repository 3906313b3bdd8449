"""Read helpers: a patient's records as the pages, the summary and the writers read them.

They import only the models, so every layer above (the scheduling rules, the summary, the
writers, the views) can use them without importing a writer.

One loader per kind of record finds a record by the id a request names, within what its
reader may see (the clinic's patients; the patient's own assessments, courses and
infusions): another clinic's or another patient's id is None, exactly like a missing one.
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import SCHEDULES, Alert, Assessment, Course, Infusion, Patient, PlanEntry


def clinic_patient(session: Session, clinic_id: int, patient_id: int) -> Patient | None:
    """The patient with this id if they belong to the clinic."""
    return session.scalar(select(Patient).where(Patient.id == patient_id,
                                                Patient.clinic_id == clinic_id))


def clinic_alert(session: Session, clinic_id: int, alert_id: int) -> Alert | None:
    """The alert with this id if it is about one of the clinic's patients."""
    return session.scalar(select(Alert).join(Alert.patient).where(
        Alert.id == alert_id, Patient.clinic_id == clinic_id))


def patient_assessment(session: Session, patient_id: int,
                       assessment_id: int) -> Assessment | None:
    """The assessment with this id if it is the patient's."""
    return session.scalar(select(Assessment).where(Assessment.id == assessment_id,
                                                   Assessment.patient_id == patient_id))


def patient_course(session: Session, patient_id: int, course_id: int) -> Course | None:
    """The course with this id if it is the patient's."""
    return session.scalar(select(Course).where(Course.id == course_id,
                                               Course.patient_id == patient_id))


def patient_infusion(session: Session, patient_id: int, infusion_id: int) -> Infusion | None:
    """The infusion with this id if it is of one of the patient's courses."""
    return session.scalar(select(Infusion).join(Infusion.course).where(
        Infusion.id == infusion_id, Course.patient_id == patient_id))


def patient_assessments(session: Session, patient_id: int) -> list[Assessment]:
    """The patient's assessments, newest first."""
    return list(session.scalars(
        select(Assessment)
        .where(Assessment.patient_id == patient_id)
        .order_by(Assessment.administered_at.desc(), Assessment.id.desc())
    ))


def superseded_ids(assessments: Sequence[Assessment]) -> set[int]:
    """Ids of assessments that a later correction replaces."""
    return {a.amends_id for a in assessments if a.amends_id is not None}


def current_assessments(assessments: Sequence[Assessment]) -> list[Assessment]:
    """The assessments that count: those no correction replaces."""
    replaced = superseded_ids(assessments)
    return [a for a in assessments if a.id not in replaced]


def patient_courses(session: Session, patient_id: int) -> list[Course]:
    """The patient's courses, newest first."""
    return list(session.scalars(select(Course).where(Course.patient_id == patient_id)
                                .order_by(Course.start_date.desc(), Course.id.desc())))


#: A course is open while planned or active; a patient has one open course at most (an index
#: of the schema holds them to it).
OPEN_COURSE_STATUSES = ("planned", "active")


def open_course_of(courses: Sequence[Course]) -> Course | None:
    """The open course among ``courses`` (newest first), if any."""
    return next((c for c in courses if c.status in OPEN_COURSE_STATUSES), None)


def current_course_of(courses: Sequence[Course]) -> Course | None:
    """The open course, else the most recent one."""
    current = open_course_of(courses)
    if current is not None:
        return current
    return max(courses, key=lambda c: (c.start_date, c.id)) if courses else None


def plan_for(session: Session, patient_id: int) -> list[PlanEntry]:
    """The patient's plan entries, in schedule order."""
    entries = session.scalars(select(PlanEntry).where(PlanEntry.patient_id == patient_id)).all()
    return sorted(entries, key=lambda e: (SCHEDULES.index(e.schedule), e.instrument_key))


def offered_instruments(session: Session, patient_id: int) -> set[str]:
    """The questionnaires the patient's plan offers them now: the only ones they may send."""
    return {entry.instrument_key for entry in plan_for(session, patient_id) if entry.active}
