"""Change between two administrations of one instrument."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import InvalidScore
from .model import Instrument
from .rules import CHANGE_RULES


@dataclass(frozen=True)
class Change:
    """Points and percent change from baseline, and the definition's change judgements."""

    instrument: str
    baseline: int
    current: int
    change: int
    percent_change: float | None
    fields: dict[str, bool | None]

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready data: the change fields sit beside the numbers."""
        data: dict[str, Any] = {
            "instrument": self.instrument,
            "baseline": self.baseline,
            "current": self.current,
            "change": self.change,
            "percent_change": self.percent_change,
        }
        data.update(self.fields)
        return data


def change_between(instrument: Instrument, baseline: int, current: int) -> Change:
    """Compare two totals; raise InvalidScore when either is not a possible total."""
    for name, value in (("baseline", baseline), ("current", current)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidScore(f"{instrument.key}: {name} {value!r} is not an integer")
        if not instrument.total_min <= value <= instrument.total_max:
            raise InvalidScore(f"{instrument.key}: {name} {value} is outside "
                               f"{instrument.total_min}-{instrument.total_max}")
    return Change(
        instrument=instrument.key,
        baseline=baseline,
        current=current,
        change=current - baseline,
        percent_change=percent_change(baseline, current),
        fields={threshold.key: CHANGE_RULES[threshold.rule].evaluate(threshold.params, baseline, current)
                for threshold in instrument.change_thresholds},
    )


def percent_change(baseline: int, current: int) -> float | None:
    """(current − baseline) / baseline × 100 to one decimal, halves away from zero; None at 0."""
    if baseline == 0:
        return None
    # Decimal division avoids binary-float ties such as -6.25 rounding to -6.2.
    exact = Decimal(current - baseline) * 100 / Decimal(baseline)
    return float(exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
