"""Outcomes questionnaire instruments: definitions as data, scored exactly as published.

Pure Python with no web framework, so the web app, exports and command line share it::

    import instruments
    instruments.score("phq9", [0, 0, 0, 0, 0, 0, 0, 0, 1]).flags   # {'suicide_risk': 'positive'}
    instruments.change("phq9", 20, 10).fields                     # {'response': True, ...}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from .catalog import all_instruments, all_measures, definitions_dir, get_instrument
from .change import Change, change_between
from .definition import load_definition
from .errors import DefinitionError, InstrumentError, InvalidAnswers, InvalidScore, UnknownInstrument
from .model import (Band, ChangeThreshold, DiagnosisRule, Display, FlagRule, Instrument, Item,
                    Measure, MissingPolicy, Option, Subscale)
from .rules import FLAG_RULES
from .scoring import Score, TriggeredFlag, normalise_answers, score_answers

__all__ = [
    "Band", "Change", "ChangeThreshold", "DefinitionError", "DiagnosisRule", "Display", "FlagRule",
    "Instrument", "InstrumentError", "InvalidAnswers", "InvalidScore", "Item", "Measure",
    "MissingPolicy", "Option", "Score", "Subscale", "TriggeredFlag", "UnknownInstrument",
    "all", "change", "crisis_items", "flag_evidence", "get", "headline_measures",
    "load_definition", "measures", "score",
]


def get(key: str) -> Instrument:
    """The instrument with this key (e.g. ``"phq9"``); raise UnknownInstrument otherwise."""
    return get_instrument(key)


def all() -> list[Instrument]:  # noqa: A001 - the public name the app codes against
    """Every shipped instrument, sorted by key."""
    return all_instruments()


def measures() -> list[Measure]:
    """Every measure whose definitions declare a ``[display]``, in its order: name, key,
    order, colour and whether it is a headline measure. Charts draw them in this order and
    colour, before any other measure."""
    return all_measures()


def headline_measures() -> list[Measure]:
    """The headline measures, in order: the ones that head the dashboard, the outcomes page
    and the charts (``[display] headline = true``)."""
    return [measure for measure in all_measures() if measure.headline]


def score(key: str, answers: Sequence[int | None] | Mapping[str, int | None]) -> Score:
    """Score answers for an instrument.

    ``answers`` are in item order with None for a missing answer (PHQ-9 takes 9, or 10 with
    item 10 last), or a mapping of item id to answer. Raises UnknownInstrument or
    InvalidAnswers; never returns a number for bad input.
    """
    return score_answers(get_instrument(key), answers)


def crisis_items(key: str) -> tuple[int, ...]:
    """Numbers of the items whose being left blank raises a crisis flag on its own (PHQ-9
    item 9: risk unknown). Found by scoring, so it follows whatever rules the definition
    uses."""
    return _crisis_items(definitions_dir(), key)


@lru_cache(maxsize=None)
def _crisis_items(folder: Path, key: str) -> tuple[int, ...]:
    # By folder as well as key: the definitions served are those of the folder at the time.
    instrument = get_instrument(key)
    found = []
    for item in instrument.items:
        answers = [None if other is item else other.min_value for other in instrument.items]
        if any(flag.crisis for flag in score_answers(instrument, answers).alerts):
            found.append(item.number)
    return tuple(found)


def flag_evidence(key: str, flag_key: str,
                  answers: Sequence[int | None] | Mapping[str, int | None]) -> dict[str, int | None]:
    """The answers that raise one flag, by item number (as text) with None for a blank: the
    items its rule finds at or above the threshold or unanswered (PHQ-9 item 9 answered 2:
    ``{"9": 2}``). Raises UnknownInstrument, InvalidAnswers, or KeyError for an unknown flag."""
    instrument = get_instrument(key)
    rules = {rule.key: rule for rule in instrument.flags}
    if flag_key not in rules:
        raise KeyError(f"{key} has no flag {flag_key!r}")
    rule = rules[flag_key]
    normalised = normalise_answers(instrument, answers)
    by_id = {item.id: answer for item, answer in zip(instrument.items, normalised)}
    numbers = {item.id: item.number for item in instrument.items}
    return {str(numbers[item_id]): by_id[item_id]
            for item_id in FLAG_RULES[rule.rule].raising_items(rule.params, by_id)}


def change(key: str, baseline: int, current: int) -> Change:
    """The change from a baseline total to a current total, with the definition's judgements.

    Raises UnknownInstrument, or InvalidScore when a total is outside the instrument's range.
    """
    return change_between(get_instrument(key), baseline, current)

