"""A demo clinic whose patients look like real ketamine courses.

Each patient gets a baseline (PCL-5 past month, PHQ-9, GAD-7), a course of 6 infusions over
2 weeks or 8 over 4 (Feder 2021; Abdallah 2022), an after-infusion check the day after each
infusion, then weekly PCL-5 and PHQ-9. Trajectories differ as they do in practice:
responders, partial responders, non-responders and relapses, with missed weeks and a few
PHQ-9 item-9 answers above 0. Every score is computed by the instruments package, so the demo
data obey the published rules. The same seed and the same ``today`` give the same data.
Nothing is dated after the moment the seeder runs (or the ``now`` it is given): a record the
invented history would place later in the day is left out, as it has not happened yet. Only
the next booked infusion lies ahead, as a booking does.

Rows are written in bulk so thousands of patients (benchmarks) take seconds, not hours.
"""
from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

import instruments

from . import clock
from .models import (
    Alert,
    AlertAssessment,
    Assessment,
    AssessmentAnswer,
    Clinic,
    Course,
    Infusion,
    InfusionVersion,
    MeasureSummary,
    Patient,
    PatientSummary,
    PlanEntry,
    User,
)
from .services import audit
from .services.accounts import create_clinic, create_staff_user, password_hasher
from .services.clinic_settings import set_alert_response_wording
from .services.audit import SYSTEM
from .services.assessments import alerts_called_for
from .services.baseline import choose_reference, course_windows
from .services.plans import DEFAULT_PLAN
from .services.summaries import summary_values

CLINIC_NAME = "Riverside Ketamine Clinic (demo)"
CLINIC_PHONE = "(201) 555-0100"
#: What the demo clinic tells a patient after an alert about when its care team responds.
ALERT_RESPONSE_WORDING = ("The care team reads alerts on weekdays from 8 am to 6 pm and calls "
                          "back the same working day. If you need help sooner, call or text "
                          "988, or call 911 in an emergency.")
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
                ("non-responder", 0.25, (0.90, 1.25)), ("relapse", 0.10, (0.40, 0.55)))


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


def demo_logins(patients: int = 3, domain: str = EMAIL_DOMAIN) -> list[tuple[str, str, str]]:
    """The demo accounts, as (role, email, password)."""
    staff = [(role, f"{name}@{domain}", CLINICIAN_PASSWORD) for name, role in CLINICIANS]
    return staff + [("patient", _patient_email(i, domain), PATIENT_PASSWORD)
                    for i in range(patients)]


def seed_demo(session: Session, patients: int = 40, weeks: int = 16, seed: int = 2026,
              today: dt.date | None = None, clinic_name: str = CLINIC_NAME,
              email_domain: str = EMAIL_DOMAIN, full_histories: bool = False,
              now: dt.datetime | None = None) -> DemoSummary:
    """Create a demo clinic, its staff and ``patients`` patients with up to ``weeks`` of
    history (all of them with ``full_histories``, as benchmarks want), ending on ``today``
    (the clinic's today by default) and never after ``now`` (default: this moment).
    Benchmarks create several clinics, each with a name and email domain of its own."""
    if session.scalar(select(Clinic.id).where(Clinic.name == clinic_name)):
        raise DemoError(f"The demo clinic {clinic_name!r} exists already.")
    rng = random.Random(seed)
    clinic = create_clinic(session, SYSTEM, clinic_name, CLINIC_PHONE, "America/New_York")
    set_alert_response_wording(session, SYSTEM, clinic, ALERT_RESPONSE_WORDING)
    staff = [create_staff_user(session, SYSTEM, clinic, role, email, password)
             for role, email, password in demo_logins(0, email_domain)]
    clinicians = [user for user in staff if user.role == "clinician"]
    zone = clock.clinic_zone(clinic)
    now = now or clock.utcnow()
    today = today or clock.clinic_today(zone, now)
    # The history ends at the last minute of ``today``, or now if that is earlier.
    until = min(now, clock.at_local_time(zone, today, dt.time(23, 59)))
    patient_hash = password_hasher().hash(PATIENT_PASSWORD)  # one hash serves every demo patient
    summary = DemoSummary(clinic=clinic.name, patients=patients,
                          logins=demo_logins(min(3, patients), email_domain))
    for start in range(0, patients, PATIENTS_PER_BATCH):
        count = min(PATIENTS_PER_BATCH, patients - start)
        assessments, alerts = _seed_batch(session, rng, clinic, clinicians, patient_hash,
                                          range(start, start + count), weeks, today,
                                          until, email_domain, full_histories)
        summary.assessments += assessments
        summary.alerts += alerts
    audit.record(session, SYSTEM, "demo.seed", clinic_id=clinic.id, object_type="clinic",
                 object_id=clinic.id, details={"patients": patients, "weeks": weeks, "seed": seed})
    session.flush()
    return summary


def _patient_email(index: int, domain: str) -> str:
    return f"patient{index + 1}@{domain}"


def _seed_batch(session: Session, rng: random.Random, clinic: Clinic, clinicians: list[User],
                patient_hash: str, indexes: range, weeks: int, today: dt.date,
                until: dt.datetime, domain: str, full_histories: bool) -> tuple[int, int]:
    zone = clock.clinic_zone(clinic)
    histories = [_plan_patient(rng, index, weeks, today, zone, until, full_histories)
                 for index in indexes]
    user_ids = session.scalars(
        insert(User).returning(User.id, sort_by_parameter_order=True),
        [{"clinic_id": clinic.id, "email": _patient_email(h.index, domain), "role": "patient",
          "password_hash": patient_hash, "created_at": h.enrolled_at} for h in histories],
    ).all()
    patients = [Patient(id=patient_id, clinic_id=clinic.id, clinic=clinic,
                        identifier=f"MRN-{100001 + h.index}", display_name=h.name,
                        contact_email=_patient_email(h.index, domain), user_id=user_id,
                        assigned_clinician_id=clinicians[h.index % 2].id,
                        enrolled_at=h.enrolled_at)
                for h, user_id, patient_id in zip(histories, user_ids, session.scalars(
                    insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
                    [{"clinic_id": clinic.id, "identifier": f"MRN-{100001 + h.index}",
                      "display_name": h.name, "contact_email": _patient_email(h.index, domain),
                      "user_id": user_id, "assigned_clinician_id": clinicians[h.index % 2].id,
                      # Email reminders, so the demo's worker shows them in the outbox.
                      "reminder_channels": ["email"],
                      "enrolled_at": h.enrolled_at} for h, user_id in zip(histories, user_ids)],
                ).all())]
    plan_rows = [{"patient_id": patient.id, "instrument_key": d.instrument_key,
                  "schedule": d.schedule, "every_days": d.every_days,
                  "follow_up_weeks": d.follow_up_weeks, "then_every_days": d.then_every_days,
                  "active": True} for patient in patients for d in DEFAULT_PLAN]
    session.execute(insert(PlanEntry), plan_rows)
    courses = _insert_courses(session, rng, histories, patients, clinicians, until)

    rows: list[dict[str, Any]] = []
    answer_lists: list[tuple[int | None, ...]] = []
    for history, patient, user_id in zip(histories, patients, user_ids):
        clinician = clinicians[history.index % 2]
        for record in history.records:
            score = instruments.score(record.key, record.answers)
            rows.append({
                "patient_id": patient.id, "instrument_key": record.key,
                "instrument_version": instruments.get(record.key).version,
                "administered_at": record.at,
                "submitted_at": record.submitted_at,
                "entered_by_id": clinician.id if record.transcribed else user_id,
                "source": "transcribed" if record.transcribed else "patient",
                "idempotency_key": f"demo-{history.index}-{len(rows)}-{rng.getrandbits(48):012x}",
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
    alerts, links = _alerts_for(rows, answer_lists, assessment_ids, clinicians, courses, zone,
                                until)
    if alerts:
        alert_ids = session.scalars(
            insert(Alert).returning(Alert.id, sort_by_parameter_order=True), alerts).all()
        if links:
            session.execute(insert(AlertAssessment), [
                link | {"alert_id": alert_ids[link["alert_id"]]} for link in links])
    _insert_summaries(session, patients, rows, assessment_ids, alerts, courses, plan_rows, until)
    return len(rows), len(alerts)


def _insert_courses(session: Session, rng: random.Random, histories: list[_PatientHistory],
                    patients: list[Patient], clinicians: list[User],
                    until: dt.datetime) -> dict[int, Course]:
    """Each patient's course and its infusion records (a few corrected), as transient objects
    mirroring the rows written, for the summaries. No record is written after ``until``."""
    course_rows = [{"patient_id": patient.id, "indication": h.indication,
                    "planned_infusions": h.planned_infusions, "start_date": h.course_start,
                    "status": h.course_status, "next_infusion_at": h.next_infusion_at,
                    "ended_on": h.course_ended_on, "created_by_id": clinicians[h.index % 2].id,
                    "created_at": h.enrolled_at}
                   for h, patient in zip(histories, patients)]
    course_ids = session.scalars(insert(Course).returning(Course.id, sort_by_parameter_order=True),
                                 course_rows).all()
    courses = {row["patient_id"]: Course(id=course_id, **row)
               for row, course_id in zip(course_rows, course_ids)}
    infusion_rows = [{"course_id": courses[patient.id].id, "number": number,
                      "created_at": moment}
                     for h, patient in zip(histories, patients)
                     for number, moment in enumerate(h.infusions, start=1)]
    infusion_ids = session.scalars(
        insert(Infusion).returning(Infusion.id, sort_by_parameter_order=True), infusion_rows
    ).all() if infusion_rows else []
    version_rows = []
    position = 0
    for h, patient in zip(histories, patients):
        course = courses[patient.id]
        weight = round(rng.uniform(55, 115), 1)
        infusions = []
        for moment in h.infusions:
            infusion = Infusion(id=infusion_ids[position], course_id=course.id,
                                number=infusion_rows[position]["number"])
            position += 1
            recorder = clinicians[(h.index + infusion.number) % 2].id
            first = _infusion_values(rng, moment, weight) | {
                "infusion_id": infusion.id, "version": 1, "recorded_by_id": recorder,
                "recorded_at": min(moment + dt.timedelta(hours=2), until),
                "correction_reason": None}
            versions = [first]
            if rng.random() < 0.03 and moment + dt.timedelta(days=1) <= until:
                versions.append(first | {"version": 2, "notes": "Peak pressure re-read from "
                                         "the monitor printout.",
                                         "systolic_peak": first["systolic_peak"] + 4,
                                         "recorded_at": moment + dt.timedelta(days=1),
                                         "correction_reason": "Transcription error"})
            version_rows += versions
            infusion.versions = [InfusionVersion(**version) for version in versions]
            infusions.append(infusion)
        course.infusions = infusions
    if version_rows:
        session.execute(insert(InfusionVersion), version_rows)
    return courses


def _infusion_values(rng: random.Random, moment: dt.datetime, weight: float) -> dict[str, Any]:
    # 0.5 mg/kg over 40 minutes; pressure peaks about +16/+11 mmHg (clinical reference).
    systolic, diastolic = rng.randint(108, 138), rng.randint(66, 88)
    heart_rate = rng.randint(58, 88)
    side_effects = [key for key, odds in (("dissociation", 0.55), ("dizziness", 0.3),
                                          ("nausea", 0.2), ("headache", 0.15),
                                          ("blurred_vision", 0.15), ("anxiety", 0.1),
                                          ("raised_blood_pressure", 0.1))
                    if rng.random() < odds]
    return {
        "administered_at": moment, "weight_kg": weight, "dose_mg_per_kg": 0.5,
        "total_dose_mg": round(weight * 0.5, 1), "duration_minutes": 40,
        "systolic_before": systolic, "diastolic_before": diastolic,
        "heart_rate_before": heart_rate, "spo2_before": rng.randint(96, 99),
        "systolic_peak": systolic + rng.randint(8, 24), "diastolic_peak": diastolic + rng.randint(5, 16),
        "heart_rate_peak": heart_rate + rng.randint(4, 18), "spo2_peak": rng.randint(95, 99),
        "systolic_after": systolic + rng.randint(-4, 8), "diastolic_after": diastolic + rng.randint(-3, 6),
        "heart_rate_after": heart_rate + rng.randint(-4, 6), "spo2_after": rng.randint(96, 99),
        "side_effects": side_effects, "dissociation_rating": rng.choice((0, 1, 1, 2, 2, 2, 3)),
        "adverse_events": None, "notes": None,
    }


def _alerts_for(rows: list[dict[str, Any]], answer_lists: list[tuple[int | None, ...]],
                assessment_ids: list[int], clinicians: list[User], courses: dict[int, Course],
                zone: dt.tzinfo, now: dt.datetime
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The alerts each record calls for, by the same rules as a live submission (the one
    baseline of ``services.baseline``; one open alert per disclosure, later records linked to
    it), and those links; alerts older than a week are acknowledged, as a clinic would have
    done."""
    recent = now - dt.timedelta(days=7)
    alerts: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    scored: dict[tuple[int, str], list[dict[str, Any]]] = {}
    open_alerts: dict[tuple[int, str, str], int] = {}
    windows = {patient_id: course_windows([course], zone) for patient_id, course in courses.items()}
    for row, answers, assessment_id in sorted(
            zip(rows, answer_lists, assessment_ids),
            key=lambda entry: (entry[0]["patient_id"], entry[0]["administered_at"], entry[2])):
        patient_id, key = row["patient_id"], row["instrument_key"]
        measure = instruments.get(key).measure
        earlier = scored.setdefault((patient_id, measure), [])
        if row["scorable"]:
            earlier.append(row)
        reference = choose_reference(earlier, _administered, windows[patient_id],
                                     row["administered_at"])
        # Compared with itself (a first score), a record raises no change alert.
        start = reference.record["total"] if reference and reference.record is not row else None
        for spec in alerts_called_for(key, row["flags"], row["total"], start, answers):
            # A flag is repeated per questionnaire; a change, per measure.
            held = (patient_id, key if spec.from_answers else measure, spec.kind)
            if held in open_alerts:
                links.append({"alert_id": open_alerts[held], "assessment_id": assessment_id,
                              "linked_at": row["submitted_at"]})
                continue
            acknowledged = row["submitted_at"] < recent
            alert = {
                "patient_id": patient_id, "assessment_id": assessment_id,
                "instrument_key": key, "kind": spec.kind, "value": spec.value,
                "reason": spec.reason, "evidence": spec.evidence,
                "crisis": spec.crisis, "raised_at": row["submitted_at"],
                "acknowledged_at": row["submitted_at"] + dt.timedelta(hours=4)
                if acknowledged else None,
                "acknowledged_by_id": clinicians[patient_id % 2].id
                if acknowledged else None,
                "acknowledgement_note": "Called the patient; reviewed and documented."
                if acknowledged else None,
            }
            alerts.append(alert)
            if not acknowledged:
                open_alerts[held] = len(alerts) - 1  # its position, until it has an id
    return alerts, links


def _administered(row: dict[str, Any]) -> dt.datetime:
    return row["administered_at"]


def _insert_summaries(session: Session, patients: list[Patient], rows: list[dict[str, Any]],
                      assessment_ids: list[int], alerts: list[dict[str, Any]],
                      courses: dict[int, Course], plan_rows: list[dict[str, Any]],
                      now: dt.datetime) -> None:
    by_patient: dict[int, list[Assessment]] = {patient.id: [] for patient in patients}
    for row, assessment_id in zip(rows, assessment_ids):
        by_patient[row["patient_id"]].append(Assessment(id=assessment_id, **row))
    plan = [PlanEntry(**row) for row in plan_rows[:len(DEFAULT_PLAN)]]
    open_alerts = Counter(a["patient_id"] for a in alerts if a["acknowledged_at"] is None)
    summaries = [summary_values(patient, by_patient[patient.id], [courses[patient.id]],
                                open_alerts[patient.id], plan, now) for patient in patients]
    session.execute(insert(PatientSummary), [summary.patient for summary in summaries])
    session.execute(insert(MeasureSummary), [row for summary in summaries
                                             for row in summary.measures])


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


@dataclass
class _Record:
    key: str
    at: dt.datetime
    answers: tuple[int | None, ...]
    transcribed: bool = False

    @property
    def submitted_at(self) -> dt.datetime:
        """A paper form reaches the system a few hours after it was filled in."""
        return self.at + dt.timedelta(hours=3 if self.transcribed else 0)


@dataclass
class _PatientHistory:
    index: int
    name: str
    enrolled_at: dt.datetime
    records: list[_Record]
    indication: str
    planned_infusions: int
    course_start: dt.date
    course_status: str
    course_ended_on: dt.date | None
    next_infusion_at: dt.datetime | None
    #: When each infusion given so far took place.
    infusions: list[dt.datetime]


def _plan_patient(rng: random.Random, index: int, weeks: int, today: dt.date,
                  zone: dt.tzinfo, until: dt.datetime,
                  full_history: bool = False) -> _PatientHistory:
    """One patient's invented history, from enrolment to ``today``, without anything that
    would come after ``until`` (later today, when the seeder runs in the morning)."""
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    # Demo patients 1 to 3 (the ones with printed logins) have full histories.
    if index < 3 or full_history:
        history_days = weeks * 7
    elif rng.random() < 0.2:  # recently enrolled: the course is under way
        history_days = rng.randint(3, min(27, weeks * 7))
    else:
        history_days = rng.randint(min(28, weeks * 7), weeks * 7)
    start = today - dt.timedelta(days=history_days)
    kind, settle = _trajectory(rng)
    planned = 6 if rng.random() < 0.6 else 8
    course_days = 14 if planned == 6 else 28
    # Some non-responders stop their course early.
    given = 4 if kind == "non-responder" and rng.random() < 0.3 else planned
    pcl_base = _clamp(round(rng.gauss(52, 9)), 34, 78)
    phq_base = _clamp(round(rng.gauss(16, 4)), 8, 27)
    gad_base = _clamp(round(rng.gauss(13, 4)), 5, 21)
    # A few patients, and always demo patient 2, report thoughts of self-harm at some point.
    risky = index == 1 or rng.random() < 0.06

    def at(day: int, hour: int | None = None) -> dt.datetime:
        return clock.at_local_time(
            zone, start + dt.timedelta(days=day),
            dt.time(rng.randint(8, 19) if hour is None else hour, rng.randint(0, 59)))

    def level(day: int) -> float:
        """Fraction of baseline severity on this day of the history."""
        progress = min(1.0, day / (course_days + 7))
        fraction = 1 - (1 - settle) * progress
        if kind == "relapse" and day > course_days + 28:
            fraction = min(0.95, fraction + (day - course_days - 28) / 60)
        return fraction

    def phq9(day: int, item9: int = 0) -> tuple[int, ...]:
        fraction = max(0.05, level(day) + rng.gauss(0, 0.08))
        return _phq9_answers(rng, round(phq_base * fraction), item9)

    records = [
        _Record("pcl5", at(0), _answers(rng, 20, 4, pcl_base)),
        _Record("phq9", at(0), _phq9_answers(rng, phq_base, item9=0)),
        _Record("gad7", at(0), _answers(rng, 7, 3, gad_base)),
    ]
    infusion_days = [2 + round(n * course_days / planned) for n in range(given)]
    # Drawn for every day up to today before any is left out, so that the same seed gives the
    # same history whatever the hour.
    infusions = [moment for moment in [at(day, hour=10) for day in infusion_days
                                       if day <= history_days] if moment <= until]
    for day, moment in zip(infusion_days, infusions):
        if day > 2 and rng.random() < 0.8:  # the PHQ-9 in the 24 hours before
            records.append(_Record("phq9", moment - dt.timedelta(hours=rng.randint(1, 20)),
                                   phq9(day)))
        if day + 1 <= history_days:
            records.append(_Record("after-infusion", at(day + 1), _after_infusion(rng)))
    first = infusion_days[0]
    last_week = (history_days - first) // 7
    for week in range(1, last_week + 1):
        if rng.random() < 0.08 or (index == 0 and week == last_week):
            continue  # a missed week (and demo patient 1 has one due now)
        day = first + week * 7
        transcribed = rng.random() < 0.08
        fraction = max(0.05, level(day) + rng.gauss(0, 0.06))
        records.append(_Record("pcl5-weekly", at(day),
                               _answers(rng, 20, 4, round(pcl_base * fraction)), transcribed))
        item9 = rng.choice((1, 1, 2)) if risky and (
            week == last_week or rng.random() < 0.15) else 0
        records.append(_Record("phq9", at(day), phq9(day, item9), transcribed))
    records = sorted((record for record in records if record.submitted_at <= until),
                     key=lambda record: record.at)
    finished = len(infusions) == given
    status = ("stopped" if given < planned else "completed") if finished else "active"
    next_day = infusion_days[len(infusions)] if not finished else None
    return _PatientHistory(
        index=index, name=name, enrolled_at=records[0].at - dt.timedelta(minutes=30),
        records=records, indication="ptsd" if rng.random() < 0.85 else "depression",
        planned_infusions=planned, course_start=start + dt.timedelta(days=first),
        course_status=status,
        course_ended_on=clock.local_date(infusions[-1], zone) if finished else None,
        next_infusion_at=at(next_day, hour=10) if next_day is not None else None,
        infusions=infusions,
    )


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
