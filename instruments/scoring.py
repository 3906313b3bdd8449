"""Score one administration: check the answers, then apply the definition's rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidAnswers
from .model import FlagValue, Instrument, Item, to_plain
from .rules import DIAGNOSIS_RULES, FLAG_RULES, MISSING_RULES

Answer = int | None


@dataclass(frozen=True)
class TriggeredFlag:
    """A flag whose value must raise a clinician alert."""

    key: str
    value: FlagValue
    crisis: bool
    reason: str


@dataclass(frozen=True)
class Score:
    """The result of scoring one set of answers; totals are None where not scorable."""

    instrument: str
    version: str
    scorable: bool
    total: int | None
    prorated: bool
    band: str | None
    band_label: str | None
    subscales: dict[str, int | None]
    above_cutpoint: bool | None
    provisional_diagnosis: bool | None
    flags: dict[str, FlagValue]
    missing_items: list[int]
    answers: tuple[Answer, ...]
    triggered: tuple[TriggeredFlag, ...] = ()

    @property
    def alerts(self) -> list[TriggeredFlag]:
        """The flags whose value the definition says must alert a clinician."""
        return list(self.triggered)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (what ``python -m instruments score`` prints)."""
        data = to_plain(self)
        data["alerts"] = data.pop("triggered")
        return data


def score_answers(instrument: Instrument, answers: Sequence[Answer] | Mapping[str, Answer]) -> Score:
    """Score answers (in item order, or a mapping of item id to answer) for an instrument.

    Raises InvalidAnswers for a wrong number of answers, an unknown item id, a value that is
    not an integer or is not one of the item's options. Flags are computed even when the
    total is not scorable.
    """
    normalised = normalise_answers(instrument, answers)
    by_id = {item.id: answer for item, answer in zip(instrument.items, normalised)}
    scored_values = [answer for item, answer in zip(instrument.items, normalised) if item.scored]
    policy = instrument.missing
    total, prorated = MISSING_RULES[policy.rule].total(policy.params, scored_values)
    scorable = total is not None
    band = instrument.band_for(total) if total is not None else None
    cutpoint = instrument.cutpoint
    flags = {rule.key: FLAG_RULES[rule.rule].evaluate(rule.params, by_id) for rule in instrument.flags}
    return Score(
        instrument=instrument.key,
        version=instrument.version,
        scorable=scorable,
        total=total,
        prorated=prorated,
        band=band.key if band else None,
        band_label=band.label if band else None,
        subscales=_subscales(instrument, by_id, scorable),
        above_cutpoint=total >= cutpoint if total is not None and cutpoint is not None else None,
        provisional_diagnosis=_diagnosis(instrument, by_id) if scorable else None,
        flags=flags,
        missing_items=[item.number for item, answer in zip(instrument.items, normalised)
                       if answer is None and item.required],
        answers=normalised,
        triggered=tuple(TriggeredFlag(rule.key, flags[rule.key], rule.crisis, rule.alert_reason)
                        for rule in instrument.flags if rule.alerts_on(flags[rule.key])),
    )


def _subscales(instrument: Instrument, by_id: Mapping[str, Answer], scorable: bool) -> dict[str, int | None]:
    result: dict[str, int | None] = {}
    for subscale in instrument.subscales:
        answered = [answer for item_id in subscale.items if (answer := by_id[item_id]) is not None]
        complete = scorable and len(answered) == len(subscale.items)
        result[subscale.key] = sum(answered) if complete else None
    return result


def _diagnosis(instrument: Instrument, by_id: Mapping[str, Answer]) -> bool | None:
    rule = instrument.diagnosis
    if rule is None:
        return None
    return DIAGNOSIS_RULES[rule.rule].evaluate(rule.params, by_id, instrument)


def normalise_answers(instrument: Instrument,
                      answers: Sequence[Answer] | Mapping[str, Answer]) -> tuple[Answer, ...]:
    """Check answers and return one per item, in item order (None where missing).

    A sequence may leave out trailing items that are not required (PHQ-9 item 10); a mapping
    is keyed by item id and may leave out any item.
    """
    if isinstance(answers, Mapping):
        answers = _from_mapping(instrument, answers)
    elif isinstance(answers, (str, bytes)) or not isinstance(answers, Sequence):
        raise InvalidAnswers(f"{instrument.key}: answers must be a list of integers or None, "
                             f"got {type(answers).__name__}")
    counts = instrument.answer_counts
    if len(answers) not in counts:
        raise InvalidAnswers(f"{instrument.key}: expected {_counts_text(counts)} answers, got {len(answers)}")
    padded = list(answers) + [None] * (len(instrument.items) - len(answers))
    return tuple(_checked(instrument, item, answer) for item, answer in zip(instrument.items, padded))


def _from_mapping(instrument: Instrument, answers: Mapping[str, Answer]) -> list[Answer]:
    known = {item.id for item in instrument.items}
    for item_id in answers:
        if item_id not in known:
            raise InvalidAnswers(f"{instrument.key}: unknown item {item_id!r}")
    return [answers.get(item.id) for item in instrument.items]


def _checked(instrument: Instrument, item: Item, answer: Any) -> Answer:
    if answer is None:
        return None
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise InvalidAnswers(f"{instrument.key}: item {item.number} answer {answer!r} is not an integer")
    if answer not in {option.value for option in item.options}:
        raise InvalidAnswers(f"{instrument.key}: item {item.number} answer {answer} "
                             f"is outside {item.min_value}-{item.max_value}")
    return answer


def _counts_text(counts: tuple[int, ...]) -> str:
    if len(counts) == 1:
        return str(counts[0])
    return ", ".join(str(count) for count in counts[:-1]) + f" or {counts[-1]}"
