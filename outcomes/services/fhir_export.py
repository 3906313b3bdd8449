"""A patient's record as a FHIR R4 Bundle (JSON-ready dicts, no FHIR library at run time).

The Bundle (type ``collection``) holds the Patient, one QuestionnaireResponse per assessment,
one Observation per scored total whose instrument has a LOINC total code, and every shipped
instrument as a Questionnaire, so each response's ``questionnaire`` resolves inside the
Bundle. What each element holds, and what the de-identified mode changes, is in
docs/exports.md.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from sqlalchemy.orm import Session

import instruments

from ..models import Assessment, Patient, User, utcnow
from .assessments import patient_assessments
from .exports import Pseudonyms

#: The namespace of the URLs Outcomes names its own FHIR artefacts by. ``.invalid`` is
#: reserved (RFC 2606): these are identifiers, not addresses anyone can fetch.
BASE = "http://outcomes.invalid/fhir"
LOINC = "http://loinc.org"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
#: Resource ids of an identified export are derived from the record ids under this
#: namespace, so exporting the same record twice gives the same id.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE)


def questionnaire_url(instrument: instruments.Instrument) -> str:
    """The canonical URL of a shipped instrument's Questionnaire."""
    return f"{BASE}/Questionnaire/{instrument.key}"


def link_id(instrument: instruments.Instrument, item: instruments.Item) -> str:
    """An item's linkId: its LOINC code where it has one (so a response says what was asked
    without the Questionnaire), else the definition's item id."""
    codes = [other.loinc for other in instrument.items if other.loinc]
    if item.loinc and codes.count(item.loinc) == 1:
        return item.loinc
    return item.id


def answer_coding(instrument: instruments.Instrument, item: instruments.Item,
                  option: instruments.Option) -> dict[str, Any]:
    """An answer as a Coding: the LOINC answer code where one exists, else the option's value
    in a code system of the instrument's own."""
    if option.loinc:
        return {"system": LOINC, "code": option.loinc, "display": option.label}
    return {"system": f"{BASE}/CodeSystem/{instrument.key}-{item.option_set}",
            "code": str(option.value), "display": option.label}


def questionnaire(instrument: instruments.Instrument) -> dict[str, Any]:
    """A shipped instrument as an R4 Questionnaire: items with their LOINC codes and answer
    options carrying their scores as ``ordinalValue``."""
    items: list[dict[str, Any]] = []
    if instrument.stem:
        items.append({"linkId": "stem", "text": instrument.stem, "type": "display"})
    for item in instrument.items:
        entry: dict[str, Any] = {"linkId": link_id(instrument, item), "prefix": str(item.number),
                                 "text": item.text, "type": "choice",
                                 "required": item.required}
        if item.loinc:
            entry["code"] = [{"system": LOINC, "code": item.loinc}]
        entry["answerOption"] = [
            {"extension": [{"url": ORDINAL_VALUE, "valueDecimal": option.value}],
             "valueCoding": answer_coding(instrument, item, option)}
            for option in item.options]
        items.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire", "id": instrument.key,
        "url": questionnaire_url(instrument), "version": instrument.version,
        "name": _computable_name(instrument.short_title), "title": instrument.title,
        "status": "active", "subjectType": ["Patient"], "copyright": instrument.licence,
        "item": items,
    }
    if instrument.instructions:
        resource["description"] = instrument.instructions
    if instrument.loinc_panel:
        resource["code"] = [{"system": LOINC, "code": instrument.loinc_panel}]
    return resource


def _computable_name(title: str) -> str:
    # FHIR wants a name a machine can use: a capital letter, then letters, digits or _.
    words = re.findall(r"[A-Za-z0-9]+", title)
    name = "".join(word[:1].upper() + word[1:] for word in words) or "Questionnaire"
    return name if name[0].isalpha() else "Q" + name


def patient_bundle(session: Session, patient: Patient, *, deidentified: bool = False,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    """The patient's record as a Bundle of type ``collection``.

    De-identified: the Patient carries only a per-export pseudonym, resource ids are random,
    and no record id or staff email appears. Times stay real (FHIR needs dates), so the
    result is pseudonymous, not anonymous."""
    pseudonyms = Pseudonyms() if deidentified else None

    def resource_id(kind: str, record_id: int) -> str:
        if pseudonyms is not None:
            return str(uuid.uuid4())
        return str(uuid.uuid5(ID_NAMESPACE, f"{kind}/{record_id}"))

    patient_id = resource_id("Patient", patient.id)
    subject = {"reference": f"urn:uuid:{patient_id}"}
    entries = [_entry(_patient(patient, patient_id, pseudonyms))]
    for assessment in reversed(patient_assessments(session, patient.id)):
        try:
            instrument = instruments.get(assessment.instrument_key)
        except instruments.UnknownInstrument:
            continue
        response_id = resource_id("QuestionnaireResponse", assessment.id)
        entries.append(_entry(_response(assessment, instrument, response_id, subject,
                                        pseudonyms)))
        if assessment.total is not None and instrument.loinc_total:
            entries.append(_entry(_observation(assessment, instrument,
                                               resource_id("Observation", assessment.id),
                                               subject, response_id)))
    entries.extend({"fullUrl": questionnaire_url(instrument),
                    "resource": questionnaire(instrument)} for instrument in instruments.all())
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection",
            "timestamp": _instant(now or utcnow()), "entry": entries}


def resource_counts(bundle: dict[str, Any]) -> dict[str, int]:
    """How many resources of each type a Bundle holds (for the audit trail)."""
    counts: dict[str, int] = {}
    for entry in bundle["entry"]:
        kind = entry["resource"]["resourceType"]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _patient(patient: Patient, resource_id: str,
             pseudonyms: Pseudonyms | None) -> dict[str, Any]:
    if pseudonyms is not None:
        return {"resourceType": "Patient", "id": resource_id,
                "identifier": [{"system": f"{BASE}/pseudonym",
                                "value": pseudonyms.of("P", patient.id)}]}
    return {"resourceType": "Patient", "id": resource_id,
            "identifier": [{"system": f"{BASE}/clinic/{patient.clinic_id}/patient-identifier",
                            "value": patient.identifier}],
            "name": [{"text": patient.display_name}]}


def _response(assessment: Assessment, instrument: instruments.Instrument, resource_id: str,
              subject: dict[str, str], pseudonyms: Pseudonyms | None) -> dict[str, Any]:
    items = {item.number: item for item in instrument.items}
    answered = []
    for answer in assessment.answers:
        item = items.get(answer.item_number)
        if item is None:
            continue
        answered.append({"linkId": link_id(instrument, item), "text": item.text,
                         "answer": [_answer_value(instrument, item, answer.value)]})
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "id": resource_id,
        "questionnaire": f"{questionnaire_url(instrument)}|{assessment.instrument_version}",
        "status": "completed", "subject": subject,
        "authored": _instant(assessment.administered_at), "source": subject,
        "item": answered,
    }
    author = _author(assessment, subject, pseudonyms)
    if author:
        resource["author"] = author
    if pseudonyms is None:
        resource["identifier"] = {"system": f"{BASE}/assessment", "value": str(assessment.id)}
    return resource


def _answer_value(instrument: instruments.Instrument, item: instruments.Item,
                  value: int) -> dict[str, Any]:
    option = next((option for option in item.options if option.value == value), None)
    if option is None:  # a value the definition no longer lists: keep the number
        return {"valueInteger": value}
    return {"valueCoding": answer_coding(instrument, item, option)}


def _author(assessment: Assessment, subject: dict[str, str],
            pseudonyms: Pseudonyms | None) -> dict[str, Any] | None:
    """The patient, when they answered themselves; else the transcribing clinician, named by
    login in an identified export and left out of a de-identified one."""
    if assessment.source == "patient":
        return subject
    if pseudonyms is not None:
        return None
    user: User = assessment.entered_by
    return {"identifier": {"system": f"{BASE}/user", "value": user.email},
            "display": f"{user.role} {user.email} (transcribed a paper form)"}


def _observation(assessment: Assessment, instrument: instruments.Instrument,
                 resource_id: str, subject: dict[str, str],
                 response_id: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": resource_id, "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey",
                                  "display": "Survey"}]}],
        "code": {"coding": [{"system": LOINC, "code": instrument.loinc_total}],
                 "text": f"{instrument.short_title} total score"},
        "subject": subject, "effectiveDateTime": _instant(assessment.administered_at),
        "valueInteger": assessment.total,
        "derivedFrom": [{"reference": f"urn:uuid:{response_id}"}],
    }
    band = next((band for band in instrument.bands if band.key == assessment.band), None)
    if band is not None:
        resource["interpretation"] = [{
            "coding": [{"system": f"{BASE}/CodeSystem/{instrument.key}-band", "code": band.key,
                        "display": band.label}],
            "text": band.label}]
    if assessment.prorated:
        resource["note"] = [{"text": "Total prorated for missing items, as the instrument's "
                                     "rules allow."}]
    return resource
