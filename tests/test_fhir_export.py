"""The FHIR R4 export: a patient's Bundle validates against the fhir.resources models and the
R4 invariants, every response against its own Questionnaire; corrections leave one current
version per questionnaire for a receiver that drops entered-in-error resources; it carries
LOINC codes where the definitions have them, is pseudonymous on request, and is audited and
reachable by the patient's own clinic only."""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhirpathpy import evaluate
from fhirpathpy.models import models
from sqlalchemy import select

import instruments
from instruments.fhir import exporter
from outcomes.models import Assessment, AuditEvent
from outcomes.services import fhir_export

from .conftest import sign_in

#: The R4 (4.0.1) invariants of the resources the export writes, as the specification states
#: them (StructureDefinitions of Bundle, Questionnaire, QuestionnaireResponse, Observation,
#: DomainResource, Element, Extension). Those declared on an element are applied to every
#: such element (``repeat(item)``, ``descendants()``).
R4_INVARIANTS = {
    "Bundle": {
        "bdl-1": "total.empty() or (type = 'searchset') or (type = 'history')",
        "bdl-2": "entry.search.empty() or (type = 'searchset')",
        "bdl-3": "entry.all(request.exists() = (%resource.type = 'batch' or "
                 "%resource.type = 'transaction' or %resource.type = 'history'))",
        "bdl-4": "entry.all(response.exists() = (%resource.type = 'batch-response' or "
                 "%resource.type = 'transaction-response' or %resource.type = 'history'))",
        "bdl-5": "entry.all(resource.exists() or request.exists() or response.exists())",
        "bdl-7": "(type = 'history') or entry.where(fullUrl.exists())"
                 ".select(fullUrl&resource.meta.versionId).isDistinct()",
        "bdl-8": "entry.all(fullUrl.contains('/_history/').not())",
        "bdl-9": "type = 'document' implies (identifier.system.exists() and "
                 "identifier.value.exists())",
        "bdl-10": "type = 'document' implies (timestamp.hasValue())",
        "bdl-11": "type = 'document' implies entry.first().resource.is(Composition)",
        "bdl-12": "type = 'message' implies entry.first().resource.is(MessageHeader)",
    },
    "Questionnaire": {
        "que-0": "name.exists() implies name.matches('[A-Z]([A-Za-z0-9_]){0,254}')",
        "que-1": "repeat(item).all((type = 'group' implies item.empty().not()) and "
                 "(type = 'display' implies item.empty()))",
        "que-2": "descendants().linkId.isDistinct()",
        "que-3": "repeat(item).all(type != 'display' or code.empty())",
        "que-4": "repeat(item).all(answerOption.empty() or answerValueSet.empty())",
        "que-5": "repeat(item).all((type = 'choice' or type = 'open-choice' or "
                 "type = 'decimal' or type = 'integer' or type = 'date' or "
                 "type = 'dateTime' or type = 'time' or type = 'string' or "
                 "type = 'quantity') or (answerValueSet.empty() and answerOption.empty()))",
        "que-6": "repeat(item).all(type != 'display' or (required.empty() and "
                 "repeats.empty()))",
        "que-8": "repeat(item).all((type != 'group' and type != 'display') or "
                 "initial.empty())",
        "que-9": "repeat(item).all(type != 'display' or readOnly.empty())",
        "que-10": "repeat(item).all((type in ('boolean' | 'decimal' | 'integer' | 'string' | "
                  "'text' | 'url' | 'open-choice')) or maxLength.empty())",
        "que-11": "repeat(item).all(answerOption.empty() or initial.empty())",
        "que-12": "repeat(item).all(enableWhen.count() > 2 implies enableBehavior.exists())",
        "que-13": "repeat(item).all(repeats = true or initial.count() <= 1)",
    },
    "QuestionnaireResponse": {
        "qrs-1": "repeat(item | answer.item).all((answer.exists() and item.exists()).not())",
        "qrs-2": "repeat(answer | item).select(item.where(answer.value.exists())"
                 ".linkId.isDistinct()).allTrue()",
    },
    "Observation": {
        "obs-3": "referenceRange.all(low.exists() or high.exists() or text.exists())",
        "obs-6": "dataAbsentReason.empty() or value.empty()",
        "obs-7": "value.empty() or component.code.where(coding.intersect(%resource.code.coding)"
                 ".exists()).empty()",
    },
    "*": {
        "dom-2": "contained.contained.empty()",
        "dom-4": "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
        "dom-5": "contained.meta.security.empty()",
        "ext-1": "descendants().extension.all(extension.exists() != value.exists())",
        "ele-1": "descendants().all(hasValue() or (children().count() > id.count()))",
    },
}


#: FHIRPath's hasValue(), which fhirpathpy lacks: one primitive with a value.
HAS_VALUE = {"hasValue": {"fn": lambda inputs: len(inputs) == 1 and inputs[0] is not None
                          and not isinstance(inputs[0], (dict, list))}}


def holds(resource: dict, expression: str) -> bool:
    """A FHIRPath invariant evaluated on ``resource`` with the R4 model."""
    return evaluate(resource, expression, {"resource": resource}, models["r4"],
                    {"userInvocationTable": HAS_VALUE}) == [True]


def validate(bundle: dict) -> None:
    """The Bundle and each resource in it, against the R4B models (R4-compatible for the
    resources used) and the R4 invariants; every response against its own Questionnaire."""
    Bundle.model_validate(bundle)
    broken = [f"Bundle {key}" for key, rule in R4_INVARIANTS["Bundle"].items()
              if not holds(bundle, rule)]
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        get_fhir_model_class(kind).model_validate(resource)
        rules = {**R4_INVARIANTS.get(kind, {}), **R4_INVARIANTS["*"]}
        broken += [f"{kind}/{resource['id']} {key}" for key, rule in rules.items()
                   if not holds(resource, rule)]
    assert not broken, broken
    questionnaires = {q["url"]: q for q in of_type(bundle, "Questionnaire")}
    for response in of_type(bundle, "QuestionnaireResponse"):
        check_against_questionnaire(response, questionnaires)


def check_against_questionnaire(response: dict, questionnaires: dict[str, dict]) -> None:
    """The response's linkIds and answer types are its Questionnaire's, and it is
    ``completed`` or ``amended`` exactly when it satisfies it: every required item answered
    and every ``questionnaire-constraint`` expression true."""
    url, version = response["questionnaire"].split("|")
    questionnaire = questionnaires[url]
    assert questionnaire["version"] == version
    items = {item["linkId"]: item for item in questionnaire["item"]}
    answered = set()
    for item in response.get("item", []):
        asked = items[item["linkId"]]
        assert asked["type"] == "choice" and item["text"] == asked["text"]
        [answer] = item["answer"]
        options = [option["valueCoding"] for option in asked["answerOption"]]
        assert answer["valueCoding"] in options
        answered.add(item["linkId"])
    constraints = [next(part["valueString"] for part in extension["extension"]
                        if part["url"] == "expression")
                   for extension in questionnaire.get("extension", [])
                   if extension["url"] == exporter.QUESTIONNAIRE_CONSTRAINT]
    satisfied = (all(link in answered for link, item in items.items() if item.get("required"))
                 and all(holds(response, rule) for rule in constraints))
    if response["status"] != "entered-in-error":
        assert (response["status"] in ("completed", "amended")) == satisfied, response
        assert response["status"] in ("completed", "amended", "in-progress")


def of_type(bundle: dict, kind: str) -> list[dict]:
    return [entry["resource"] for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == kind]


def export(client, patient_id: int, deidentified: bool = False):
    return client.post(f"/exports/patients/{patient_id}/fhir",
                       data={"deidentified": "y"} if deidentified else {})


@pytest.mark.parametrize("instrument", instruments.all(), ids=lambda i: i.key)
def test_each_shipped_instrument_is_a_valid_questionnaire(instrument):
    resource = exporter.questionnaire(instrument)
    get_fhir_model_class("Questionnaire").model_validate(resource)
    questions = [item for item in resource["item"] if item["type"] == "choice"]
    assert len(questions) == len(instrument.items)
    tolerated, allowed = exporter.tolerated_missing(instrument)
    for item, question in zip(instrument.items, questions):
        # Items the missing-item rule lets go unanswered are not required one by one.
        assert question["required"] == (item.required and item not in tolerated)
        if item.loinc:
            assert question["code"] == [{"system": "http://loinc.org", "code": item.loinc}]
        ordinals = [option["extension"][0] for option in question["answerOption"]]
        assert ordinals == [{"url": exporter.ORDINAL_VALUE, "valueDecimal": option.value}
                            for option in item.options]
    assert resource["url"] == exporter.questionnaire_url(instrument)
    for key, rule in {**R4_INVARIANTS["Questionnaire"], **R4_INVARIANTS["*"]}.items():
        assert holds(resource, rule), key
    constraints = [e for e in resource.get("extension", [])
                   if e["url"] == exporter.QUESTIONNAIRE_CONSTRAINT]
    assert len(constraints) == (1 if allowed else 0)


def test_the_phq9_questionnaire_says_up_to_two_of_items_1_to_9_may_be_missing():
    phq9 = instruments.get("phq9")
    resource = exporter.questionnaire(phq9)
    assert not any(item.get("required") for item in resource["item"])
    [constraint] = resource["extension"]
    parts = {part["url"]: next(v for k, v in part.items() if k.startswith("value"))
             for part in constraint["extension"]}
    assert parts["severity"] == "error" and "At least 7 of items 1 to 9" in parts["human"]

    def response(answers):
        return {"resourceType": "QuestionnaireResponse", "status": "completed",
                "item": [{"linkId": exporter.link_id(phq9, item), "answer": [{
                    "valueCoding": {"code": "x"}}]}
                    for item, answer in zip(phq9.items, answers) if answer is not None]}

    # The constraint and the export's own test agree with the scoring's proration rule.
    for answers in ([1] * 9, [1] * 7 + [None] * 2, [None, 1, None] + [1] * 6,
                    [1] * 6 + [None] * 3, [None] * 9):
        scorable = instruments.score("phq9", answers).scorable
        numbers = {n for n, a in enumerate(answers, start=1) if a is not None}
        assert holds(response(answers), parts["expression"]) == scorable
        assert exporter.satisfies_questionnaire(phq9, numbers) == scorable


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


def test_answers_without_loinc_codes_use_the_instruments_own_codes(world, factory, session):
    factory.assessment(world.patient, "after-infusion", [0, 1, 0, 0, 0, 0, 0, 0, 0])
    factory.assessment(world.patient, "pcl5-weekly", [1] * 20)
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


# --- corrections and incomplete records ---------------------------------------------------

T = dt.datetime(2026, 5, 4, 14, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def versions(world, factory, session):
    """The world's patient: complete, prorated and unscorable PHQ-9s, an incomplete PCL-5, a
    GAD-7 without its optional item 8, a PHQ-9 corrected twice, and a GAD-7 corrected into
    an incomplete one."""
    patient = world.patient

    def submit(key, answers, at, amends=None):
        return factory.assessment(patient, key, answers, at=at, by=world.clinician,
                                  amends=amends)

    submit("phq9", [1] * 9 + [0], T)
    submit("phq9", [2] * 7 + [None, None], T + dt.timedelta(days=1))
    submit("phq9", [1] * 6 + [None] * 3, T + dt.timedelta(days=2))
    submit("pcl5", [1] * 19 + [None], T + dt.timedelta(days=3))
    submit("gad7", [1] * 7, T + dt.timedelta(days=4))
    first = submit("phq9", [3] * 9, T + dt.timedelta(days=5))
    second = submit("phq9", [2] * 9, T + dt.timedelta(days=5), amends=first)
    submit("phq9", [1] * 8 + [0], T + dt.timedelta(days=5), amends=second)
    gad = submit("gad7", [2] * 7 + [1], T + dt.timedelta(days=6))
    submit("gad7", [2] * 6 + [None], T + dt.timedelta(days=6), amends=gad)
    return session.scalars(select(Assessment).where(Assessment.patient_id == patient.id)
                           .order_by(Assessment.id)).all()


def kept_by_receiver(bundle: dict, kind: str) -> list[dict]:
    """What a receiver that drops entered-in-error resources keeps."""
    return [r for r in of_type(bundle, kind) if r["status"] != "entered-in-error"]


@pytest.mark.parametrize("deidentified", [False, True], ids=["identified", "deidentified"])
def test_a_receiver_sees_one_current_version_per_questionnaire(world, session, versions,
                                                               deidentified):
    bundle = fhir_export.patient_bundle(session, world.patient, deidentified=deidentified)
    validate(bundle)
    replaced = {a.amends_id for a in versions if a.amends_id}
    current = [a for a in versions if a.id not in replaced]
    responses = kept_by_receiver(bundle, "QuestionnaireResponse")
    # Ten records, seven questionnaires administered: seven responses, one each.
    assert len(of_type(bundle, "QuestionnaireResponse")) == 10 and len(responses) == 7
    assert Counter(r["identifier"]["value"] for r in responses).most_common(1)[0][1] == 1
    assert sorted(r["authored"] for r in responses) == sorted(
        fhir_export._instant(a.administered_at) for a in current)
    observations = kept_by_receiver(bundle, "Observation")
    scored = [a for a in current if a.total is not None
              and instruments.get(a.instrument_key).loinc_total]
    assert sorted(o["valueInteger"] for o in observations) == sorted(a.total for a in scored)
    assert Counter(o["identifier"][0]["value"] for o in observations).most_common(1)[0][1] == 1
    # Every version is there, and each correction names the one it replaces.
    everything = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}
    for resource in of_type(bundle, "QuestionnaireResponse") + of_type(bundle, "Observation"):
        links = [e["valueReference"]["reference"] for e in resource.get("extension", [])
                 if e["url"] == fhir_export.REPLACES]
        for link in links:
            earlier = everything[link]
            assert earlier["status"] == "entered-in-error"
            assert earlier["resourceType"] == resource["resourceType"]
            assert earlier["identifier"] == resource["identifier"]


def test_statuses_follow_r4_for_versions_and_incomplete_records(world, session, versions):
    bundle = fhir_export.patient_bundle(session, world.patient)
    validate(bundle)
    statuses = [(r["questionnaire"].split("/")[-1].split("|")[0], r["status"],
                 len(r.get("item", []))) for r in of_type(bundle, "QuestionnaireResponse")]
    assert statuses == [
        ("phq9", "completed", 10), ("phq9", "completed", 7),     # prorated: satisfies
        ("phq9", "in-progress", 6),                              # three missing: does not
        ("pcl5", "in-progress", 19), ("gad7", "completed", 7),   # GAD-7 item 8 is optional
        ("phq9", "entered-in-error", 9), ("phq9", "entered-in-error", 9),
        ("phq9", "amended", 9),                                  # corrected twice
        ("gad7", "entered-in-error", 8), ("gad7", "in-progress", 6),  # corrected, incomplete
    ]
    # The versions share the administration: its first record's id.
    identifiers = [r["identifier"]["value"] for r in of_type(bundle, "QuestionnaireResponse")]
    assert identifiers[5] == identifiers[6] == identifiers[7] == str(versions[5].id)
    assert identifiers[8] == identifiers[9] == str(versions[8].id)
    assert len(set(identifiers)) == 7
    totals = [(o["status"], o["valueInteger"]) for o in of_type(bundle, "Observation")]
    assert totals == [("final", 9), ("final", 18), ("final", 7), ("entered-in-error", 27),
                      ("entered-in-error", 18), ("corrected", 8), ("entered-in-error", 14)]
    prorated = of_type(bundle, "Observation")[1]
    assert "prorated" in prorated["note"][0]["text"]


def test_the_checks_refuse_a_bundle_that_breaks_them(world, session, versions):
    bundle = fhir_export.patient_bundle(session, world.patient)
    incomplete = next(r for r in of_type(bundle, "QuestionnaireResponse")
                      if r["status"] == "in-progress")
    incomplete["status"] = "completed"  # claims to satisfy a Questionnaire it does not
    with pytest.raises(AssertionError):
        validate(bundle)
    incomplete["status"] = "in-progress"
    validate(bundle)
    bundle["entry"].append(bundle["entry"][1])  # the same fullUrl twice: bdl-7
    with pytest.raises(AssertionError, match="bdl-7"):
        validate(bundle)
