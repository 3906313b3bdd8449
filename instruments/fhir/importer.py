"""Import a FHIR R4 Questionnaire (JSON) as a definition file for a person to review.

``python -m instruments import-fhir FILE.json [--key KEY] [--output PATH]``. What a
Questionnaire expresses (items, their texts, answers and LOINC codes) is carried over; what it
does not (bands, flags, cut-point, change thresholds, the missing-item rule) is left for a person,
with a conservative default where the schema needs one, and listed on stderr. The written file
always loads: it is checked with ``load_definition`` before it is put in place.

The rules (also in README.md, "Importing a FHIR Questionnaire"):

- ``group`` and ``display`` items are structure. The first display text before the first
  question becomes the stem; other display texts are dropped, and said so.
- An item with a calculated value (``sdc-questionnaire-calculatedExpression``,
  ``cqf-calculatedValue``) or ``readOnly`` is not answered: it is dropped. When exactly one such
  item has a LOINC code, that code becomes ``loinc.total``.
- Answers come from ``answerOption`` (valueCoding, valueString, valueInteger) or from an
  ``answerValueSet`` found in the file: ``#id`` of a contained ValueSet, or the canonical URL of
  one. Anything else cannot be resolved offline and is an error.
- An answer's value is its ``ordinalValue`` (or ``itemWeight``) extension, else the integer of a
  valueInteger answer, else its position (0 first). Answer codes are kept as labels and LOINC
  codes only, never used to find a value: public files disagree on them.
- An item is *scored* when its answers carry values (ordinalValue, itemWeight, valueInteger).
  When some items carry values and others do not, the others are written unscored and not
  required (PHQ-9's difficulty item 69722-7), whatever FHIR's ``required`` says: an unscored
  item never counts as missing. When no item carries values, every item is scored by position,
  except items whose answer list differs from the one most items share.
- A scored item is always written required (the schema's rule): a blank one is handled by the
  missing-item rule, which the importer writes as ``none_allowed``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import tomli_w

from ..definition import _KEY, _LOINC, _LOINC_ANSWER, _loinc_check_digit_ok, load_definition
from ..errors import InstrumentError
from . import LOINC, ORDINAL_VALUE

_VALUE_EXTENSIONS = (
    ORDINAL_VALUE,
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",  # the pre-R4 name of ordinalValue
)
_CALCULATED_EXTENSIONS = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression",
    "http://hl7.org/fhir/StructureDefinition/cqf-calculatedValue",
)
_TIME_FRAME = re.compile(
    r"\b(?:last|past)\s+(?:(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve)\s+)?"
    r"(?:days?|weeks?|months?|years?)\b", re.IGNORECASE)
_LARGEST_VALUE = 10**6
GENERIC_STEM = "Please answer each question."
NO_TIME_FRAME = "not stated"


class FhirImportError(InstrumentError):
    """A Questionnaire that cannot be imported; the one-line message names file and item."""


@dataclass(frozen=True)
class Note:
    """One point for the reviewer: ``decided``, ``dropped`` or ``not expressed``."""

    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


@dataclass
class ImportResult:
    """What ``import_fhir`` wrote, and what a person must still look at."""

    path: Path
    key: str
    definition: dict[str, Any]
    notes: list[Note]

    def to_dict(self) -> dict[str, Any]:
        items = self.definition["items"]
        return {
            "output": str(self.path),
            "key": self.key,
            "items": len(items),
            "scored_items": [item["number"] for item in items if item.get("scored", True)],
            "unscored_items": [item["number"] for item in items if not item.get("scored", True)],
            "notes": [str(note) for note in self.notes],
        }


@dataclass
class _Answer:
    label: str
    loinc: str | None
    weight: int | None
    integer: int | None
    foreign_code: str | None  # "system|code" of a code the schema cannot hold


@dataclass
class _Question:
    name: str  # how messages name it: item 'linkId'
    link_id: str
    text: str
    loinc: str | None
    fhir_required: bool
    answers: list[_Answer]
    set_hint: str  # a value set id, or "answers"
    values: list[int] | None = None  # None until decided
    weighted_by: str | None = None
    scored: bool = True
    comment: str = ""


@dataclass
class _State:
    source: str
    questionnaire: Mapping[str, Any]
    questions: list[_Question] = field(default_factory=list)
    stem: str | None = None
    calculated: list[tuple[str, str | None]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def error(self, message: str, where: str | None = None) -> FhirImportError:
        return FhirImportError(_one_line(f"{self.source}: {where}: {message}" if where
                                         else f"{self.source}: {message}"))

    def note(self, kind: str, text: str) -> None:
        self.notes.append(Note(kind, _one_line(text)))


# --------------------------------------------------------------------------- the command


def import_fhir(source: str | os.PathLike[str], *, key: str | None = None,
                output: str | os.PathLike[str] | None = None) -> ImportResult:
    """Read a Questionnaire file and write ``KEY.toml``; raise FhirImportError, writing nothing.

    KEY defaults to the stem of ``output``, else to the input file's stem in lower case with
    hyphens. ``output`` defaults to ``KEY.toml`` in the current directory; an existing file is
    never overwritten.
    """
    source = Path(source)
    key, path = _key_and_path(source, key, output)
    questionnaire = read_questionnaire(source)
    try:
        definition, comments, notes = questionnaire_to_definition(questionnaire, key=key, source=source.name)
    except RecursionError:
        raise FhirImportError(f"{source.name}: items are nested too deeply") from None
    header = _header(definition, source.name, notes)
    text = dumps(definition, header=header, comments=comments)
    _check_loads(text, key)
    try:
        with path.open("x", encoding="utf-8", newline="\n") as file:
            file.write(text)
    except FileExistsError:
        raise FhirImportError(f"{path}: already exists; not overwritten (remove it or choose --output)") from None
    except OSError as error:
        raise FhirImportError(f"{path}: cannot write: {error.strerror or error}") from error
    return ImportResult(path=path, key=key, definition=definition, notes=notes)


def _key_and_path(source: Path, key: str | None, output: str | os.PathLike[str] | None) -> tuple[str, Path]:
    if output is not None:
        path = Path(output)
        if path.suffix != ".toml":
            raise FhirImportError(f"--output {str(path)!r}: must be a .toml file")
        if key is None:
            key = path.stem
        elif path.stem != key:
            raise FhirImportError(f"--output {str(path)!r}: the file must be named {key}.toml "
                                  "(a definition's key is its file name)")
    if key is None:
        key = re.sub(r"[^a-z0-9]+", "-", source.stem.lower()).strip("-")
        if not key:
            raise FhirImportError(f"{source.name}: cannot make a key from the file name; give --key")
    if not _KEY.fullmatch(key):
        raise FhirImportError(f"key {key!r} must be lower-case letters and digits joined by hyphens")
    return key, Path(output) if output is not None else Path(f"{key}.toml")


def read_questionnaire(source: Path) -> dict[str, Any]:
    """The Questionnaire resource in a JSON file; FhirImportError for anything else."""
    try:
        raw = source.read_bytes()
    except OSError as error:
        raise FhirImportError(f"{source.name}: cannot read: {error.strerror or error}") from error
    try:
        data = json.loads(raw.decode("utf-8-sig"), parse_float=Decimal, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise FhirImportError(f"{source.name}: not JSON: not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        raise FhirImportError(_one_line(f"{source.name}: not JSON: {error}")) from None
    if not isinstance(data, dict):
        raise FhirImportError(f"{source.name}: not a FHIR Questionnaire (a JSON {_json_type(data)}, "
                              "not a resource)")
    kind = data.get("resourceType")
    if kind != "Questionnaire":
        found = f"resourceType {kind!r}" if kind is not None else "no resourceType"
        raise FhirImportError(_one_line(f"{source.name}: not a FHIR Questionnaire ({found})"))
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_loads(text: str, key: str) -> None:
    # The promise is that whatever the importer writes loads; check it before writing.
    with tempfile.TemporaryDirectory() as directory:
        trial = Path(directory) / f"{key}.toml"
        trial.write_text(text, encoding="utf-8")
        try:
            load_definition(trial)
        except InstrumentError as error:
            raise FhirImportError(f"internal error: the definition would not load ({error}); "
                                  "nothing written") from error


# --------------------------------------------------------------------------- FHIR → definition


def questionnaire_to_definition(questionnaire: Mapping[str, Any], *, key: str,
                                source: str) -> tuple[dict[str, Any], dict[str, str], list[Note]]:
    """The definition (as TOML-ready data), comments by table path, and the reviewer's notes."""
    state = _State(source=source, questionnaire=questionnaire)
    items = questionnaire.get("item")
    if not isinstance(items, list) or not items:
        raise state.error("the Questionnaire has no items")
    _walk(state, items, "item")
    if not state.questions:
        raise state.error("no answerable item (only groups, display texts or calculated items)")
    _decide_values(state)

    title = _text(questionnaire.get("title")) or _text(questionnaire.get("name")) or key
    definition: dict[str, Any] = {
        "key": key,
        "version": _version(state),
        "title": title,
        "short_title": title,
        "citations": [_citation(questionnaire, source)],
        "licence": _licence(state),
        "instructions": "",
        "stem": _stem(state),
        "time_frame": _time_frame(state),
        "validated": False,
        "local_policies": _local_policies(state, source),
    }
    loinc = _loinc_table(state)
    if loinc:
        definition["loinc"] = loinc
    option_sets, set_of = _option_sets(state)
    scored = [q for q in state.questions if q.scored]
    definition["total_min"] = sum(min(q.values or [0]) for q in scored)
    definition["total_max"] = sum(max(q.values or [0]) for q in scored)
    definition["option_sets"] = option_sets
    comments: dict[str, str] = {}
    entries = []
    for number, question in enumerate(state.questions, start=1):
        entry: dict[str, Any] = {"id": f"q{number}", "number": number, "text": question.text}
        if question.loinc:
            entry["loinc"] = question.loinc
        entry["options"] = set_of[number - 1]
        if not question.scored:
            entry["scored"] = False
            entry["required"] = False
        entries.append(entry)
        comments[f"items[{number - 1}]"] = (f"FHIR linkId {_quote(question.link_id)}"
                                            + (f"; {question.comment}" if question.comment else ""))
    definition["items"] = entries
    definition["missing"] = {
        "rule": "none_allowed",
        "source": "Importer default (python -m instruments import-fhir): a FHIR Questionnaire has no "
                  "missing-item rule, so any missing scored item makes the total not scorable. "
                  "Replace with the instrument's published rule.",
    }
    comments["missing"] = "Conservative default written by the importer: replace with the published rule."
    _not_expressed(state)
    order = ("decided", "dropped", "not expressed")
    return definition, comments, sorted(state.notes, key=lambda note: order.index(note.kind))


def _walk(state: _State, items: Any, where: str) -> None:
    if not isinstance(items, list):
        raise state.error("must be a list of items", where)
    for index, item in enumerate(items):
        path = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise state.error(f"must be an object, got a JSON {_json_type(item)}", path)
        link_id = item.get("linkId")
        name = f"item {_quote(link_id)}" if isinstance(link_id, str) and link_id else path
        kind = item.get("type")
        children = item.get("item")
        if kind == "group":
            if item.get("repeats") is True:
                state.note("not expressed", f"group {name} repeats; imported once")
            if _text(item.get("text")):
                state.note("dropped", f"heading of group {name}: {_excerpt(item['text'])}")
            _walk(state, children if children is not None else [], f"{path}.item")
            continue
        if kind == "display":
            text = _text(item.get("text"))
            if text and state.stem is None and not state.questions:
                state.stem = text
                state.note("decided", f"stem taken from display {name}: {_excerpt(text)}")
            elif text:
                code = _loinc_code(item.get("code"))
                state.note("dropped", f"display {name}{f' (LOINC {code})' if code else ''}: {_excerpt(text)}")
            continue
        if _is_calculated(item):
            code = _loinc_code(item.get("code"))
            state.calculated.append((name, code))
            state.note("dropped", f"{name}{f' (LOINC {code})' if code else ''} is calculated, not answered "
                       "(the engine computes the total from the scored items; its expression is not used)")
        else:
            state.questions.append(_question(state, item, name))
        if children is not None:
            _walk(state, children, f"{path}.item")


def _is_calculated(item: Mapping[str, Any]) -> bool:
    return item.get("readOnly") is True or any(
        _extension_url(extension) in _CALCULATED_EXTENSIONS for extension in _list(item.get("extension")))


def _question(state: _State, item: Mapping[str, Any], name: str) -> _Question:
    if item.get("repeats") is True:
        raise state.error("allows several answers (repeats = true); a definition item holds one answer", name)
    has_options, has_value_set = "answerOption" in item, "answerValueSet" in item
    if has_options and has_value_set:
        raise state.error("has both answerOption and answerValueSet", name)
    if has_options:
        options = item["answerOption"]
        if not isinstance(options, list):
            raise state.error("answerOption must be a list", name)
        answers = [_option(state, option, f"{name} answerOption[{index}]") for index, option in enumerate(options)]
        set_hint = "answers"
    elif has_value_set:
        answers, set_hint = _value_set_answers(state, item["answerValueSet"], name)
    else:
        hint = " (item.option is STU3; this imports R4)" if "option" in item or "options" in item else ""
        raise state.error(f"has no answers (type {item.get('type')!r}, no answerOption or answerValueSet){hint}; "
                          "a definition item is answered from a list", name)
    if not answers:
        raise state.error("has no answers (its answer list is empty)", name)
    text = _text(item.get("text"))
    code = _loinc_code(item.get("code"), state, name)
    if not text:
        text = _code_display(item.get("code")) or str(item.get("linkId") or name)
        state.note("decided", f"{name} has no text; wrote {_quote(text)}")
    link_id = item.get("linkId") if isinstance(item.get("linkId"), str) else name
    if item.get("enableWhen"):
        state.note("not expressed", f"{name} is shown only under a condition (enableWhen); the definition "
                   "always shows it")
    preselected = any(isinstance(o, dict) and o.get("initialSelected") for o in _list(item.get("answerOption")))
    if "initial" in item or preselected:
        state.note("not expressed", f"{name}: a pre-selected answer is not kept")
    return _Question(name=name, link_id=link_id, text=text, loinc=code, fhir_required=item.get("required") is True,
                     answers=answers, set_hint=set_hint)


def _option(state: _State, option: Any, where: str) -> _Answer:
    if not isinstance(option, dict):
        raise state.error(f"must be an object, got a JSON {_json_type(option)}", where)
    weight = _weight(state, option, where)
    if "valueCoding" in option:
        coding = option["valueCoding"]
        if not isinstance(coding, dict):
            raise state.error("valueCoding must be an object", where)
        if weight is None:
            weight = _weight(state, coding, where)
        return _coded_answer(state, coding, weight, where)
    if "valueString" in option:
        label = _text(option["valueString"])
        if not label:
            raise state.error("valueString is empty", where)
        return _Answer(label=label, loinc=None, weight=weight, integer=None, foreign_code=None)
    if "valueInteger" in option:
        value = option["valueInteger"]
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _LARGEST_VALUE:
            raise state.error(f"valueInteger {value!r} is not an integer within ±{_LARGEST_VALUE}", where)
        return _Answer(label=str(value), loinc=None, weight=weight, integer=value, foreign_code=None)
    kinds = [name for name in option if name.startswith("value")]
    if not kinds:
        raise state.error("answer has no value (valueCoding, valueString or valueInteger)", where)
    raise state.error(f"answer of type {kinds[0]} cannot be imported "
                      "(valueCoding, valueString or valueInteger only)", where)


def _coded_answer(state: _State, coding: Mapping[str, Any], weight: int | None, where: str) -> _Answer:
    code = _text(coding.get("code")) or None
    system = coding.get("system") if isinstance(coding.get("system"), str) else None
    label = _text(coding.get("display")) or (code or "")
    if not label:
        raise state.error("answer has neither display nor code", where)
    loinc = foreign = None
    if code and system == LOINC and _LOINC_ANSWER.fullmatch(code):
        loinc = code
    elif code:
        foreign = f"{system or 'no system'}|{code}"
    return _Answer(label=label, loinc=loinc, weight=weight, integer=None, foreign_code=foreign)


def _weight(state: _State, element: Mapping[str, Any], where: str) -> int | None:
    for extension in _list(element.get("extension")):
        if _extension_url(extension) not in _VALUE_EXTENSIONS:
            continue
        value = next((extension[k] for k in ("valueDecimal", "valueInteger") if k in extension), None)
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise state.error(f"{_extension_name(extension)} has no number", where)
        try:
            whole = value == value.to_integral_value() if isinstance(value, Decimal) else True
        except InvalidOperation:
            whole = False
        if not whole or abs(value) > _LARGEST_VALUE:
            raise state.error(f"{_extension_name(extension)} {value} is not a whole number within "
                              f"±{_LARGEST_VALUE}; definition values are integers", where)
        return int(value)
    return None


def _value_set_answers(state: _State, reference: Any, name: str) -> tuple[list[_Answer], str]:
    if not isinstance(reference, str) or not reference:
        raise state.error("answerValueSet must be a non-empty string", name)
    value_set = _find_value_set(state, reference)
    if value_set is None:
        where = ("no contained resource has that id" if reference.startswith("#")
                 else "it is neither contained nor in this file")
        raise state.error(f"answerValueSet {_quote(reference)} cannot be resolved offline: {where}; add the "
                          "ValueSet to 'contained' or list the answers as answerOption", name)
    if not reference.startswith("#"):
        state.note("decided", f"{name}: answerValueSet {_quote(reference)} is the contained ValueSet "
                   f"{_quote('#' + str(value_set.get('id')))} (same canonical URL)")
    vs_name = f"{name} answerValueSet {_quote(reference)}"
    expansion = value_set.get("expansion")
    if isinstance(expansion, dict) and expansion.get("contains"):
        concepts = [(entry, entry.get("system")) for entry in _flatten(state, expansion["contains"], vs_name)]
    else:
        concepts = _composed(state, value_set.get("compose"), vs_name)
    answers = []
    for index, (concept, system) in enumerate(concepts):
        where = f"{vs_name} concept {index}"
        coding = {"code": concept.get("code"), "display": concept.get("display"), "system": system}
        answers.append(_coded_answer(state, coding, _weight(state, concept, where), where))
    hint = value_set.get("id") if isinstance(value_set.get("id"), str) else "answers"
    return answers, hint


def _find_value_set(state: _State, reference: str) -> Mapping[str, Any] | None:
    contained = [r for r in _list(state.questionnaire.get("contained"))
                 if isinstance(r, dict) and r.get("resourceType") == "ValueSet"]
    if reference.startswith("#"):
        return next((r for r in contained if r.get("id") == reference[1:]), None)
    url, _, version = reference.partition("|")
    for resource in contained:
        if resource.get("url") == url and (not version or resource.get("version") == version):
            return resource
    return None


def _flatten(state: _State, contains: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(contains, list):
        raise state.error("expansion.contains must be a list", where)
    flat = []
    for entry in contains:
        if not isinstance(entry, dict):
            raise state.error("expansion.contains holds a non-object", where)
        if entry.get("abstract") is not True and entry.get("inactive") is not True:
            flat.append(entry)
        if "contains" in entry:
            flat.extend(_flatten(state, entry["contains"], where))
    return flat


def _composed(state: _State, compose: Any, where: str) -> list[tuple[Mapping[str, Any], Any]]:
    concepts = []
    for include in _list(compose.get("include")) if isinstance(compose, dict) else []:
        if (not isinstance(include, dict) or not include.get("concept")
                or include.get("filter") or include.get("valueSet")):
            raise state.error("the ValueSet has no expansion and does not list its concepts (a filter or another "
                              "value set cannot be resolved offline); expand it into the file", where)
        concepts.extend((concept, include.get("system")) for concept in _list(include["concept"])
                        if isinstance(concept, dict))
    if not concepts:
        raise state.error("the ValueSet has neither an expansion nor listed concepts; it cannot be resolved "
                          "offline", where)
    return concepts


def _decide_values(state: _State) -> None:
    """Give every answer its value and decide which items are scored (rules in the docstring)."""
    for question in state.questions:
        weights = [answer.weight for answer in question.answers]
        if all(weight is not None for weight in weights):
            question.values, question.weighted_by = weights, "ordinalValue"
        elif any(weight is not None for weight in weights):
            raise state.error("some answers carry an ordinalValue and some do not; every answer needs one",
                              question.name)
        elif all(answer.integer is not None for answer in question.answers):
            question.values = [answer.integer for answer in question.answers]
            question.weighted_by = "valueInteger"
    weighted = [q for q in state.questions if q.weighted_by]
    if weighted:
        for question in state.questions:
            question.scored = question.weighted_by is not None
        reason = ("its answers carry no ordinalValue/itemWeight while those of items "
                  f"{_numbers(state, weighted)} do")
    else:
        lists = Counter(_answer_list(q) for q in state.questions)
        (common, count), *others = lists.most_common()
        plain = count >= 2 and (not others or others[0][1] < count)
        for question in state.questions:
            question.scored = not plain or _answer_list(question) == common
        reason = f"no item's answers carry values and its answer list differs from that of items " \
                 f"{_numbers(state, [q for q in state.questions if q.scored])}"
        state.note("decided", "no answer carries an ordinalValue/itemWeight: every scored item's answers "
                   "are valued by position (0 first); check this against the publication")
    for number, question in enumerate(state.questions, start=1):
        if question.values is None:
            question.values = list(range(len(question.answers)))
        if question.scored:
            _check_consecutive(state, question)
            if not question.fhir_required:
                state.note("decided", f"item {number} ({_describe(question)}) is not required in FHIR but carries "
                           "scores: written scored and required; a blank answer is handled by the "
                           "missing-item rule")
        else:
            question.comment = "unscored: " + reason
            extra = "; FHIR marks it required, but an unscored item never counts as missing" \
                if question.fhir_required else ""
            state.note("decided", f"item {number} ({_describe(question)}) is unscored and "
                       f"not required: {reason}{extra}")


def _check_consecutive(state: _State, question: _Question) -> None:
    values = question.values or []
    if sorted(values) != list(range(min(values), max(values) + 1)):
        shown = ", ".join(str(v) for v in values)
        raise state.error(f"answer values {shown} are not each whole number from {min(values)} to "
                          f"{max(values)} exactly once; a definition cannot hold them", question.name)


def _answer_list(question: _Question) -> tuple[tuple[str, str | None], ...]:
    return tuple((answer.label, answer.loinc) for answer in question.answers)


def _numbers(state: _State, questions: Sequence[_Question]) -> str:
    numbers = [state.questions.index(q) + 1 for q in questions]
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)


def _describe(question: _Question) -> str:
    return f"linkId {_quote(question.link_id)}" + (f", LOINC {question.loinc}" if question.loinc else "")


def _option_sets(state: _State) -> tuple[dict[str, Any], list[str]]:
    sets: dict[str, Any] = {}
    by_content: dict[tuple[Any, ...], str] = {}
    set_of = []
    foreign_reported = False
    for question in state.questions:
        values = question.values or []
        content = tuple((v, a.label, a.loinc) for v, a in zip(values, question.answers))
        if content not in by_content:
            name = _set_name(question.set_hint, sets)
            by_content[content] = name
            options = []
            for value, answer in zip(values, question.answers):
                option: dict[str, Any] = {"value": value, "label": answer.label}
                if answer.loinc:
                    option["loinc"] = answer.loinc
                options.append(option)
            sets[name] = {"min": min(values), "max": max(values), "options": options}
        set_of.append(by_content[content])
        foreign = [a.foreign_code for a in question.answers if a.foreign_code]
        if foreign and not foreign_reported:
            foreign_reported = True
            state.note("not expressed", f"answer codes outside LOINC's LA codes (e.g. {foreign[0]}, "
                       f"{question.name}) "
                       "are not kept: a definition holds LOINC answer codes only")
    return sets, set_of


def _set_name(hint: str, taken: Mapping[str, Any]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_") or "answers"
    if not base[0].isalpha():
        base = f"set_{base}"
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name


def _loinc_code(codes: Any, state: _State | None = None, name: str = "") -> str | None:
    """The first LOINC code among FHIR codings, if it is well formed (a bad one is reported)."""
    for coding in _list(codes):
        if not isinstance(coding, dict):
            continue
        if coding.get("system") == LOINC and isinstance(coding.get("code"), str):
            code = coding["code"]
            if _LOINC.fullmatch(code) and _loinc_check_digit_ok(code):
                return code
            if state is not None:
                state.note("dropped", f"{name}: LOINC code {_quote(code)} is malformed or fails its check digit")
    return None


def _code_display(codes: Any) -> str:
    displays = (_text(coding.get("display")) for coding in _list(codes) if isinstance(coding, dict))
    return next((display for display in displays if display), "")


def _loinc_table(state: _State) -> dict[str, str]:
    table = {}
    panel = _loinc_code(state.questionnaire.get("code"))
    if panel:
        table["panel"] = panel
    coded = [(name, code) for name, code in state.calculated if code]
    if len(coded) == 1:
        table["total"] = coded[0][1]
        state.note("decided", f"loinc.total = {coded[0][1]}, the code of the calculated {coded[0][0]}")
    return table


def _version(state: _State) -> str:
    version = _text(state.questionnaire.get("version"))
    if version:
        return version
    state.note("decided", "version: the Questionnaire has none; wrote '1.0'")
    return "1.0"


def _citation(questionnaire: Mapping[str, Any], source: str) -> str:
    parts = [_text(questionnaire.get("publisher")), "FHIR R4 Questionnaire",
             _text(questionnaire.get("url")) or _text(questionnaire.get("id")),
             f"version {questionnaire['version']}" if _text(questionnaire.get("version")) else "",
             f"(file {source})"]
    return " ".join(part for part in parts if part)


def _licence(state: _State) -> str:
    copyright_text = _text(state.questionnaire.get("copyright"))
    if copyright_text:
        return copyright_text
    state.note("not expressed", "licence: the Questionnaire states no copyright; "
               "wrote 'Not stated in the FHIR Questionnaire' - check it")
    return "Not stated in the FHIR Questionnaire; check before use."


def _stem(state: _State) -> str:
    if state.stem:
        return state.stem
    state.note("not expressed", f"stem: no display text before the first question; wrote {_quote(GENERIC_STEM)} - "
               "replace it with the instrument's own")
    return GENERIC_STEM


def _time_frame(state: _State) -> str:
    match = _TIME_FRAME.search(state.stem or "")
    if match:
        return match.group(0).lower()
    state.note("not expressed", f"time_frame: none found in the stem; wrote {_quote(NO_TIME_FRAME)}")
    return NO_TIME_FRAME


def _local_policies(state: _State, source: str) -> list[str]:
    policies = [
        f"Imported from the FHIR R4 Questionnaire {source} by python -m instruments import-fhir; "
        "not yet checked against the publication (validated = false until it is).",
        "Answer values are each answer's FHIR ordinalValue (or itemWeight, or the integer of an integer "
        "answer); where FHIR gives none, the answer's position, 0 first.",
        "Missing items: not scorable when any scored item is missing (the importer's conservative default, "
        "not a published rule).",
    ]
    if any(not q.scored for q in state.questions):
        policies.append("Items whose answers carry no values while other items' do are unscored and not required.")
    return policies


def _not_expressed(state: _State) -> None:
    for point in (
        "bands: a Questionnaire holds none (bands in display text are not read); add [[bands]] and bands_source",
        "flags (e.g. a risk item above 0): add [[flags]]",
        "cut-point: add [cutpoint] if the instrument has one",
        "change thresholds (response, remission ...): add [[change]]",
        "missing-item rule: wrote none_allowed (not scorable when any scored item is missing); "
        "replace [missing] with the published rule",
        "subscales and diagnosis rules: add them if the instrument has any",
        "citations: only the FHIR source is cited; add the instrument's publication",
        "validated: written false; set true once the items are checked against the publication",
    ):
        state.note("not expressed", point)


def _header(definition: Mapping[str, Any], source: str, notes: Sequence[Note]) -> list[str]:
    return [
        f"{definition['title']}: imported from the FHIR R4 Questionnaire {source}",
        "by `python -m instruments import-fhir`, for a person to review before use.",
        "It loads as it stands; scoring that FHIR does not express is left for the reviewer:",
        *(f"- {note}" for note in notes),
    ]


# --------------------------------------------------------------------------- small helpers


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _extension_url(extension: Any) -> Any:
    return extension.get("url") if isinstance(extension, dict) else None


def _extension_name(extension: Mapping[str, Any]) -> str:
    return str(extension.get("url", "")).rsplit("/", 1)[-1]


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number")


def _excerpt(text: str, length: int = 70) -> str:
    flat = " ".join(text.split())
    return _quote(flat if len(flat) <= length else flat[:length - 3].rstrip() + "...")


def _quote(text: Any) -> str:
    return repr(str(text))  # one line: control characters come out escaped


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", text)


# --------------------------------------------------------------------------- writing TOML
# tomli-w writes the data (quoting, escapes, arrays, tables). What TOML data cannot hold is added
# here: the header and a comment above a table (the FHIR linkId of each item, the defaults a
# reviewer must replace), each table written by tomli-w on its own below its comment.

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INDENT = 2  # as in the shipped definitions


def dumps(data: Mapping[str, Any], *, header: Sequence[str] = (),
          comments: Mapping[str, str] | None = None) -> str:
    """Write a document with ``header`` as comment lines at its top.

    ``comments`` maps a top-level table (``"missing"``) or one entry of a top-level array of
    tables (``"items[2]"``) to a comment written above its header; a commented table holds no
    tables of its own. Read back with ``tomllib``, the text gives ``data`` again.
    """
    comments = comments or {}
    commented = {path.split("[", 1)[0] for path in comments}
    chunks = ["".join(_comment(line) + "\n" for line in header),
              tomli_w.dumps({k: v for k, v in data.items() if k not in commented}, indent=_INDENT)]
    for key, value in data.items():
        if key not in commented:
            continue
        entries = [(f"{key}[{index}]", entry) for index, entry in enumerate(value)] \
            if isinstance(value, (list, tuple)) else [(key, value)]
        for path, table in entries:
            if not (_BARE_KEY.fullmatch(key) and isinstance(table, Mapping)
                    and not any(_holds_table(v) for v in table.values())):
                raise ValueError(f"{path}: a comment goes only above a table of values")
            chunks.append((_comment(comments[path]) + "\n" if path in comments else "")
                          + (f"[{key}]\n" if path == key else f"[[{key}]]\n")
                          + tomli_w.dumps(table, indent=_INDENT))
    return "\n".join(chunk for chunk in chunks if chunk).rstrip("\n") + "\n"


def _holds_table(value: Any) -> bool:
    return isinstance(value, Mapping) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value))


def _comment(text: str) -> str:
    # A comment may hold no control character but tab.
    return ("# " + re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", text)).rstrip()
