"""The app's clock and the clinic's calendar: the one place that reads the time or does zone
arithmetic.

Every stored moment is an aware UTC datetime. A clinic's calendar (its today, where a day
begins and ends, the wall time a clinician types into a form) lives in the clinic's IANA zone,
``clinic.timezone``. Everything else asks this module, so there is one notion of "local
midnight" and no fall-back to the server's own zone or date.

Tests pin the time at one point: ``monkeypatch.setattr(clock, "utcnow", ...)`` (callers read
``clock.utcnow()`` through the module, so the patch reaches them all).

This module imports nothing of the app: models, services, views and the engine may all use it.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Protocol, Union, overload

UTC = dt.timezone.utc


class HasTimezone(Protocol):
    """Anything that carries a clinic's zone name: a clinic, an export request, a timeline."""

    @property
    def timezone(self) -> str: ...


#: A clinic (or anything with its ``timezone`` name), a zone name, or a zone.
Where = Union[HasTimezone, str, dt.tzinfo]


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC (the app's one reading of the clock)."""
    return dt.datetime.now(UTC)


@functools.lru_cache(maxsize=None)
def _zone_named(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def clinic_zone(where: Where) -> dt.tzinfo:
    """The zone of a clinic (or of anything with a ``timezone`` name, or of a zone name);
    a zone is returned as it is. One ZoneInfo per name, cached."""
    if isinstance(where, dt.tzinfo):
        return where
    return _zone_named(where if isinstance(where, str) else where.timezone)


def is_zone_name(name: str) -> bool:
    """Whether ``name`` is an IANA zone this system knows (a clinic's timezone must be)."""
    return name in _known_zone_names()


@functools.lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every IANA zone name this system knows, sorted (what a clinic's time zone may be)."""
    # available_timezones() walks the tz database on disk: read it once.
    return tuple(sorted(zoneinfo.available_timezones()))


@functools.lru_cache(maxsize=1)
def _known_zone_names() -> frozenset[str]:
    return frozenset(zone_names())


def local_date(moment: dt.datetime, where: Where) -> dt.date:
    """The clinic-calendar day on which the aware ``moment`` falls."""
    return moment.astimezone(clinic_zone(where)).date()


def clinic_today(where: Where, now: dt.datetime | None = None) -> dt.date:
    """The clinic's today: the day it is in the clinic's zone at ``now`` (default: the clock)."""
    return local_date(now if now is not None else utcnow(), where)


def local_midnight(where: Where, day: dt.date) -> dt.datetime:
    """The UTC instant at which the clinic's ``day`` begins.

    Where a zone skips midnight itself (a DST change at 00:00), the day begins at the first
    wall time that exists, which is the same instant."""
    return dt.datetime.combine(day, dt.time(), clinic_zone(where)).astimezone(UTC)


def day_bounds(where: Where, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC start (inclusive) and end (exclusive) of the clinic's ``day``: 23 or 25 hours
    apart on the days the clocks change."""
    return local_midnight(where, day), local_midnight(where, day + dt.timedelta(days=1))


def at_local_time(where: Where, day: dt.date, time: dt.time) -> dt.datetime:
    """The UTC instant of wall time ``time`` on the clinic's ``day`` (DST as in ``to_utc``)."""
    return to_utc(dt.datetime.combine(day, time), where)


@overload
def to_utc(local: dt.datetime, where: Where) -> dt.datetime: ...
@overload
def to_utc(local: None, where: Where) -> None: ...
def to_utc(local: dt.datetime | None, where: Where) -> dt.datetime | None:
    """The aware UTC instant of a naive clinic wall time (a form value; None stays None).

    DST follows PEP 495 with ``fold=0``: a wall time in the hour skipped in spring (02:30 on a
    New York spring-forward day) is read with the offset in force before the change, so it
    lands one hour later on the clock (03:30 EDT, 07:30 UTC); a wall time in the hour repeated
    in autumn (01:30 on a fall-back day) is the first of the two (01:30 EDT, 05:30 UTC)."""
    if local is None:
        return None
    if local.tzinfo is not None:
        raise ValueError("to_utc takes a naive wall time; an aware moment is already an instant")
    return local.replace(tzinfo=clinic_zone(where)).astimezone(UTC)


@overload
def to_local(moment: dt.datetime, where: Where) -> dt.datetime: ...
@overload
def to_local(moment: None, where: Where) -> None: ...
def to_local(moment: dt.datetime | None, where: Where) -> dt.datetime | None:
    """The naive clinic wall time of an aware ``moment`` (what a form shows; None stays None).

    Both moments of a repeated autumn hour show the same wall time; the second keeps
    ``fold=1``, so ``to_utc`` gives its instant back, while the same time typed into a form
    (``fold=0``) is the first."""
    if moment is None:
        return None
    return moment.astimezone(clinic_zone(where)).replace(tzinfo=None)


def local_now(where: Where) -> dt.datetime:
    """The clinic's wall time now, naive, to the minute (a form's default "when")."""
    return to_local(utcnow(), where).replace(second=0, microsecond=0)
