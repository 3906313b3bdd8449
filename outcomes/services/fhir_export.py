"""A patient's record as a FHIR R4 Bundle (JSON-ready dicts, no FHIR library at run time).

The Bundle (type ``collection``) holds the Patient, one QuestionnaireResponse per version of
each assessment, one Observation per scored total whose instrument has a LOINC total code,
and every shipped instrument as a Questionnaire, so each response's ``questionnaire``
resolves inside the Bundle. The Questionnaires, and what a response needs to satisfy one, come
from the engine (``instruments/fhir/exporter.py``); this module adds the records. What each
element holds, and what the de-identified mode changes, is in docs/exports.md.

Corrections, so that a receiver never double-counts: a record is never edited, a correction
is a new version. Every version is exported; those a later version replaces are
``entered-in-error`` (R4: "voided"; for an Observation, "withdrawn following previous final
release"), so a receiver that drops them keeps exactly one response and one total per
questionnaire administered: the latest version. That version is ``amended`` (response: "filled
out ... marked as complete, yet changes ... have been made to it afterwards") and
``corrected`` (Observation: "modified to correct an error"). The versions are linked two ways:
all share one ``identifier`` (the administration: its first version's record), and each
correction names the resource it replaces in the ``REPLACES`` extension. The core ``replaces``
extension would say this, but R4 allows it only on definitional resources, and
``derivedFrom`` means the data a value was computed from, which a wrong earlier total is not.

A response is ``completed`` (or ``amended``) only when it satisfies its Questionnaire: every
required item answered and the Questionnaire's own constraints met. Where the instrument's
rules allow items to be missing (PHQ-9 proration of up to two of items 1-9), those items are
exported as not ``required`` and the Questionnaire carries the rule as a
``questionnaire-constraint`` (a FHIRPath expression over the response). A stored response that
does not satisfy it (too many items missing to score) is ``in-progress``: R4's status for a
response partly filled in, which a later correction may still complete.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

import instruments
from instruments.fhir import LOINC
from instruments.fhir.exporter import (BASE, answer_coding, link_id, questionnaire,
                                       questionnaire_url, satisfies_questionnaire)

from ..models import Assessment, Patient, User, utcnow
from .records import patient_assessments
from .exports import Pseudonyms

#: The kind a patient's Bundle is exported as on the command line, beside the CSV kinds of
#: ``services.exports.KINDS`` (not one of them: it is one patient's document, not rows).
KIND = "fhir"
#: The resource (an earlier version of the same record) a correction replaces.
REPLACES = f"{BASE}/StructureDefinition/replaces"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
#: Resource ids of an identified export are derived from the record ids under this
#: namespace, so exporting the same record twice gives the same id.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE)


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
    assessments = list(reversed(patient_assessments(session, patient.id)))
    versions = _Versions(assessments, pseudonyms, resource_id)
    for assessment in assessments:
        try:
            instrument = instruments.get(assessment.instrument_key)
        except instruments.UnknownInstrument:
            continue
        response = _response(assessment, instrument, versions, subject, pseudonyms)
        entries.append(_entry(response))
        if assessment.total is not None and instrument.loinc_total:
            entries.append(_entry(_observation(assessment, instrument, versions, subject,
                                               response["id"])))
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


class _Versions:
    """How the versions of each record relate: which are replaced, what each replaces, the
    administration they share, and the resource ids of this export."""

    def __init__(self, assessments: Sequence[Assessment], pseudonyms: Pseudonyms | None,
                 resource_id: Callable[[str, int], str]) -> None:
        self.pseudonyms = pseudonyms
        self.replaced = {a.amends_id for a in assessments if a.amends_id is not None}
        self.amends = {a.id: a.amends_id for a in assessments}
        self.ids: dict[tuple[str, int], str] = {}
        self.resource_id = resource_id

    def id_of(self, kind: str, record_id: int) -> str:
        """The resource id of a record's response or Observation, the same each time asked."""
        key = (kind, record_id)
        if key not in self.ids:
            self.ids[key] = self.resource_id(kind, record_id)
        return self.ids[key]

    def identifier(self, assessment: Assessment, system: str) -> dict[str, str]:
        """The administration every version of the record shares."""
        first = assessment.id
        while self.amends.get(first) is not None:
            first = self.amends[first]
        value = str(first) if self.pseudonyms is None else self.pseudonyms.of("A", first)
        return {"system": f"{BASE}/{system}", "value": value}

    def link(self, assessment: Assessment, kind: str, resource: dict[str, Any]) -> None:
        """Point a correction at the resource it replaces."""
        if assessment.amends_id is not None:
            resource["extension"] = [{"url": REPLACES, "valueReference": {
                "reference": f"urn:uuid:{self.id_of(kind, assessment.amends_id)}"}}]


def _response(assessment: Assessment, instrument: instruments.Instrument, versions: _Versions,
              subject: dict[str, str], pseudonyms: Pseudonyms | None) -> dict[str, Any]:
    items = {item.number: item for item in instrument.items}
    answered = []
    for answer in assessment.answers:
        item = items.get(answer.item_number)
        if item is None:
            continue
        answered.append({"linkId": link_id(instrument, item), "text": item.text,
                         "answer": [_answer_value(instrument, item, answer.value)]})
    if assessment.id in versions.replaced:
        status = "entered-in-error"
    elif not satisfies_questionnaire(instrument, {a.item_number for a in assessment.answers}):
        status = "in-progress"
    else:
        status = "amended" if assessment.amends_id is not None else "completed"
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": versions.id_of("QuestionnaireResponse", assessment.id),
        "identifier": versions.identifier(assessment, "assessment"),
        "questionnaire": f"{questionnaire_url(instrument)}|{assessment.instrument_version}",
        "status": status, "subject": subject,
        "authored": _instant(assessment.administered_at), "source": subject,
    }
    versions.link(assessment, "QuestionnaireResponse", resource)
    if answered:  # R4 refuses an empty list
        resource["item"] = answered
    author = _author(assessment, subject, pseudonyms)
    if author:
        resource["author"] = author
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
                 versions: _Versions, subject: dict[str, str],
                 response_id: str) -> dict[str, Any]:
    if assessment.id in versions.replaced:
        status = "entered-in-error"
    else:
        status = "corrected" if assessment.amends_id is not None else "final"
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": versions.id_of("Observation", assessment.id),
        "identifier": [versions.identifier(assessment, "assessment-total")],
        "status": status,
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey",
                                  "display": "Survey"}]}],
        "code": {"coding": [{"system": LOINC, "code": instrument.loinc_total}],
                 "text": f"{instrument.short_title} total score"},
        "subject": subject, "effectiveDateTime": _instant(assessment.administered_at),
        "valueInteger": assessment.total,
        "derivedFrom": [{"reference": f"urn:uuid:{response_id}"}],
    }
    versions.link(assessment, "Observation", resource)
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
