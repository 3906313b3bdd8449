"""The immutable shape of an instrument definition, as loaded from its data file."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# A flag's value: a name such as "positive" or "unknown", or a plain true/false.
FlagValue = str | bool


@dataclass(frozen=True)
class Option:
    """One response option of an item: the stored value and what the patient reads."""

    value: int
    label: str
    loinc: str | None


@dataclass(frozen=True)
class Item:
    """One question, with its own response options."""

    id: str
    number: int
    text: str
    loinc: str | None
    scored: bool
    required: bool
    options: tuple[Option, ...]
    option_set: str

    @property
    def min_value(self) -> int:
        """The lowest option value of this item."""
        return min(option.value for option in self.options)

    @property
    def max_value(self) -> int:
        """The highest option value of this item."""
        return max(option.value for option in self.options)


@dataclass(frozen=True)
class Band:
    """A named range of totals, inclusive at both ends."""

    key: str
    label: str
    min: int
    max: int


@dataclass(frozen=True)
class Subscale:
    """A named sum of some items, e.g. a PCL-5 DSM-5 cluster."""

    key: str
    label: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class RuleUse:
    """A registered rule as a definition uses it: its name, its parameters and their source."""

    rule: str
    params: Mapping[str, Any]
    source: str


class MissingPolicy(RuleUse):
    """How missing answers affect the total."""


class DiagnosisRule(RuleUse):
    """How a provisional diagnosis is decided from the answers."""


@dataclass(frozen=True)
class FlagRule(RuleUse):
    """A flag computed from the answers, and what the app must do when it is raised."""

    key: str
    alert_values: tuple[FlagValue, ...]
    crisis: bool
    alert_reason: str

    def alerts_on(self, value: object) -> bool:
        """True when the flag's value is one the definition says must alert a clinician."""
        # Types must match as well: True and 1 compare equal in Python.
        return any(type(value) is type(alert) and value == alert for alert in self.alert_values)


#: What a met change threshold says about the patient: better, worse, or neither.
CHANGE_SIGNALS = ("improvement", "worsening", "status")


@dataclass(frozen=True)
class ChangeThreshold(RuleUse):
    """A named yes/no judgement about the change between two totals."""

    key: str
    #: How people read it, e.g. "Response".
    label: str
    #: One of CHANGE_SIGNALS.
    signals: str
    #: When not empty, a new total that meets the threshold against the baseline raises a
    #: clinician alert with this reason.
    alert_reason: str


@dataclass(frozen=True)
class Display:
    """How the app shows a measure: display policy of this project, not a clinical source."""

    #: Where the measure stands among the measures (1 first): the dashboard's columns, the
    #: outcomes page's sections and the charts follow it.
    order: int
    #: The measure's colour on every chart, "#rrggbb" in lower case.
    colour: str
    #: A headline measure heads the dashboard (a column, a sort, the improving filters) and
    #: the outcomes page (weekly means and course rates) as well as the charts.
    headline: bool


@dataclass(frozen=True)
class Measure:
    """A measure the app shows, as the definitions that share it declare it."""

    #: The measure's name, e.g. "PCL-5".
    name: str
    #: The first, in sorted order, of the keys of its definitions (pcl5 for PCL-5's pcl5 and
    #: pcl5-weekly): the measure's key in addresses and in change judgements.
    key: str
    order: int
    colour: str
    headline: bool


@dataclass(frozen=True)
class Instrument:
    """A questionnaire: its texts, items and every rule used to score it."""

    key: str
    version: str
    title: str
    short_title: str
    #: What the totals measure; versions sharing items and scoring share it (e.g. "PCL-5").
    measure: str
    citations: tuple[str, ...]
    licence: str
    instructions: str
    stem: str
    time_frame: str
    validated: bool
    items: tuple[Item, ...]
    total_min: int
    total_max: int
    subscales: tuple[Subscale, ...]
    bands: tuple[Band, ...]
    bands_source: str | None
    cutpoint: int | None
    cutpoint_source: str | None
    loinc_panel: str | None
    loinc_total: str | None
    missing: MissingPolicy
    diagnosis: DiagnosisRule | None
    flags: tuple[FlagRule, ...]
    change_thresholds: tuple[ChangeThreshold, ...]
    local_policies: tuple[str, ...]
    #: How the app shows the measure; None for a measure it charts in the common colour
    #: after the others and leaves off the dashboard and the outcomes page.
    display: Display | None

    @property
    def scored_items(self) -> tuple[Item, ...]:
        """The items that count towards the total, in item order."""
        return tuple(item for item in self.items if item.scored)

    @property
    def answer_counts(self) -> tuple[int, ...]:
        """How many answers may be given: all items, or all but trailing optional items."""
        counts = [len(self.items)]
        for item in reversed(self.items):
            if item.required:
                break
            counts.append(item.number - 1)
        return tuple(sorted(counts))

    def band_for(self, total: int) -> Band | None:
        """The band holding this total, or None when the instrument has no bands."""
        return next((band for band in self.bands if band.min <= total <= band.max), None)

    def to_dict(self) -> dict[str, Any]:
        """The whole definition as plain JSON-ready data."""
        return to_plain(self)


def to_plain(value: Any) -> Any:
    """Turn dataclasses, read-only mappings and tuples into dicts and lists for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_plain(item) for item in value]
    return value


def freeze(value: Any) -> Any:
    """Make rule parameters read-only: loaded definitions are shared by every caller."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value
