"""The served instruments: every definition file of one folder, loaded once, and the measures
they declare how to show.

The folder is ``definitions/`` beside this file, or the folder named by the environment
variable ``INSTRUMENT_DEFINITIONS`` (a clinic's own set of definitions, or a test's). It is
read at each lookup and each folder is loaded once, so a test may point at a folder of its
own and back again.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from .definition import load_definition
from .errors import DefinitionError, UnknownInstrument
from .model import Display, Instrument, Measure

DEFINITIONS_DIR = Path(__file__).parent / "definitions"
#: The environment variable naming another folder of definitions to serve.
DEFINITIONS_ENV = "INSTRUMENT_DEFINITIONS"


def definitions_dir() -> Path:
    """The folder whose definitions are served: ``INSTRUMENT_DEFINITIONS``, else the shipped one."""
    return Path(os.environ.get(DEFINITIONS_ENV) or DEFINITIONS_DIR)


@dataclass(frozen=True)
class Catalog:
    """The instruments of one folder by key, and the measures they declare, in order."""

    instruments: dict[str, Instrument]
    measures: tuple[Measure, ...]


def _catalog() -> Catalog:
    # Looked up on every score, change and label (thousands per dashboard page): key the cache
    # by the variable's text so a lookup costs one dict read, not a Path built each time.
    return _catalog_named(os.environ.get(DEFINITIONS_ENV) or "")


@functools.cache
def _catalog_named(setting: str) -> Catalog:
    return load_catalog(Path(setting) if setting else DEFINITIONS_DIR)


@functools.cache
def load_catalog(folder: Path) -> Catalog:
    """Load and check every definition in ``folder``; raise DefinitionError naming the file
    and field of the first problem."""
    # Loading every file up front means one broken definition is reported at once,
    # not the first time someone happens to ask for that instrument.
    paths = sorted(folder.glob("*.toml"))
    instruments = {instrument.key: instrument for instrument in map(load_definition, paths)}
    return Catalog(instruments, _measures(instruments))


def _measures(instruments: dict[str, Instrument]) -> tuple[Measure, ...]:
    """The measures with a display, in order. The definitions sharing a measure must declare
    the same display, and two measures may not share an order or a colour."""
    declared: dict[str, Instrument] = {}  # measure -> its first definition, by key
    for key in sorted(instruments):
        instrument = instruments[key]
        first = declared.setdefault(instrument.measure, instrument)
        if instrument.display != first.display:
            raise DefinitionError(
                f"{key}.toml: display: {_describe(instrument.display)}, but {first.key}.toml, "
                f"of the same measure {instrument.measure}, has {_describe(first.display)}; "
                "definitions of one measure must show it alike")
    measures: list[Measure] = []
    for name, instrument in declared.items():
        display = instrument.display
        if display is None:
            continue
        for other in measures:
            for field, value, taken in (("order", display.order, other.order),
                                        ("colour", display.colour, other.colour)):
                if value == taken:
                    raise DefinitionError(
                        f"{instrument.key}.toml: display.{field}: {value} is already the "
                        f"{field} of {other.name} ({other.key}.toml)")
        measures.append(Measure(name=name, key=instrument.key, order=display.order,
                                colour=display.colour, headline=display.headline))
    return tuple(sorted(measures, key=lambda measure: measure.order))


def _describe(display: Display | None) -> str:
    if display is None:
        return "none"
    return (f"order {display.order}, colour {display.colour}"
            + (", headline" if display.headline else ", not headline"))


def get_instrument(key: str) -> Instrument:
    """The instrument with this key; raise UnknownInstrument otherwise."""
    catalog = _catalog().instruments
    if key not in catalog:
        raise UnknownInstrument(f"unknown instrument {key!r} (known: {', '.join(sorted(catalog))})")
    return catalog[key]


def all_instruments() -> list[Instrument]:
    """Every served instrument, sorted by key."""
    catalog = _catalog().instruments
    return [catalog[key] for key in sorted(catalog)]


def all_measures() -> list[Measure]:
    """Every measure whose definitions declare a display, in their order."""
    return list(_catalog().measures)
