"""Load one definition file (TOML) into an Instrument, refusing anything malformed."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import DefinitionError
from .model import (CHANGE_SIGNALS, Band, ChangeThreshold, DiagnosisRule, Display, FlagRule, Instrument,
                    Item, MissingPolicy, Option, RuleUse, Subscale, freeze)
from .reader import Table
from .rules import CHANGE_RULES, DIAGNOSIS_RULES, FLAG_RULES, MISSING_RULES, Context, Registry

RuleUseT = TypeVar("RuleUseT", bound=RuleUse)

_KEY = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_LOINC = re.compile(r"[0-9]{1,7}-[0-9]")
_LOINC_ANSWER = re.compile(r"LA[0-9]{1,7}-[0-9]")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
#: WCAG 2.2 AA contrast for text (1.4.3): a measure's colour draws chart lines and markers,
#: which need 3:1 (1.4.11), and may label them, which needs this.
MIN_CONTRAST_ON_WHITE = 4.5


def load_definition(path: str | os.PathLike[str]) -> Instrument:
    """Read and validate one definition file; raise DefinitionError naming file and field.

    A file may say ``extends = "other.toml"`` (a file in the same folder, itself not
    extending another): it then starts from that file's fields and replaces those it sets.
    """
    path = Path(path)
    data = _read_toml(path)
    base_name = data.get("extends")
    if isinstance(base_name, str):
        base_path = path.parent / base_name
        if not base_path.is_file():
            raise DefinitionError(f"{path.name}: extends: no file '{base_name}' next to this one")
        load_definition(base_path)  # the base must stand on its own; its errors name it
        base = _read_toml(base_path)
        if "extends" in base:
            raise DefinitionError(f"{path.name}: extends: {base_name} itself extends another file")
        data = {**base, **data}
    table = Table(data, path.name)
    table.text("extends", None)
    instrument = _instrument(table, path.stem)
    table.finish()
    return instrument


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise DefinitionError(f"{path.name}: cannot read: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise DefinitionError(f"{path.name}: invalid TOML: {error}") from error


def _instrument(table: Table, file_stem: str) -> Instrument:
    key = table.text("key")
    if not _KEY.fullmatch(key):
        raise table.error(f"'{key}' must be lower-case letters and digits, joined by hyphens", "key")
    if key != file_stem:
        raise table.error(f"'{key}' does not match the file name '{file_stem}'", "key")
    validated = table.boolean("validated")
    local_policies = table.texts("local_policies")
    if not validated and not local_policies:
        raise table.error("an instrument that is not validated must declare its local policies",
                          "local_policies")
    items = _items(table, _option_sets(table))
    total_min, total_max = _total_range(table, items)
    subscales = _subscales(table, items)
    bands, bands_source = _bands(table, total_min, total_max)
    cutpoint, cutpoint_source = _cutpoint(table, total_min, total_max)
    diagnosis = table.optional_table("diagnosis")
    loinc_panel, loinc_total = _loinc_codes(table)
    context = Context({item.id: item for item in items}, {s.key: s for s in subscales},
                      total_min, total_max, cutpoint)
    return Instrument(
        key=key,
        version=table.text("version"),
        title=table.text("title"),
        short_title=table.text("short_title"),
        measure=_measure(table),
        citations=table.texts("citations", may_be_empty=False),
        licence=table.text("licence"),
        instructions=table.text("instructions", allow_empty=True),
        stem=table.text("stem"),
        time_frame=table.text("time_frame"),
        validated=validated,
        items=items,
        total_min=total_min,
        total_max=total_max,
        subscales=subscales,
        bands=bands,
        bands_source=bands_source,
        cutpoint=cutpoint,
        cutpoint_source=cutpoint_source,
        loinc_panel=loinc_panel,
        loinc_total=loinc_total,
        missing=_single_rule(table.table("missing"), MISSING_RULES, context, MissingPolicy),
        diagnosis=None if diagnosis is None else _single_rule(diagnosis, DIAGNOSIS_RULES, context, DiagnosisRule),
        flags=_flags(table, context),
        change_thresholds=_change_thresholds(table, context),
        local_policies=local_policies,
        display=_display(table),
    )


def _measure(table: Table) -> str:
    # Versions that share items and scoring (PCL-5 past month and past week) name one measure,
    # so their totals can be compared and plotted as one series.
    return table.text("measure", None) or table.text("short_title")


def _display(table: Table) -> Display | None:
    entry = table.optional_table("display")
    if entry is None:
        return None
    display = Display(order=entry.integer("order", low=1), colour=_colour(entry, "colour"),
                      headline=entry.boolean("headline", False))
    entry.finish()
    return display


def _colour(table: Table, field: str) -> str:
    colour = table.text(field)
    if not _COLOUR.fullmatch(colour):
        raise table.error(f"'{colour}' is not a colour written #rrggbb", field)
    contrast = contrast_on_white(colour)
    if contrast < MIN_CONTRAST_ON_WHITE:
        raise table.error(f"'{colour}' has a contrast of {contrast:.1f}:1 on white; charts need "
                          f"{MIN_CONTRAST_ON_WHITE}:1 (WCAG AA)", field)
    return colour.lower()


def contrast_on_white(colour: str) -> float:
    """The WCAG 2.2 contrast ratio of a "#rrggbb" colour against white (1 to 21)."""
    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4
    red, green, blue = (linear(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return 1.05 / (luminance + 0.05)


def _loinc_codes(table: Table) -> tuple[str | None, str | None]:
    codes = table.optional_table("loinc")
    if codes is None:
        return None, None
    panel, total = _loinc(codes, "panel"), _loinc(codes, "total")
    codes.finish()
    return panel, total


def _loinc(table: Table, field: str, pattern: re.Pattern[str] = _LOINC) -> str | None:
    code = table.text(field, None)
    if code is None:
        return None
    if not pattern.fullmatch(code):
        raise table.error(f"'{code}' is not a LOINC code", field)
    if pattern is _LOINC and not _loinc_check_digit_ok(code):
        raise table.error(f"'{code}' has a wrong check digit", field)
    return code


def _loinc_check_digit_ok(code: str) -> bool:
    # LOINC part codes end in a mod-10 (Luhn) check digit; a typo in a code is caught here.
    number, check = code.split("-")
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10 == int(check)


def _name(table: Table, field: str) -> str:
    name = table.text(field)
    if not _NAME.fullmatch(name):
        raise table.error(f"'{name}' must start with a letter and hold only letters, digits and _", field)
    return name


def _check_unique(table: Table, field: str, value: Any, seen: dict[Any, str]) -> None:
    """Refuse a value already used by an earlier entry (``seen`` maps value → where)."""
    if value in seen:
        raise table.error(f"{value!r} duplicates {seen[value]}", field)
    seen[value] = table.path


def _option_sets(table: Table) -> dict[str, tuple[Option, ...]]:
    sets_table = table.table("option_sets")
    option_sets = {}
    for name in list(sets_table.keys()):
        option_set = sets_table.table(name)
        low = option_set.integer("min")
        high = option_set.integer("max", low=low)
        options: list[Option] = []
        seen: dict[Any, str] = {}
        for option in option_set.tables("options"):
            value = option.integer("value")
            if not low <= value <= high:
                raise option.error(f"{value} is outside the scale {low}-{high}", "value")
            _check_unique(option, "value", value, seen)
            options.append(Option(value=value, label=option.text("label"),
                                  loinc=_loinc(option, "loinc", _LOINC_ANSWER)))
            option.finish()
        absent = sorted(set(range(low, high + 1)) - set(seen))
        if absent:
            raise option_set.error(f"no option for value {absent[0]} of the scale {low}-{high}", "options")
        option_set.finish()
        option_sets[name] = tuple(options)
    if not option_sets:
        raise sets_table.error("must define at least one option set")
    return option_sets


def _items(table: Table, option_sets: Mapping[str, tuple[Option, ...]]) -> tuple[Item, ...]:
    items: list[Item] = []
    seen_ids: dict[Any, str] = {}
    seen_numbers: dict[Any, str] = {}
    for expected, entry in enumerate(table.tables("items"), start=1):
        item_id = _name(entry, "id")
        _check_unique(entry, "id", item_id, seen_ids)
        number = entry.integer("number")
        _check_unique(entry, "number", number, seen_numbers)
        if number != expected:
            raise entry.error(f"{number} is out of order: items must be numbered 1, 2, 3 ... (expected {expected})",
                              "number")
        set_name = entry.text("options")
        if set_name not in option_sets:
            raise entry.error(f"unknown option set '{set_name}' (known: {', '.join(option_sets)})", "options")
        scored = entry.boolean("scored", True)
        required = entry.boolean("required", True)
        if scored and not required:
            raise entry.error("a scored item must be required", "required")
        items.append(Item(id=item_id, number=number, text=entry.text("text"), loinc=_loinc(entry, "loinc"),
                          scored=scored, required=required, options=option_sets[set_name], option_set=set_name))
        entry.finish()
    if not any(item.scored for item in items):
        raise table.error("no item is scored", "items")
    unused = sorted(set(option_sets) - {item.option_set for item in items})
    if unused:
        raise table.error("not used by any item", f"option_sets.{unused[0]}")
    return tuple(items)


def _total_range(table: Table, items: tuple[Item, ...]) -> tuple[int, int]:
    """Derive the total range from the scored items; a declared range must agree."""
    scored = [item for item in items if item.scored]
    derived = (sum(item.min_value for item in scored), sum(item.max_value for item in scored))
    for field, value in zip(("total_min", "total_max"), derived):
        declared = table.integer(field, None)
        if declared is not None and declared != value:
            raise table.error(f"declared {declared}, but the scored items give {value}", field)
    return derived


def _subscales(table: Table, items: tuple[Item, ...]) -> tuple[Subscale, ...]:
    scored_ids = {item.id for item in items if item.scored}
    subscales = []
    for entry, key in _keyed(table, "subscales"):
        item_ids = entry.texts("items", may_be_empty=False)
        for index, item_id in enumerate(item_ids):
            if item_id not in scored_ids:
                raise entry.error(f"unknown or unscored item '{item_id}'", f"items[{index}]")
            if item_id in item_ids[:index]:
                raise entry.error(f"item '{item_id}' listed twice", f"items[{index}]")
        subscales.append(Subscale(key=key, label=entry.text("label"), items=item_ids))
    return tuple(subscales)


def _bands(table: Table, total_min: int, total_max: int) -> tuple[tuple[Band, ...], str | None]:
    """Bands must cover the total range exactly, in order, with no gap and no overlap."""
    bands: list[Band] = []
    for index, (entry, key) in enumerate(_keyed(table, "bands")):
        band = Band(key=key, label=entry.text("label"), min=entry.integer("min"), max=entry.integer("max"))
        if band.max < band.min:
            raise entry.error(f"max {band.max} is below min {band.min}")
        if bands:
            _check_follows(entry, bands[-1], band, index)
        elif band.min != total_min:
            raise entry.error(f"starts at {band.min}, but the total range starts at {total_min}")
        bands.append(band)
    if bands and bands[-1].max != total_max:
        raise table.error(f"ends at {bands[-1].max}, but the total range ends at {total_max}",
                          f"bands[{len(bands) - 1}]")
    source = table.text("bands_source", None)
    if bands and source is None:
        raise table.error("missing required field: bands need their source", "bands_source")
    if source is not None and not bands:
        raise table.error("given but there are no bands", "bands_source")
    return tuple(bands), source


def _check_follows(entry: Table, previous: Band, band: Band, index: int) -> None:
    spans = f"({previous.min}-{previous.max} vs {band.min}-{band.max})"
    if band.min <= previous.max:
        raise entry.error(f"overlaps bands[{index - 1}] {spans}")
    if band.min > previous.max + 1:
        raise entry.error(f"leaves a gap after bands[{index - 1}] {spans}")


def _cutpoint(table: Table, total_min: int, total_max: int) -> tuple[int | None, str | None]:
    entry = table.optional_table("cutpoint")
    if entry is None:
        return None, None
    value = entry.integer("value", low=total_min + 1, high=total_max)
    source = entry.text("source")
    entry.finish()
    return value, source


def _rule_use(entry: Table, registry: Registry[Any], context: Context) -> dict[str, Any]:
    """The rule name, its checked and frozen parameters, and its source."""
    rule, params = registry.parse(entry, context)
    return {"rule": rule, "params": freeze(params), "source": entry.text("source")}


def _single_rule(entry: Table, registry: Registry[Any], context: Context, kind: type[RuleUseT]) -> RuleUseT:
    use = kind(**_rule_use(entry, registry, context))
    entry.finish()
    return use


def _keyed(table: Table, field: str) -> Iterator[tuple[Table, str]]:
    """Each table of an optional array with its key, refusing a repeated key.

    The entry is checked for unknown fields once the caller has read what it needs.
    """
    seen: dict[Any, str] = {}
    for entry in table.tables(field, []):
        key = _name(entry, "key")
        _check_unique(entry, "key", key, seen)
        yield entry, key
        entry.finish()


def _flags(table: Table, context: Context) -> tuple[FlagRule, ...]:
    flags = []
    for entry, key in _keyed(table, "flags"):
        use = _rule_use(entry, FLAG_RULES, context)
        outcomes = FLAG_RULES[use["rule"]].outcomes(use["params"])
        alert_values = tuple(entry.value("alert_values", list))
        for index, value in enumerate(alert_values):
            # Compare types too: TOML's 1 must not pass for true.
            if not any(type(value) is type(outcome) and value == outcome for outcome in outcomes):
                raise entry.error(f"{value!r} is not a value this flag can take", f"alert_values[{index}]")
        reason = entry.text("alert_reason") if alert_values else entry.text("alert_reason", "")
        flags.append(FlagRule(key=key, alert_values=alert_values, crisis=entry.boolean("crisis"),
                              alert_reason=reason, **use))
    return tuple(flags)


def _change_thresholds(table: Table, context: Context) -> tuple[ChangeThreshold, ...]:
    thresholds = []
    for entry, key in _keyed(table, "change"):
        use = _rule_use(entry, CHANGE_RULES, context)
        signals = entry.text("signals")
        if signals not in CHANGE_SIGNALS:
            raise entry.error(f"'{signals}' is not one of {', '.join(CHANGE_SIGNALS)}", "signals")
        thresholds.append(ChangeThreshold(
            key=key, label=entry.text("label"), signals=signals,
            alert_reason=entry.text("alert_reason", ""), **use))
    return tuple(thresholds)
