"""Finding a clinic's patients and summarising them for the clinician's list."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import instruments

from ..models import Alert, Assessment, Patient, User, as_utc
from .results import measure_of

#: The measures shown as columns of the patient list, in order.
LIST_MEASURES = ("PCL-5", "PHQ-9", "GAD-7")


@dataclass(frozen=True)
class LatestScore:
    total: int | None
    band_label: str | None
    administered_at: dt.datetime


@dataclass
class PatientRow:
    patient: Patient
    open_alerts: int = 0
    latest: dict[str, LatestScore] = field(default_factory=dict)


def clinic_patient(session: Session, clinic_id: int, patient_id: int) -> Patient | None:
    """The patient with this id if they belong to the clinic; otherwise None, as if absent."""
    patient = session.get(Patient, patient_id)
    if patient is None or patient.clinic_id != clinic_id:
        return None
    return patient


def clinic_staff(session: Session, clinic_id: int) -> list[User]:
    """The clinic's clinicians and admins, by email."""
    return list(session.scalars(
        select(User).where(User.clinic_id == clinic_id, User.role != "patient")
        .order_by(User.email)
    ))


def patient_list(session: Session, clinic_id: int) -> list[PatientRow]:
    """Every patient of the clinic with their latest score per measure; open alerts first.

    Three queries whatever the number of patients: patients, latest scores, open alerts.
    """
    patients = session.scalars(
        select(Patient).where(Patient.clinic_id == clinic_id).order_by(Patient.display_name)
    ).all()
    rows = {patient.id: PatientRow(patient=patient) for patient in patients}

    replaced = select(Assessment.amends_id).where(Assessment.amends_id.is_not(None))
    ranked = (
        select(
            Assessment.patient_id, Assessment.instrument_key, Assessment.total,
            Assessment.band, Assessment.administered_at,
            func.row_number().over(
                partition_by=(Assessment.patient_id, Assessment.instrument_key),
                order_by=(Assessment.administered_at.desc(), Assessment.id.desc()),
            ).label("rank"),
        )
        .join(Patient, Patient.id == Assessment.patient_id)
        .where(Patient.clinic_id == clinic_id, Assessment.id.not_in(replaced))
        .subquery()
    )
    latest = session.execute(select(ranked).where(ranked.c.rank == 1)).all()
    for patient_id, key, total, band, administered_at, _ in latest:
        measure = measure_of(key)
        if measure not in LIST_MEASURES:
            continue
        administered_at = as_utc(administered_at)
        current = rows[patient_id].latest.get(measure)
        if current is None or administered_at > current.administered_at:
            instrument = instruments.get(key)
            band_label = next((b.label for b in instrument.bands if b.key == band), None)
            rows[patient_id].latest[measure] = LatestScore(total, band_label, administered_at)

    open_counts = session.execute(
        select(Alert.patient_id, func.count(Alert.id))
        .join(Patient, Patient.id == Alert.patient_id)
        .where(Patient.clinic_id == clinic_id, Alert.acknowledged_at.is_(None))
        .group_by(Alert.patient_id)
    ).all()
    for patient_id, count in open_counts:
        rows[patient_id].open_alerts = count
    return sorted(rows.values(), key=lambda row: (row.open_alerts == 0,
                                                  row.patient.display_name.lower()))
