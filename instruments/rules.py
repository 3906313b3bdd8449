"""General scoring rules, registered by name and chosen by each definition file.

A definition names a rule (``rule = "prorate_mean"``) and gives its parameters next to it.
Each rule parses and checks its own parameters when the file is loaded, so a bad parameter
fails at load with the file and field named, and evaluates them when answers are scored.
No rule knows which instrument it serves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Generic, Protocol, TypeVar

from .model import FlagValue, Instrument, Item, Subscale
from .reader import Table

Answers = Mapping[str, int | None]
Params = Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    """What rules may check their parameters against while a definition loads."""

    items: Mapping[str, Item]
    subscales: Mapping[str, Subscale]
    total_min: int
    total_max: int
    cutpoint: int | None

    @property
    def scored_count(self) -> int:
        """How many items count towards the total."""
        return sum(1 for item in self.items.values() if item.scored)


class Strategy(Protocol):
    """Any rule: reads and checks its own parameters from the definition."""

    def parse(self, table: Table, context: Context) -> dict[str, Any]: ...


class MissingStrategy(Strategy, Protocol):
    """Decides the total from the scored items' answers, some of which may be missing."""

    def total(self, params: Params, values: Sequence[int | None]) -> tuple[int | None, bool]: ...


class FlagStrategy(Strategy, Protocol):
    """Computes one flag from the answers, whether or not the total is scorable."""

    def outcomes(self, params: Params) -> tuple[FlagValue, ...]: ...

    def evaluate(self, params: Params, answers: Answers) -> FlagValue: ...

    def raising_items(self, params: Params, answers: Answers) -> tuple[str, ...]: ...


class DiagnosisStrategy(Strategy, Protocol):
    """Decides a provisional diagnosis; None when missing answers leave it open."""

    def evaluate(self, params: Params, answers: Answers, instrument: Instrument) -> bool | None: ...


class ChangeStrategy(Strategy, Protocol):
    """Judges the change from a baseline total to a current total; None when undefined."""

    def evaluate(self, params: Params, baseline: int, current: int) -> bool | None: ...


S = TypeVar("S", bound=Strategy)


class Registry(Generic[S]):
    """Rules of one kind, found by the name a definition gives."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._rules: dict[str, S] = {}

    def register(self, name: str, rule: S) -> S:
        """Make ``rule`` available to definitions under ``name``."""
        self._rules[name] = rule
        return rule

    def __getitem__(self, name: str) -> S:
        return self._rules[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._rules)

    def parse(self, table: Table, context: Context) -> tuple[str, dict[str, Any]]:
        """Read ``rule`` from the table and let that rule read and check its parameters."""
        name = table.text("rule")
        if name not in self._rules:
            known = ", ".join(self.names())
            raise table.error(f"unknown {self.kind} rule '{name}' (known: {known})", "rule")
        return name, self._rules[name].parse(table, context)


MISSING_RULES: Registry[MissingStrategy] = Registry("missing-answer")
FLAG_RULES: Registry[FlagStrategy] = Registry("flag")
DIAGNOSIS_RULES: Registry[DiagnosisStrategy] = Registry("diagnosis")
CHANGE_RULES: Registry[ChangeStrategy] = Registry("change")


# --- missing answers ---------------------------------------------------------------------

def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


ROUNDINGS: dict[str, Callable[[Fraction], int]] = {"half_up": _round_half_up}


class NoneAllowed:
    """Any missing scored item makes the total not scorable."""

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """No parameters."""
        return {}

    def total(self, params: Params, values: Sequence[int | None]) -> tuple[int | None, bool]:
        """The plain sum, or None when an answer is missing; never prorated."""
        answered = [value for value in values if value is not None]
        if len(answered) < len(values):
            return None, False
        return sum(answered), False


class ProrateMean:
    """Up to ``max_missing`` missing items are replaced by the mean of the answered ones.

    Total = sum × number of scored items / number answered, rounded by ``rounding``; more
    missing items than ``max_missing`` make the total not scorable.
    """

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``max_missing`` (fewer than the scored items) and ``rounding``."""
        max_missing = table.integer("max_missing", low=1, high=context.scored_count - 1)
        rounding = table.text("rounding")
        if rounding not in ROUNDINGS:
            raise table.error(f"unknown rounding '{rounding}' (known: {', '.join(sorted(ROUNDINGS))})",
                              "rounding")
        return {"max_missing": max_missing, "rounding": rounding}

    def total(self, params: Params, values: Sequence[int | None]) -> tuple[int | None, bool]:
        """The sum, the prorated sum (with True), or None when too many are missing."""
        answered = [value for value in values if value is not None]
        missing = len(values) - len(answered)
        if missing > params["max_missing"]:
            return None, False
        if missing == 0:
            return sum(answered), False
        exact = Fraction(sum(answered) * len(values), len(answered))
        return ROUNDINGS[params["rounding"]](exact), True


MISSING_RULES.register("none_allowed", NoneAllowed())
MISSING_RULES.register("prorate_mean", ProrateMean())


# --- flags -------------------------------------------------------------------------------

def _flag_values(table: Table) -> dict[str, FlagValue]:
    values = table.table("values")
    result = {}
    for name in ("met", "not_met", "undetermined"):
        value = values.value(name, object)
        if not isinstance(value, (str, bool)):
            raise values.error("must be a string or true/false", name)
        result[name] = value
    values.finish()
    if result["met"] == result["not_met"]:
        raise values.error("'met' and 'not_met' must differ")
    if result["undetermined"] == result["not_met"]:
        # A missing answer that could have raised the flag must never read as negative.
        raise values.error("'undetermined' must differ from 'not_met': a missing answer is not negative")
    return result


def _item_ref(table: Table, field: str, context: Context) -> str:
    item_id = table.text(field)
    if item_id not in context.items:
        raise table.error(f"unknown item '{item_id}'", field)
    return item_id


def _item_refs(table: Table, field: str, context: Context) -> tuple[str, ...]:
    """A list of item ids, or "all" for every item."""
    if table.has(field) and table.value(field, object) == "all":
        return tuple(context.items)
    ids = table.texts(field, may_be_empty=False)
    for index, item_id in enumerate(ids):
        if item_id not in context.items:
            raise table.error(f"unknown item '{item_id}'", f"{field}[{index}]")
        if item_id in ids[:index]:
            raise table.error(f"item '{item_id}' listed twice", f"{field}[{index}]")
    return ids


def _threshold(table: Table, field: str, context: Context, item_ids: Iterable[str]) -> int:
    """An answer threshold that each named item can both reach and fall short of."""
    items = [context.items[item_id] for item_id in item_ids]
    low = max(item.min_value for item in items) + 1
    high = min(item.max_value for item in items)
    return table.integer(field, low=low, high=high)


def _any_at_least(conditions: Iterable[tuple[Sequence[str], int]], values: Params,
                  answers: Answers) -> FlagValue:
    """Met when any named item reaches its threshold; undetermined when a missing item might."""
    undetermined = False
    for item_ids, at_least in conditions:
        for item_id in item_ids:
            answer = answers[item_id]
            if answer is None:
                undetermined = True
            elif answer >= at_least:
                return values["met"]
    return values["undetermined"] if undetermined else values["not_met"]


def _at_least_or_missing(conditions: Iterable[tuple[Sequence[str], int]],
                         answers: Answers) -> tuple[str, ...]:
    """The named items that reach their threshold or have no answer, each once, in order."""
    found: list[str] = []
    for item_ids, at_least in conditions:
        found += [item_id for item_id in item_ids if item_id not in found
                  and (answers[item_id] is None or answers[item_id] >= at_least)]
    return tuple(found)


class ItemThreshold:
    """One item at or above ``at_least`` raises the flag; that item missing is undetermined."""

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``item``, ``at_least`` and ``values`` (met, not_met, undetermined)."""
        item_id = _item_ref(table, "item", context)
        return {"item": item_id, "at_least": _threshold(table, "at_least", context, [item_id]),
                "values": _flag_values(table)}

    def outcomes(self, params: Params) -> tuple[FlagValue, ...]:
        """The values this flag can take."""
        return tuple(params["values"].values())

    def evaluate(self, params: Params, answers: Answers) -> FlagValue:
        """The flag's value for these answers."""
        return _any_at_least(self._conditions(params), params["values"], answers)

    def raising_items(self, params: Params, answers: Answers) -> tuple[str, ...]:
        """The items whose answers raise the flag: at or above the threshold, or missing."""
        return _at_least_or_missing(self._conditions(params), answers)

    def _conditions(self, params: Params) -> list[tuple[Sequence[str], int]]:
        return [((params["item"],), params["at_least"])]


class AnyItemAtLeast(ItemThreshold):
    """Any of several conditions (items at or above a threshold) raises the flag.

    A missing item named by any condition makes the flag undetermined unless another
    answered item already raised it.
    """

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``conditions`` (each ``items`` list or "all", and ``at_least``) and ``values``."""
        conditions = []
        for condition in table.tables("conditions"):
            item_ids = _item_refs(condition, "items", context)
            conditions.append({"items": item_ids,
                               "at_least": _threshold(condition, "at_least", context, item_ids)})
            condition.finish()
        if not conditions:
            raise table.error("must list at least one condition", "conditions")
        return {"conditions": conditions, "values": _flag_values(table)}

    def _conditions(self, params: Params) -> list[tuple[Sequence[str], int]]:
        return [(condition["items"], condition["at_least"]) for condition in params["conditions"]]


FLAG_RULES.register("item_threshold", ItemThreshold())
FLAG_RULES.register("any_item_at_least", AnyItemAtLeast())


# --- diagnosis ---------------------------------------------------------------------------

class ClusterCounts:
    """Met when each named subscale has at least its minimum of endorsed items.

    An item is endorsed when answered at ``endorsed_at_least`` or above.
    """

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``minimum`` (subscale key → count) and ``endorsed_at_least``."""
        minimum_table = table.table("minimum")
        minimum = {}
        for key in list(minimum_table.keys()):
            if key not in context.subscales:
                raise minimum_table.error(f"unknown subscale '{key}'", key)
            minimum[key] = minimum_table.integer(key, low=0, high=len(context.subscales[key].items))
        if not minimum:
            raise minimum_table.error("must name at least one subscale")
        item_ids = [item_id for key in minimum for item_id in context.subscales[key].items]
        return {"endorsed_at_least": _threshold(table, "endorsed_at_least", context, item_ids),
                "minimum": minimum}

    def evaluate(self, params: Params, answers: Answers, instrument: Instrument) -> bool | None:
        """True, False, or None when missing answers could still decide it."""
        subscales = {subscale.key: subscale for subscale in instrument.subscales}
        undetermined = False
        for key, needed in params["minimum"].items():
            given = [answers[item_id] for item_id in subscales[key].items]
            endorsed = sum(1 for answer in given if answer is not None and answer >= params["endorsed_at_least"])
            if endorsed >= needed:
                continue
            if endorsed + given.count(None) < needed:
                return False
            undetermined = True
        return None if undetermined else True


DIAGNOSIS_RULES.register("cluster_counts", ClusterCounts())


# --- change between two totals -----------------------------------------------------------

class PercentFallAtLeast:
    """The total fell by at least ``percent`` % of the baseline (exactly that much counts)."""

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``percent`` (1-100)."""
        return {"percent": table.integer("percent", low=1, high=100)}

    def evaluate(self, params: Params, baseline: int, current: int) -> bool | None:
        """None when the baseline is 0: no percentage of nothing."""
        if baseline == 0:
            return None
        # Integer arithmetic: exactly 50 % must count, with no float rounding in the way.
        return (baseline - current) * 100 >= params["percent"] * baseline


class PointsAtLeast:
    """The total moved by at least ``points`` in one direction (fall or rise)."""

    def __init__(self, direction: int) -> None:
        self.direction = direction

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``points`` (1 up to the width of the total range)."""
        return {"points": table.integer("points", low=1, high=context.total_max - context.total_min)}

    def evaluate(self, params: Params, baseline: int, current: int) -> bool | None:
        """Whether the move in this rule's direction reaches the threshold."""
        return (current - baseline) * self.direction >= params["points"]


class Below:
    """The current total is below ``value`` (``value`` itself does not count)."""

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``value``, which must leave totals on both sides."""
        return {"value": table.integer("value", low=context.total_min + 1, high=context.total_max)}

    def evaluate(self, params: Params, baseline: int, current: int) -> bool | None:
        """Whether the current total is below the value."""
        return current < params["value"]


class AtOrBelow:
    """The current total is ``value`` or lower."""

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """Read ``value``, which must leave totals on both sides."""
        return {"value": table.integer("value", low=context.total_min, high=context.total_max - 1)}

    def evaluate(self, params: Params, baseline: int, current: int) -> bool | None:
        """Whether the current total is at or below the value."""
        return current <= params["value"]


class BelowCutpoint(Below):
    """The current total is below the instrument's cut-point, whatever it is configured to."""

    def parse(self, table: Table, context: Context) -> dict[str, Any]:
        """No parameters: the value is the definition's cut-point."""
        if context.cutpoint is None:
            raise table.error("rule 'below_cutpoint' needs a cutpoint in the definition", "rule")
        return {"value": context.cutpoint}


CHANGE_RULES.register("percent_fall_at_least", PercentFallAtLeast())
CHANGE_RULES.register("points_fall_at_least", PointsAtLeast(-1))
CHANGE_RULES.register("points_rise_at_least", PointsAtLeast(+1))
CHANGE_RULES.register("below", Below())
CHANGE_RULES.register("at_or_below", AtOrBelow())
CHANGE_RULES.register("below_cutpoint", BelowCutpoint())
