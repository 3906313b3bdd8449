"""The FHIR R4 export: a patient's Bundle validates against the fhir.resources models, carries
LOINC codes where the definitions have them, is pseudonymous on request, and is audited and
reachable by the patient's own clinic only."""
from __future__ import annotations

import json

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

import instruments
from outcomes.models import AuditEvent
from outcomes.services import fhir_export

from .conftest import sign_in
from .test_exports import records  # noqa: F401  (the fixture)


def validate(bundle: dict) -> None:
    """The Bundle and each resource in it, against the R4B models (R4-compatible for the
    resources used); raises on anything the models refuse."""
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def of_type(bundle: dict, kind: str) -> list[dict]:
    return [entry["resource"] for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == kind]


def export(client, patient_id: int, deidentified: bool = False):
    return client.post(f"/exports/patients/{patient_id}/fhir",
                       data={"deidentified": "y"} if deidentified else {})


@pytest.mark.parametrize("instrument", instruments.all(), ids=lambda i: i.key)
def test_each_shipped_instrument_is_a_valid_questionnaire(instrument):
    resource = fhir_export.questionnaire(instrument)
    get_fhir_model_class("Questionnaire").model_validate(resource)
    questions = [item for item in resource["item"] if item["type"] == "choice"]
    assert len(questions) == len(instrument.items)
    for item, question in zip(instrument.items, questions):
        assert question["required"] == item.required
        if item.loinc:
            assert question["code"] == [{"system": "http://loinc.org", "code": item.loinc}]
        ordinals = [option["extension"][0] for option in question["answerOption"]]
        assert ordinals == [{"url": fhir_export.ORDINAL_VALUE, "valueDecimal": option.value}
                            for option in item.options]
    assert resource["url"] == fhir_export.questionnaire_url(instrument)


def test_the_bundle_validates_and_holds_every_record(client, world, records):
    sign_in(client, world.clinician)
    response = export(client, world.patient.id)
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    assert "attachment" in response.headers["Content-Disposition"]
    bundle = json.loads(response.data)
    validate(bundle)
    assert bundle["type"] == "collection"
    patient, = of_type(bundle, "Patient")
    assert patient["identifier"][0]["value"] == world.patient.identifier
    assert patient["name"] == [{"text": "Pat Example"}]
    responses = of_type(bundle, "QuestionnaireResponse")
    assert len(responses) == 3
    assert {q["id"] for q in of_type(bundle, "Questionnaire")} == {
        i.key for i in instruments.all()}
    urls = {entry["fullUrl"] for entry in bundle["entry"]}
    for response_ in responses:
        assert response_["questionnaire"].split("|")[0] in urls
        assert response_["subject"]["reference"] in urls


def test_phq9_answers_and_total_carry_loinc_codes(client, world, records):
    sign_in(client, world.clinician)
    bundle = json.loads(export(client, world.patient.id).data)
    baseline = next(r for r in of_type(bundle, "QuestionnaireResponse")
                    if r["authored"] == "2025-06-02T15:00:00Z")
    assert baseline["status"] == "completed"
    assert baseline["questionnaire"] == "http://outcomes.invalid/fhir/Questionnaire/phq9|1.0"
    assert baseline["item"][0]["linkId"] == "44250-9"
    assert baseline["item"][0]["answer"] == [{"valueCoding": {
        "system": "http://loinc.org", "code": "LA6569-3", "display": "Several days"}}]
    assert baseline["author"] == baseline["subject"]
    observations = of_type(bundle, "Observation")
    phq9 = next(o for o in observations if o["effectiveDateTime"] == "2025-06-02T15:00:00Z"
                and o["code"]["coding"][0]["code"] == "44261-6")
    assert phq9["valueInteger"] == 9
    assert phq9["interpretation"][0]["text"] == "Mild"
    assert phq9["interpretation"][0]["coding"][0]["code"] == "mild"
    assert phq9["derivedFrom"] == [{"reference": f"urn:uuid:{baseline['id']}"}]
    gad7 = [o for o in observations if o["code"]["coding"][0]["code"] == "70274-6"]
    assert len(gad7) == 1 and gad7[0]["valueInteger"] == 14
    assert len(observations) == 3


def test_answers_without_loinc_codes_use_the_instruments_own_codes(app, world, session):
    from outcomes.services.assessments import submit_assessment
    from outcomes.services.audit import Actor

    submit_assessment(session, Actor(world.patient_user), world.patient, "after-infusion",
                      [0, 1, 0, 0, 0, 0, 0, 0, 0], "key-after")
    submit_assessment(session, Actor(world.patient_user), world.patient, "pcl5-weekly",
                      [1] * 20, "key-weekly")
    session.commit()
    bundle = fhir_export.patient_bundle(session, world.patient)
    validate(bundle)
    after = next(r for r in of_type(bundle, "QuestionnaireResponse")
                 if "after-infusion" in r["questionnaire"])
    assert after["item"][1]["linkId"] == "dizziness"
    assert after["item"][1]["answer"] == [{"valueCoding": {
        "system": "http://outcomes.invalid/fhir/CodeSystem/after-infusion-severity",
        "code": "1", "display": "Mild"}}]
    # Neither definition has a LOINC total code, so neither total is an Observation.
    assert of_type(bundle, "Observation") == []


def test_the_deidentified_bundle_is_pseudonymous(client, world, records):
    sign_in(client, world.clinician)
    body = export(client, world.patient.id, deidentified=True).data.decode()
    bundle = json.loads(body)
    validate(bundle)
    for secret in (world.patient.identifier, "Pat Example", world.clinician.email,
                   world.patient_user.email):
        assert secret not in body
    patient, = of_type(bundle, "Patient")
    assert "name" not in patient and patient["identifier"][0]["value"].startswith("P-")
    again = json.loads(export(client, world.patient.id, deidentified=True).data)
    assert of_type(again, "Patient")[0]["id"] != patient["id"]


def test_identified_resource_ids_are_stable(client, world, records):
    sign_in(client, world.clinician)
    first, second = (json.loads(export(client, world.patient.id).data) for _ in range(2))
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in second["entry"]]


def test_only_the_patients_clinic_can_export_and_each_export_is_audited(client, world,
                                                                        records, session):
    sign_in(client, world.clinician)
    assert client.get(f"/exports/patients/{world.patient.id}/fhir").status_code == 200
    assert export(client, world.other_patient.id).status_code == 404
    assert client.get(f"/exports/patients/{world.other_patient.id}/fhir").status_code == 404
    assert export(client, 999_999).status_code == 404
    export(client, world.patient.id, deidentified=True)
    event, = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.fhir")).all()
    assert (event.actor_id, event.patient_id, event.details["deidentified"]) == (
        world.clinician.id, world.patient.id, True)
    assert event.details["resources"]["QuestionnaireResponse"] == 3
    client.post("/logout")
    sign_in(client, world.patient_user)
    assert export(client, world.patient.id).status_code == 404


def test_the_exports_page_finds_a_patient_by_identifier(client, world, records):
    sign_in(client, world.clinician)
    # By POST: an MRN in a query string would land in access logs and browser history.
    found = client.post("/exports/fhir", data={"identifier": world.patient.identifier})
    assert found.headers["Location"].endswith(f"/exports/patients/{world.patient.id}/fhir")
    other = client.post("/exports/fhir", data={"identifier": world.other_patient.identifier})
    assert other.headers["Location"].endswith("/exports/")
    assert client.get("/exports/fhir", query_string={
        "identifier": world.patient.identifier}).status_code == 405


def test_the_command_writes_a_valid_bundle_and_audits_it(runner, world, records, session,
                                                          tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    result = runner.invoke(args=["export", "fhir", "--clinic", world.clinic.name, "--patient",
                                 world.patient.identifier, "--output", str(folder / "b.json")])
    assert result.exit_code == 0, result.output
    validate(json.loads((folder / "b.json").read_text()))
    event, = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.fhir")).all()
    assert (event.actor_role, event.patient_id) == ("system", world.patient.id)
