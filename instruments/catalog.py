"""The shipped instruments: every definition file in ``definitions/``, loaded once."""

from __future__ import annotations

import functools
from pathlib import Path

from .definition import load_definition
from .errors import UnknownInstrument
from .model import Instrument

DEFINITIONS_DIR = Path(__file__).parent / "definitions"


@functools.cache
def _catalog() -> dict[str, Instrument]:
    # Loading every file up front means one broken definition is reported at once,
    # not the first time someone happens to ask for that instrument.
    instruments = (load_definition(path) for path in sorted(DEFINITIONS_DIR.glob("*.toml")))
    return {instrument.key: instrument for instrument in instruments}


def get_instrument(key: str) -> Instrument:
    """The instrument with this key; raise UnknownInstrument otherwise."""
    catalog = _catalog()
    if key not in catalog:
        raise UnknownInstrument(f"unknown instrument {key!r} (known: {', '.join(sorted(catalog))})")
    return catalog[key]


def all_instruments() -> list[Instrument]:
    """Every shipped instrument, sorted by key."""
    catalog = _catalog()
    return [catalog[key] for key in sorted(catalog)]
