"""Treatment courses and the infusion log: bounds, versions, history and audit."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from outcomes.models import AuditEvent, Course, Infusion, InfusionVersion, PatientSummary

from .conftest import sign_in

NOW = dt.datetime.now(dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=-5)))


def infusion_form(**changes):
    data = {
        "submission_key": uuid.uuid4().hex,
        "administered_at": (NOW - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "weight_kg": "80", "dose_mg_per_kg": "0.5", "total_dose_mg": "40",
        "duration_minutes": "40",
        "systolic_before": "122", "diastolic_before": "78", "heart_rate_before": "72",
        "spo2_before": "98", "systolic_peak": "140", "diastolic_peak": "90",
        "heart_rate_peak": "84", "spo2_peak": "97", "systolic_after": "126",
        "diastolic_after": "80", "heart_rate_after": "74", "spo2_after": "98",
        "side_effects": ["dissociation", "nausea"], "dissociation_rating": "2",
        "notes": "Tolerated well.",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def course(client, world, session):
    sign_in(client, world.clinician)
    response = client.post(f"/clinic/patients/{world.patient.id}/courses/new", data={
        "submission_key": uuid.uuid4().hex,
        "indication": "ptsd", "planned_infusions": "6", "start_date": NOW.date().isoformat()})
    assert response.status_code == 302
    return session.scalars(select(Course)).one()


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_a_course_is_started_once_at_a_time(client, world, course, session):
    assert (course.indication, course.status, course.planned_infusions) == ("ptsd", "planned", 6)
    again = client.post(f"/clinic/patients/{world.patient.id}/courses/new", data={
        "submission_key": uuid.uuid4().hex,
        "indication": "ptsd", "planned_infusions": "6", "start_date": NOW.date().isoformat()})
    assert again.status_code == 422 and b"already has an open course" in again.data
    assert count(session, Course) == 1


def test_an_infusion_is_recorded_with_its_vitals_and_makes_the_course_active(
        client, world, course, session):
    path = f"/clinic/patients/{world.patient.id}/courses/{course.id}/infusions/new"
    assert client.post(path, data=infusion_form()).status_code == 302
    version = session.scalars(select(InfusionVersion)).one()
    assert (version.version, version.weight_kg, version.total_dose_mg, version.systolic_peak) == \
        (1, 80.0, 40.0, 140)
    assert version.side_effects == ["dissociation", "nausea"]
    assert version.recorded_by_id == world.clinician.id
    session.expire_all()
    assert session.get(Course, course.id).status == "active"
    summary = session.get(PatientSummary, world.patient.id)
    assert (summary.infusions_done, summary.infusions_planned) == (1, 6)
    page = client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert "infusion 1 of 6" in page and "0.5 mg/kg (40.0 mg)" in page


@pytest.mark.parametrize("field, value, message", [
    ("systolic_before", "400", "Systolic pressure (before) must be between 50 and 300"),
    ("spo2_after", "40", "SpO2 (after) must be between 50 and 100"),
    ("diastolic_after", "130", "Diastolic pressure (after) must be below systolic"),
    ("total_dose_mg", "400", "does not match 80 kg × 0.5 mg/kg = 40.0 mg"),
    ("weight_kg", "eighty", "Not a valid float value"),
    ("heart_rate_before", None, "Give the heart rate before"),
    ("side_effects", ["telepathy"], "is not a valid choice"),
], ids=["systolic", "spo2", "diastolic-above-systolic", "total-dose", "not-a-number",
        "missing", "unknown-side-effect"])
def test_values_outside_bounds_are_refused_naming_the_field_and_nothing_is_stored(
        client, world, course, session, field, value, message):
    path = f"/clinic/patients/{world.patient.id}/courses/{course.id}/infusions/new"
    response = client.post(path, data=infusion_form(**{field: value}))
    assert response.status_code == 422
    assert message in response.data.decode().replace("&#39;", "'")
    assert count(session, Infusion) == 0 and count(session, InfusionVersion) == 0


def test_an_infusion_in_the_future_is_refused(client, world, course, session):
    later = (NOW + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    path = f"/clinic/patients/{world.patient.id}/courses/{course.id}/infusions/new"
    response = client.post(path, data=infusion_form(administered_at=later))
    assert response.status_code == 422 and b"The infusion cannot be after today" in response.data
    assert count(session, Infusion) == 0


def test_a_correction_adds_a_version_with_its_reason_and_the_old_one_stays(
        client, world, course, session):
    client.post(f"/clinic/patients/{world.patient.id}/courses/{course.id}/infusions/new",
                data=infusion_form())
    infusion = session.scalars(select(Infusion)).one()
    path = f"/clinic/patients/{world.patient.id}/infusions/{infusion.id}"
    without_reason = client.post(path, data=infusion_form(systolic_peak="150"))
    assert without_reason.status_code == 422 and b"Say why" in without_reason.data
    response = client.post(path, data=infusion_form(systolic_peak="150",
                                                    correction_reason="Misread the monitor"))
    assert response.status_code == 302
    versions = session.scalars(select(InfusionVersion).order_by(InfusionVersion.version)).all()
    assert [(v.version, v.systolic_peak, v.correction_reason) for v in versions] == \
        [(1, 140, None), (2, 150, "Misread the monitor")]
    history = client.get(path).data.decode()
    assert "Version 2</strong> (current)" in history and "Version 1</strong>" in history
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "infusion.correct"))
    assert event.old_values["systolic_peak"] == 140
    assert event.new_values["systolic_peak"] == 150
    assert event.reason == "Misread the monitor"


def test_recording_beyond_the_plan_or_on_a_finished_course_is_refused(
        client, world, course, session):
    base = f"/clinic/patients/{world.patient.id}/courses/{course.id}"
    assert client.post(base, data={"submission_key": uuid.uuid4().hex, "status": "active", "planned_infusions": "1"}).status_code == 302
    assert client.post(f"{base}/infusions/new", data=infusion_form()).status_code == 302
    second = client.post(f"{base}/infusions/new", data=infusion_form())
    assert second.status_code == 422 and b"All 1 planned infusions are recorded" in second.data
    assert client.post(base, data={"submission_key": uuid.uuid4().hex, "status": "completed", "planned_infusions": "1"}).status_code == 302
    session.expire_all()
    finished = session.get(Course, course.id)
    assert finished.status == "completed" and finished.ended_on is not None
    refused = client.post(f"{base}/infusions/new", data=infusion_form())
    assert refused.status_code == 422 and b"This course is finished" in refused.data
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "course.update")
                            .order_by(AuditEvent.id.desc())).first()
    assert event.old_values["status"] == "active" and event.new_values["status"] == "completed"


def test_the_schedule_follows_the_infusions(client, app, world, course, session):
    """The after-infusion check is due the day after; the PHQ-9 before the next infusion."""
    base = f"/clinic/patients/{world.patient.id}/courses/{course.id}"
    yesterday = (NOW - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    soon = (NOW + dt.timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
    client.post(f"{base}/infusions/new", data=infusion_form(administered_at=yesterday,
                                                            next_infusion_at=soon))
    patient_phone = app.test_client()
    sign_in(patient_phone, world.patient_user)
    home = patient_phone.get("/me/").data.decode()
    assert "/me/questionnaires/after-infusion" in home and "The day after your infusion" in home
    assert "/me/questionnaires/phq9" in home


def test_another_clinics_course_and_infusion_ids_are_404(client, world, course, factory, session):
    base = f"/clinic/patients/{world.patient.id}/courses/{course.id}"
    client.post(f"{base}/infusions/new", data=infusion_form())
    infusion = session.scalars(select(Infusion)).one()
    client.post("/logout")
    sign_in(client, world.other_clinician)
    for path in (base, f"{base}/infusions/new",
                 f"/clinic/patients/{world.patient.id}/infusions/{infusion.id}",
                 f"/clinic/patients/{world.other_patient.id}/courses/{course.id}",
                 f"/clinic/patients/{world.other_patient.id}/infusions/{infusion.id}"):
        assert client.get(path).status_code == 404, path
        assert client.post(path, data=infusion_form()).status_code == 404, path
