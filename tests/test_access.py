"""Patients reach only their own records, clinicians only their clinic's. Any other id answers
404, exactly like an id that does not exist."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from outcomes.models import Alert, Assessment, AuditEvent
from outcomes.services.assessments import submit_assessment
from outcomes.services.audit import Actor

from .conftest import sign_in

MISSING = 999_999

CLINICIAN_GETS = [
    "/clinic/patients/{patient}",
    "/clinic/patients/{patient}/paper/phq9",
    "/clinic/patients/{patient}/plan",
    "/clinic/patients/{patient}/assessments/{assessment}/correct",
    "/clinic/patients/{patient}/assessments/{assessment}",
]
CLINICIAN_POSTS = [
    "/clinic/patients/{patient}/invitation",
    "/clinic/patients/{patient}/paper/phq9",
    "/clinic/patients/{patient}/plan",
    "/clinic/alerts/{alert}/acknowledge",
]
PATIENT_GETS = ["/me/results/{assessment}"]


@pytest.fixture
def records(world, session):
    """A crisis-flagged PHQ-9 (with its alert) for each clinic's patient."""
    ids = {}
    for name, patient in (("own", world.patient), ("other", world.other_patient)):
        submission = submit_assessment(session, Actor(patient.user), patient, "phq9",
                                       [1] * 9, f"key-{name}")
        session.flush()
        ids[name] = {"patient": patient.id, "assessment": submission.assessment.id,
                     "alert": submission.alerts[0].id}
    session.commit()
    ids["missing"] = {"patient": MISSING, "assessment": MISSING, "alert": MISSING}
    return ids


def fill(path, ids):
    return path.format(**ids)


@pytest.mark.parametrize("verb, path", [("get", path) for path in CLINICIAN_GETS]
                         + [("post", path) for path in CLINICIAN_POSTS])
def test_another_clinics_ids_answer_exactly_like_missing_ones(client, world, records, verb, path):
    sign_in(client, world.clinician)
    method = getattr(client, verb)
    other = method(fill(path, records["other"]))
    missing = method(fill(path, records["missing"]))
    assert method(fill(path, records["own"])).status_code != 404
    assert other.status_code == missing.status_code == 404
    assert other.data == missing.data


def test_a_clinician_cannot_mix_a_patient_with_another_patients_assessment(client, world, records):
    sign_in(client, world.clinician)
    path = (f"/clinic/patients/{records['own']['patient']}/assessments/"
            f"{records['other']['assessment']}/correct")
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", PATIENT_GETS)
def test_a_patient_sees_only_their_own_results(client, world, records, path):
    sign_in(client, world.patient_user)
    assert client.get(fill(path, records["own"])).status_code == 200
    other = client.get(fill(path, records["other"]))
    missing = client.get(fill(path, records["missing"]))
    assert other.status_code == missing.status_code == 404
    assert other.data == missing.data


@pytest.mark.parametrize("path", ["/clinic/patients", "/clinic/patients/new"] + CLINICIAN_GETS)
def test_patients_cannot_reach_clinician_pages(client, world, records, path):
    sign_in(client, world.patient_user)
    assert client.get(fill(path, records["own"])).status_code == 404


@pytest.mark.parametrize("path", ["/me/", "/me/questionnaires/phq9"] + PATIENT_GETS)
def test_clinicians_cannot_reach_patient_pages(client, world, records, path):
    sign_in(client, world.clinician)
    assert client.get(fill(path, records["own"])).status_code == 404


@pytest.mark.parametrize("path", ["/me/", "/clinic/patients"] + CLINICIAN_GETS + PATIENT_GETS)
def test_signed_out_visitors_see_nothing(client, records, path):
    response = client.get(fill(path, records["own"]))
    assert response.status_code == 302 and response.location.startswith("/login")


def test_patient_list_shows_only_the_clinics_own_patients(client, world, factory, records):
    factory.patient(world.other_clinic, world.other_clinician, name="Zed Elsewhere")
    sign_in(client, world.clinician)
    page = client.get("/clinic/patients").data.decode()
    assert world.patient.identifier in page
    assert world.other_patient.identifier not in page and "Zed Elsewhere" not in page


def test_reading_a_patient_record_is_audited_with_who_where_and_when(client, world, records,
                                                                    session):
    sign_in(client, world.clinician)
    response = client.get(f"/clinic/patients/{world.patient.id}",
                          headers={"X-Request-ID": "chosen-by-the-client"})
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.view"))
    assert (event.actor_id, event.actor_role, event.clinic_id, event.patient_id) == \
        (world.clinician.id, "clinician", world.clinic.id, world.patient.id)
    assert event.ip_address == "127.0.0.1"
    assert event.request_id == response.headers["X-Request-ID"] != "chosen-by-the-client"
    assert event.occurred_at.tzinfo is not None


def test_acknowledging_an_alert_keeps_who_when_and_what(client, world, records, session):
    sign_in(client, world.clinician)
    alert_id = records["own"]["alert"]
    empty = client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"note": " "})
    assert empty.status_code == 302
    session.expire_all()
    assert session.get(Alert, alert_id).is_open
    client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"note": "Called; safe."})
    session.expire_all()
    alert = session.get(Alert, alert_id)
    assert not alert.is_open and alert.acknowledged_by_id == world.clinician.id
    assert alert.acknowledgement_note == "Called; safe."
    again = client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"note": "again"})
    assert b"already acknowledged" in client.get(again.location).data
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "alert.acknowledge"))
    assert session.scalars(select(Assessment)).all()  # the assessment itself is untouched


@pytest.mark.parametrize("path", ["/clinic/patients/2147483648", "/clinic/patients/0",
                                  "/clinic/patients/99999999999999999999999",
                                  "/clinic/patients/1/assessments/9223372036854775808"])
def test_absurd_ids_are_a_plain_404(client, world, path):
    sign_in(client, world.clinician)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("field", ["identifier", "display_name"])
def test_control_characters_are_refused_with_a_message_and_change_nothing(
        client, world, session, field):
    from outcomes.models import Patient

    sign_in(client, world.clinician)
    before = session.scalar(select(func.count(Patient.id)))
    data = {"identifier": "MRN-9", "display_name": "Kim Example",
            "assigned_clinician": str(world.clinician.id)}
    data[field] += "\x00"
    response = client.post("/clinic/patients/new", data=data)
    assert response.status_code == 400
    assert b"cannot be stored" in response.data
    assert session.scalar(select(func.count(Patient.id))) == before


def test_login_with_a_nul_character_is_a_400_not_a_500(client):
    response = client.post("/login", data={"email": "a\x00@example.org", "password": "x" * 12})
    assert response.status_code == 400


def test_an_oversized_form_is_refused_before_it_is_read(client):
    response = client.post("/login", data={"email": "a@example.org", "password": "x" * 2_000_000})
    assert response.status_code == 413
