"""Typed access to one table of a definition file, so every error names the file and field."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from .errors import DefinitionError

T = TypeVar("T")

_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "an array",
    dict: "a table",
}

_REQUIRED: Any = object()


def _is_a(value: Any, kind: type) -> bool:
    # TOML booleans are Python bools, which are also ints: true must not pass for 1.
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


class Table:
    """One TOML table being read; remembers which fields were read to catch unknown ones."""

    def __init__(self, data: Mapping[str, Any], file: str, path: str = "") -> None:
        self._data = data
        self.file = file
        self.path = path
        self._read: set[str] = set()

    def where(self, field: str | None = None) -> str:
        """The dotted field path, e.g. ``items[2].options``."""
        if field is None:
            return self.path
        return f"{self.path}.{field}" if self.path else field

    def error(self, message: str, field: str | None = None) -> DefinitionError:
        """A DefinitionError naming this file and the field (or this table)."""
        where = self.where(field)
        return DefinitionError(f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}")

    def has(self, field: str) -> bool:
        """Whether the field is present."""
        return field in self._data

    def keys(self) -> Iterator[str]:
        """The field names present, in file order (for tables whose keys are data)."""
        return iter(self._data)

    def value(self, field: str, kind: type[T], default: Any = _REQUIRED) -> T:
        """The field's value, checked to be of ``kind``; ``default`` when absent and optional."""
        self._read.add(field)
        if field not in self._data:
            if default is _REQUIRED:
                raise self.error("missing required field", field)
            return default
        value = self._data[field]
        if not _is_a(value, kind):
            raise self.error(f"must be {_TYPE_NAMES[kind]}, got {_describe(value)}", field)
        return value

    def text(self, field: str, default: Any = _REQUIRED, *, allow_empty: bool = False) -> str:
        """A string field; empty strings are refused unless ``allow_empty``."""
        if field not in self._data and default is not _REQUIRED:
            self._read.add(field)
            return default
        value = self.value(field, str)
        if not allow_empty and not value.strip():
            raise self.error("must not be empty", field)
        return value

    def integer(self, field: str, default: Any = _REQUIRED, *, low: int | None = None,
                high: int | None = None) -> int:
        """An integer field, optionally within ``low``..``high`` inclusive."""
        value = self.value(field, int, default)
        if value is None:
            return value
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(f"{value} is outside {_range_text(low, high)}", field)
        return value

    def boolean(self, field: str, default: Any = _REQUIRED) -> bool:
        """A true/false field."""
        return self.value(field, bool, default)

    def texts(self, field: str, *, may_be_empty: bool = True) -> tuple[str, ...]:
        """A required array of non-empty strings; ``may_be_empty=False`` refuses ``[]``."""
        values = self.value(field, list)
        if not may_be_empty and not values:
            raise self.error("must not be empty", field)
        for index, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                raise self.error(f"must be a non-empty string, got {_describe(value)}", f"{field}[{index}]")
        return tuple(values)

    def table(self, field: str) -> Table:
        """A sub-table, read with its own path."""
        return Table(self.value(field, dict), self.file, self.where(field))

    def optional_table(self, field: str) -> Table | None:
        """A sub-table, or None when absent."""
        return self.table(field) if self.has(field) else None

    def tables(self, field: str, default: Any = _REQUIRED) -> list[Table]:
        """An array of tables, each read with its index in the path."""
        values = self.value(field, list, default)
        result = []
        for index, value in enumerate(values):
            where = f"{field}[{index}]"
            if not isinstance(value, dict):
                raise self.error(f"must be a table, got {_describe(value)}", where)
            result.append(Table(value, self.file, self.where(where)))
        return result

    def finish(self) -> None:
        """Refuse any field that was never read: a typo must not be silently ignored."""
        for field in self._data:
            if field not in self._read:
                hint = difflib.get_close_matches(field, sorted(self._read), n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise self.error(f"unknown field '{field}'{suggestion}", field)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _TYPE_NAMES[type(value)]
    return repr(value)


def _range_text(low: int | None, high: int | None) -> str:
    if high is None:
        return f"{low} or more"
    if low is None:
        return f"{high} or less"
    return f"{low}-{high}"
