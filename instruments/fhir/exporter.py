"""A definition as a FHIR R4 Questionnaire: what a receiver needs to read a response.

Items keep their LOINC codes, answer options carry their scores as ``ordinalValue``; items the
missing-item rule lets go unanswered are not ``required`` and the rule is a
``questionnaire-constraint``. The app's export (``outcomes/services/fhir_export.py``) puts these
Questionnaires beside a patient's responses; this module knows definitions only, no records.
"""
from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from ..model import Instrument, Item, Option
from . import LOINC, ORDINAL_VALUE

#: The namespace of the URLs Outcomes names its own FHIR artefacts by. ``.invalid`` is
#: reserved (RFC 2606): these are identifiers, not addresses anyone can fetch.
BASE = "http://outcomes.invalid/fhir"
QUESTIONNAIRE_CONSTRAINT = "http://hl7.org/fhir/StructureDefinition/questionnaire-constraint"


def questionnaire_url(instrument: Instrument) -> str:
    """The canonical URL of a shipped instrument's Questionnaire."""
    return f"{BASE}/Questionnaire/{instrument.key}"


def link_id(instrument: Instrument, item: Item) -> str:
    """An item's linkId: its LOINC code where it has one (so a response says what was asked
    without the Questionnaire), else the definition's item id."""
    codes = [other.loinc for other in instrument.items if other.loinc]
    if item.loinc and codes.count(item.loinc) == 1:
        return item.loinc
    return item.id


def answer_coding(instrument: Instrument, item: Item, option: Option) -> dict[str, Any]:
    """An answer as a Coding: the LOINC answer code where one exists, else the option's value
    in a code system of the instrument's own."""
    if option.loinc:
        return {"system": LOINC, "code": option.loinc, "display": option.label}
    return {"system": f"{BASE}/CodeSystem/{instrument.key}-{item.option_set}",
            "code": str(option.value), "display": option.label}


def tolerated_missing(instrument: Instrument) -> tuple[tuple[Item, ...], int]:
    """The required items of which the instrument's missing-item rule lets some go
    unanswered (PHQ-9: items 1-9), and how many may: ((), 0) when none may."""
    allowed = int(instrument.missing.params.get("max_missing", 0)) if instrument.missing else 0
    if not allowed:
        return (), 0
    return tuple(item for item in instrument.items if item.required and item.scored), allowed


def required_in_questionnaire(instrument: Instrument, item: Item) -> bool:
    """Whether the exported Questionnaire marks the item ``required``: a required item, unless
    the missing-item rule tolerates its absence (then the constraint says how many)."""
    return item.required and item not in tolerated_missing(instrument)[0]


def satisfies_questionnaire(instrument: Instrument,
                            answered: Collection[int]) -> bool:
    """Whether answers to the items numbered ``answered`` satisfy the exported Questionnaire:
    every required item answered, and enough of the tolerated ones."""
    tolerated, allowed = tolerated_missing(instrument)
    if any(required_in_questionnaire(instrument, item) and item.number not in answered
           for item in instrument.items):
        return False
    return sum(item.number not in answered for item in tolerated) <= allowed


def _missing_constraint(instrument: Instrument) -> dict[str, Any] | None:
    tolerated, allowed = tolerated_missing(instrument)
    if not tolerated:
        return None
    needed = len(tolerated) - allowed
    links = " | ".join(f"'{link_id(instrument, item)}'" for item in tolerated)
    numbers = f"{tolerated[0].number} to {tolerated[-1].number}"
    return {"url": QUESTIONNAIRE_CONSTRAINT, "extension": [
        {"url": "key", "valueId": f"{instrument.key}-answered"},
        {"url": "severity", "valueCode": "error"},
        {"url": "expression",
         "valueString": f"item.where(linkId in ({links}) and answer.exists()).count() >= "
                        f"{needed}"},
        {"url": "human",
         "valueString": f"At least {needed} of items {numbers} answered: with up to {allowed} "
                        f"missing the total is prorated ({instrument.missing.source})"},
    ]}


def questionnaire(instrument: Instrument) -> dict[str, Any]:
    """A shipped instrument as an R4 Questionnaire: items with their LOINC codes and answer
    options carrying their scores as ``ordinalValue``; items the missing-item rule lets go
    unanswered are not ``required``, and the rule is a ``questionnaire-constraint``."""
    items: list[dict[str, Any]] = []
    if instrument.stem:
        items.append({"linkId": "stem", "text": instrument.stem, "type": "display"})
    for item in instrument.items:
        entry: dict[str, Any] = {"linkId": link_id(instrument, item), "prefix": str(item.number),
                                 "text": item.text, "type": "choice",
                                 "required": required_in_questionnaire(instrument, item)}
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
    constraint = _missing_constraint(instrument)
    if constraint is not None:
        resource["extension"] = [constraint]
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
