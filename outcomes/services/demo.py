"""A demo clinic whose patients look like real ketamine courses.

Each patient gets a baseline (PCL-5 past month, PHQ-9, GAD-7), a course of 6 infusions over
2 weeks or 8 over 4 (Feder 2021; Abdallah 2022), an after-infusion check the day after each
infusion, then weekly PCL-5 and PHQ-9. Trajectories differ as they do in practice:
responders, partial responders, non-responders and relapses, with missed weeks and a few
PHQ-9 item-9 answers above 0. Every score is computed by the instruments package, so the demo
data obey the published rules. The same seed and the same ``today`` give the same data.

Rows are written in bulk so thousands of patients (benchmarks) take seconds, not hours.
"""
from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

import instruments

from ..models import Alert, Assessment, AssessmentAnswer, Clinic, Patient, PlanEntry, User
from . import audit
from .accounts import create_clinic, create_staff_user, password_hasher
from .audit import SYSTEM
from .plans import DEFAULT_PLAN

CLINIC_NAME = "Riverside Ketamine Clinic (demo)"
CLINIC_PHONE = "+1 555 0100"
EMAIL_DOMAIN = "riverside.example"
CLINICIAN_PASSWORD = "demo-clinician-pass"
PATIENT_PASSWORD = "demo-patient-pass"
CLINICIANS = (("dr.rivera", "clinician"), ("dr.chen", "clinician"), ("admin", "admin"))
PATIENTS_PER_BATCH = 250

FIRST_NAMES = ("Alex", "Jordan", "Sam", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery",
               "Quinn", "Dana", "Robin", "Drew", "Kerry", "Jesse", "Reese", "Cameron", "Skyler",
               "Maria", "James", "Aisha", "Wei", "Daniel", "Fatima", "Luis", "Grace", "Omar",
               "Hannah", "Tomas", "Priya", "Marcus", "Elena", "Kofi", "Nadia", "Ravi", "Leah")
LAST_NAMES = ("Garcia", "Smith", "Nguyen", "Johnson", "Williams", "Brown", "Jones", "Miller",
              "Davis", "Martinez", "Lopez", "Wilson", "Anderson", "Thomas", "Moore", "Jackson",
              "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall",
              "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson")

#: Trajectory kinds with their share of patients, and the fraction of the baseline score
#: they settle at after the course (relapses climb back later).
TRAJECTORIES = (("responder", 0.40, (0.35, 0.55)), ("partial", 0.25, (0.62, 0.80)),
                ("non-responder", 0.25, (0.90, 1.05)), ("relapse", 0.10, (0.40, 0.55)))


class DemoError(ValueError):
    """The demo data cannot be created, with the reason."""


@dataclass
class DemoSummary:
    clinic: str
    patients: int
    assessments: int = 0
    alerts: int = 0
    logins: list[tuple[str, str, str]] = field(default_factory=list)

    def describe(self) -> str:
        return (f"Demo clinic {self.clinic!r}: {self.patients} patients, "
                f"{self.assessments} assessments, {self.alerts} alerts.\n"
                + describe_logins(self.logins))


def describe_logins(logins: list[tuple[str, str, str]] | None = None) -> str:
    """The demo accounts as lines to print."""
    lines = ["Demo logins:"]
    lines += [f"  {role:<10} {email}  password: {password}"
              for role, email, password in (logins or demo_logins())]
    return "\n".join(lines)


def any_clinic(session: Session) -> bool:
    """True when the database holds at least one clinic."""
    return session.scalar(select(func.count(Clinic.id))) > 0


def demo_logins(patients: int = 3) -> list[tuple[str, str, str]]:
    """The demo accounts, as (role, email, password)."""
    staff = [(role, f"{name}@{EMAIL_DOMAIN}", CLINICIAN_PASSWORD) for name, role in CLINICIANS]
    return staff + [("patient", _patient_email(i), PATIENT_PASSWORD) for i in range(patients)]


def seed_demo(session: Session, patients: int = 40, weeks: int = 16, seed: int = 2026,
              today: dt.date | None = None) -> DemoSummary:
    """Create the demo clinic, its staff and ``patients`` patients with ``weeks`` of history."""
    if session.scalar(select(Clinic.id).where(Clinic.name == CLINIC_NAME)):
        raise DemoError(f"The demo clinic {CLINIC_NAME!r} exists already.")
    rng = random.Random(seed)
    clinic = create_clinic(session, SYSTEM, CLINIC_NAME, CLINIC_PHONE, "America/New_York")
    staff = [create_staff_user(session, SYSTEM, clinic, role, email, password)
             for role, email, password in demo_logins(0)]
    clinicians = [user for user in staff if user.role == "clinician"]
    today = today or dt.datetime.now(dt.timezone.utc).date()
    patient_hash = password_hasher().hash(PATIENT_PASSWORD)  # one hash serves every demo patient
    summary = DemoSummary(clinic=clinic.name, patients=patients,
                          logins=demo_logins(min(3, patients)))
    for start in range(0, patients, PATIENTS_PER_BATCH):
        count = min(PATIENTS_PER_BATCH, patients - start)
        assessments, alerts = _seed_batch(session, rng, clinic, clinicians, patient_hash,
                                          range(start, start + count), weeks, today)
        summary.assessments += assessments
        summary.alerts += alerts
    audit.record(session, SYSTEM, "demo.seed", clinic_id=clinic.id, object_type="clinic",
                 object_id=clinic.id, details={"patients": patients, "weeks": weeks, "seed": seed})
    session.flush()
    return summary


def _patient_email(index: int) -> str:
    return f"patient{index + 1}@{EMAIL_DOMAIN}"


def _seed_batch(session: Session, rng: random.Random, clinic: Clinic, clinicians: list[User],
                patient_hash: str, indexes: range, weeks: int, today: dt.date) -> tuple[int, int]:
    zone = zoneinfo.ZoneInfo(clinic.timezone)
    plans = [_plan_patient(rng, index, weeks, today, zone) for index in indexes]
    user_ids = session.scalars(
        insert(User).returning(User.id, sort_by_parameter_order=True),
        [{"clinic_id": clinic.id, "email": _patient_email(plan.index), "role": "patient",
          "password_hash": patient_hash, "created_at": plan.enrolled_at} for plan in plans],
    ).all()
    patient_ids = session.scalars(
        insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
        [{"clinic_id": clinic.id, "identifier": f"MRN-{100001 + plan.index}",
          "display_name": plan.name, "contact_email": _patient_email(plan.index),
          "user_id": user_id, "assigned_clinician_id": clinicians[plan.index % 2].id,
          "enrolled_at": plan.enrolled_at} for plan, user_id in zip(plans, user_ids)],
    ).all()
    session.execute(insert(PlanEntry), [
        {"patient_id": patient_id, "instrument_key": key, "every_days": every_days,
         "starts_after_days": starts_after, "active": True}
        for patient_id in patient_ids for key, every_days, starts_after in DEFAULT_PLAN
    ])

    rows: list[dict[str, Any]] = []
    answer_lists: list[tuple[int, ...]] = []
    for plan, patient_id, user_id in zip(plans, patient_ids, user_ids):
        clinician = clinicians[plan.index % 2]
        for record in plan.records:
            score = instruments.score(record.key, record.answers)
            transcribed = record.transcribed
            rows.append({
                "patient_id": patient_id, "instrument_key": record.key,
                "instrument_version": instruments.get(record.key).version,
                "administered_at": record.at,
                "submitted_at": record.at + dt.timedelta(hours=3 if transcribed else 0),
                "entered_by_id": clinician.id if transcribed else user_id,
                "source": "transcribed" if transcribed else "patient",
                "idempotency_key": f"demo-{plan.index}-{len(rows)}-{rng.getrandbits(48):012x}",
                "scorable": score.scorable, "total": score.total, "prorated": score.prorated,
                "band": score.band, "above_cutpoint": score.above_cutpoint,
                "provisional_diagnosis": score.provisional_diagnosis,
                "subscales": dict(score.subscales), "flags": dict(score.flags),
                "missing_items": list(score.missing_items),
            })
            answer_lists.append(score.answers)
    assessment_ids = session.scalars(
        insert(Assessment).returning(Assessment.id, sort_by_parameter_order=True), rows
    ).all()
    answers = [
        {"assessment_id": assessment_id, "item_number": number, "value": value}
        for assessment_id, values in zip(assessment_ids, answer_lists)
        for number, value in enumerate(values, start=1) if value is not None
    ]
    for chunk in _chunks(answers, 20_000):
        session.execute(insert(AssessmentAnswer), chunk)
    alerts = list(_alerts_for(rows, assessment_ids, clinicians, today))
    if alerts:
        session.execute(insert(Alert), alerts)
    return len(rows), len(alerts)


def _alerts_for(rows: list[dict[str, Any]], assessment_ids: list[int], clinicians: list[User],
                today: dt.date) -> Iterator[dict[str, Any]]:
    recent = dt.datetime.combine(today, dt.time(), dt.timezone.utc) - dt.timedelta(days=3)
    for row, assessment_id in zip(rows, assessment_ids):
        instrument = instruments.get(row["instrument_key"])
        for rule in instrument.flags:
            value = row["flags"].get(rule.key)
            if value not in rule.alert_values:
                continue
            acknowledged = row["administered_at"] < recent
            reviewer = clinicians[row["patient_id"] % 2]
            yield {
                "patient_id": row["patient_id"], "assessment_id": assessment_id,
                "kind": rule.key, "value": str(value).lower(), "reason": rule.alert_reason,
                "crisis": rule.crisis, "raised_at": row["submitted_at"],
                "acknowledged_at": row["submitted_at"] + dt.timedelta(hours=4)
                if acknowledged else None,
                "acknowledged_by_id": reviewer.id if acknowledged else None,
                "acknowledgement_note": "Called the patient; safety plan reviewed."
                if acknowledged else None,
            }


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


@dataclass
class _Record:
    key: str
    at: dt.datetime
    answers: tuple[int | None, ...]
    transcribed: bool = False


@dataclass
class _PatientPlan:
    index: int
    name: str
    enrolled_at: dt.datetime
    records: list[_Record]


def _plan_patient(rng: random.Random, index: int, weeks: int, today: dt.date,
                  zone: zoneinfo.ZoneInfo) -> _PatientPlan:
    """One patient's invented history, from enrolment to ``today``."""
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    # Demo patients 1 and 2 (the ones with printed logins) have full histories.
    history_days = weeks * 7 if index < 3 else rng.randint(max(8, weeks * 7 // 3), weeks * 7)
    start = today - dt.timedelta(days=history_days)
    kind, settle = _trajectory(rng)
    infusions = 6 if rng.random() < 0.6 else 8
    course_days = 14 if infusions == 6 else 28
    pcl_base = _clamp(round(rng.gauss(52, 9)), 34, 78)
    phq_base = _clamp(round(rng.gauss(16, 4)), 8, 27)
    gad_base = _clamp(round(rng.gauss(13, 4)), 5, 21)
    # A few patients, and always demo patient 2, report thoughts of self-harm at some point.
    risky = index == 1 or rng.random() < 0.06

    def at(day: int) -> dt.datetime:
        local = dt.datetime.combine(start + dt.timedelta(days=day),
                                    dt.time(rng.randint(8, 19), rng.randint(0, 59)), zone)
        return local.astimezone(dt.timezone.utc)

    def level(day: int) -> float:
        """Fraction of baseline severity on this day of the history."""
        progress = min(1.0, day / (course_days + 7))
        fraction = 1 - (1 - settle) * progress
        if kind == "relapse" and day > course_days + 28:
            fraction = min(0.95, fraction + (day - course_days - 28) / 60)
        return fraction

    records = [
        _Record("pcl5", at(0), _answers(rng, 20, 4, pcl_base)),
        _Record("phq9", at(0), _phq9_answers(rng, phq_base, item9=0)),
        _Record("gad7", at(0), _answers(rng, 7, 3, gad_base)),
    ]
    infusion_days = [2 + round(n * course_days / infusions) for n in range(infusions)]
    for day in infusion_days:
        if day + 1 <= history_days:
            records.append(_Record("after-infusion", at(day + 1), _after_infusion(rng)))
    last_week = history_days // 7
    for week in range(1, last_week + 1):
        skip = rng.random() < 0.08 or (index == 0 and week == last_week)
        if skip:
            continue
        day = week * 7
        noise = rng.gauss(0, 0.06)
        fraction = max(0.05, level(day) + noise)
        transcribed = rng.random() < 0.08
        records.append(_Record("pcl5-weekly", at(day),
                               _answers(rng, 20, 4, round(pcl_base * fraction)), transcribed))
        item9 = rng.choice((1, 1, 2)) if risky and (
            week == last_week or rng.random() < 0.15) else 0
        records.append(_Record("phq9", at(day), _phq9_answers(
            rng, round(phq_base * max(0.05, level(day) + rng.gauss(0, 0.08))), item9),
            transcribed))
    records.sort(key=lambda record: record.at)
    enrolled_at = records[0].at - dt.timedelta(minutes=30)
    return _PatientPlan(index=index, name=name, enrolled_at=enrolled_at, records=records)


def _trajectory(rng: random.Random) -> tuple[str, float]:
    roll, cumulative = rng.random(), 0.0
    for kind, share, (low, high) in TRAJECTORIES:
        cumulative += share
        if roll < cumulative:
            return kind, rng.uniform(low, high)
    kind, _, (low, high) = TRAJECTORIES[-1]
    return kind, rng.uniform(low, high)


def _answers(rng: random.Random, count: int, top: int, total: int) -> tuple[int, ...]:
    """``count`` answers of 0..``top`` summing to ``total``, spread unevenly like real ones."""
    total = _clamp(total, 0, count * top)
    weights = [rng.random() + 0.2 for _ in range(count)]
    scale = total / sum(weights)
    values = [min(top, int(weight * scale)) for weight in weights]
    remaining = total - sum(values)
    while remaining:
        item = rng.randrange(count)
        if values[item] < top:
            values[item] += 1
            remaining -= 1
    return tuple(values)


def _phq9_answers(rng: random.Random, total: int, item9: int) -> tuple[int, ...]:
    first_eight = _answers(rng, 8, 3, _clamp(total - item9, 0, 24))
    difficulty = min(3, sum(first_eight) // 7)
    return first_eight + (item9, difficulty)


#: Chance of none, mild, moderate, severe per after-infusion item, in item order: feeling
#: detached is common the day after, confusion and hallucinations are rare (Clinical reference).
AFTER_INFUSION_ODDS = ((0.45, 0.38, 0.15, 0.02), (0.60, 0.30, 0.09, 0.01),
                       (0.70, 0.22, 0.075, 0.005), (0.60, 0.30, 0.095, 0.005),
                       (0.80, 0.17, 0.03, 0.0), (0.70, 0.24, 0.055, 0.005),
                       (0.50, 0.38, 0.115, 0.005), (0.97, 0.03, 0.0, 0.0), (0.99, 0.01, 0.0, 0.0))


def _after_infusion(rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.choices((0, 1, 2, 3), odds)[0] for odds in AFTER_INFUSION_ODDS)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
