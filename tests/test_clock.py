"""The clinic clock (outcomes/clock.py): the clinic's today, its days' bounds and form-value
conversions on the days the clocks change, and no zone arithmetic anywhere else."""
from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from outcomes import clock, models

UTC = dt.timezone.utc
NEW_YORK = "America/New_York"
ADELAIDE = "Australia/Adelaide"  # +09:30, +10:30 in summer: a half-hour offset with DST
KOLKATA = "Asia/Kolkata"  # +05:30 all year
SANTIAGO = "America/Santiago"  # its spring change skips midnight itself


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_a_clinic_a_name_and_a_zone_give_the_same_cached_zone():
    clinic = SimpleNamespace(timezone=NEW_YORK)
    zone = clock.clinic_zone(clinic)
    assert zone is clock.clinic_zone(NEW_YORK)
    assert clock.clinic_zone(zone) is zone
    assert clock.clinic_zone(UTC) is UTC


def test_zone_names_are_checked_against_the_tz_database():
    assert clock.is_zone_name(NEW_YORK) and clock.is_zone_name(ADELAIDE)
    assert not clock.is_zone_name("America/Atlantis")
    assert not clock.is_zone_name("EST5EDT;DROP")


@pytest.mark.parametrize(("zone", "now", "today"), [
    # New York (-04:00 in June): still the evening before when it is past midnight in UTC.
    (NEW_YORK, utc(2026, 6, 2, 0, 30), dt.date(2026, 6, 1)),
    (NEW_YORK, utc(2026, 6, 2, 3, 59), dt.date(2026, 6, 1)),
    (NEW_YORK, utc(2026, 6, 2, 4, 0), dt.date(2026, 6, 2)),
    # Kolkata (+05:30): the next day begins at 18:30 UTC, on the half hour.
    (KOLKATA, utc(2026, 6, 1, 18, 29), dt.date(2026, 6, 1)),
    (KOLKATA, utc(2026, 6, 1, 18, 30), dt.date(2026, 6, 2)),
    (ADELAIDE, utc(2026, 6, 1, 14, 29), dt.date(2026, 6, 1)),
    (ADELAIDE, utc(2026, 6, 1, 14, 30), dt.date(2026, 6, 2)),
    ("UTC", utc(2026, 6, 1, 23, 59), dt.date(2026, 6, 1)),
])
def test_the_clinics_today_near_midnight_utc(zone, now, today):
    assert clock.clinic_today(zone, now) == today


def test_the_clinics_today_reads_the_one_pinned_clock(monkeypatch):
    """One patch point: pinning clock.utcnow pins the clinic's today and the models' clock."""
    monkeypatch.setattr(clock, "utcnow", lambda: utc(2026, 6, 2, 0, 30))
    assert clock.clinic_today(SimpleNamespace(timezone=NEW_YORK)) == dt.date(2026, 6, 1)
    assert clock.clinic_today(KOLKATA) == dt.date(2026, 6, 2)
    assert models.utcnow() == utc(2026, 6, 2, 0, 30)
    assert clock.local_now(NEW_YORK) == dt.datetime(2026, 6, 1, 20, 30)


@pytest.mark.parametrize(("zone", "day", "start", "hours"), [
    (NEW_YORK, dt.date(2026, 6, 1), utc(2026, 6, 1, 4), 24),
    (NEW_YORK, dt.date(2026, 3, 8), utc(2026, 3, 8, 5), 23),  # spring forward
    (NEW_YORK, dt.date(2026, 11, 1), utc(2026, 11, 1, 4), 25),  # fall back
    (KOLKATA, dt.date(2026, 6, 1), utc(2026, 5, 31, 18, 30), 24),
    (ADELAIDE, dt.date(2026, 10, 4), utc(2026, 10, 3, 14, 30), 23),  # spring forward
    (ADELAIDE, dt.date(2026, 4, 5), utc(2026, 4, 4, 13, 30), 25),  # fall back
    # Midnight itself is skipped: the day begins at 01:00, the same instant.
    (SANTIAGO, dt.date(2026, 9, 6), utc(2026, 9, 6, 4), 23),
])
def test_local_midnight_and_the_days_bounds(zone, day, start, hours):
    assert clock.local_midnight(zone, day) == start
    begins, ends = clock.day_bounds(zone, day)
    assert (begins, ends - begins) == (start, dt.timedelta(hours=hours))
    assert ends == clock.local_midnight(zone, day + dt.timedelta(days=1))
    assert clock.local_date(begins, zone) == day
    assert clock.local_date(ends - dt.timedelta(microseconds=1), zone) == day
    assert clock.local_date(ends, zone) == day + dt.timedelta(days=1)


def test_form_values_on_an_ordinary_day_round_trip():
    local = dt.datetime(2026, 6, 1, 9, 15)
    moment = clock.to_utc(local, NEW_YORK)
    assert moment == utc(2026, 6, 1, 13, 15)
    assert clock.to_local(moment, NEW_YORK) == local
    assert clock.to_utc(dt.datetime(2026, 6, 1, 9, 15), KOLKATA) == utc(2026, 6, 1, 3, 45)
    assert clock.to_utc(None, NEW_YORK) is None and clock.to_local(None, NEW_YORK) is None


def test_a_time_in_the_skipped_spring_hour_lands_an_hour_later():
    # 02:30 does not exist in New York on 8 March 2026: read with EST, it is 03:30 EDT.
    moment = clock.to_utc(dt.datetime(2026, 3, 8, 2, 30), NEW_YORK)
    assert moment == utc(2026, 3, 8, 7, 30)
    assert clock.to_local(moment, NEW_YORK) == dt.datetime(2026, 3, 8, 3, 30)
    # Adelaide skips 02:00-03:00 on 4 October 2026 (+09:30 to +10:30).
    moment = clock.to_utc(dt.datetime(2026, 10, 4, 2, 30), ADELAIDE)
    assert moment == utc(2026, 10, 3, 17)
    assert clock.to_local(moment, ADELAIDE) == dt.datetime(2026, 10, 4, 3, 30)


def test_a_time_in_the_repeated_autumn_hour_is_the_first_unless_it_came_from_the_second():
    typed = dt.datetime(2026, 11, 1, 1, 30)  # happens at 05:30 UTC (EDT) and 06:30 (EST)
    assert clock.to_utc(typed, NEW_YORK) == utc(2026, 11, 1, 5, 30)
    first = clock.to_local(utc(2026, 11, 1, 5, 30), NEW_YORK)
    second = clock.to_local(utc(2026, 11, 1, 6, 30), NEW_YORK)
    assert first == second == typed  # the same wall time on the form
    assert clock.to_utc(first, NEW_YORK) == utc(2026, 11, 1, 5, 30)
    assert clock.to_utc(second, NEW_YORK) == utc(2026, 11, 1, 6, 30)


def test_noon_on_a_clinic_day_and_aware_values_refused():
    assert clock.at_local_time(NEW_YORK, dt.date(2026, 3, 8), dt.time(12)) == utc(2026, 3, 8, 16)
    assert clock.at_local_time(ADELAIDE, dt.date(2026, 6, 1), dt.time(12)) == utc(2026, 6, 1, 2, 30)
    with pytest.raises(ValueError):
        clock.to_utc(utc(2026, 6, 1, 12), NEW_YORK)


def test_the_clock_is_aware_utc():
    now = clock.utcnow()
    assert now.utcoffset() == dt.timedelta(0)
    assert abs(now - dt.datetime.now(UTC)) < dt.timedelta(seconds=5)


# --- no zone arithmetic outside the clock module ------------------------------------------

PACKAGE = Path(__file__).resolve().parent.parent / "outcomes"


def _dotted(node: ast.AST) -> str:
    """``dt.datetime.now`` for the expression it names ('' for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def zone_arithmetic(source: str) -> list[tuple[int, str]]:
    """Each line of ``source`` that reads the time or builds a zone on its own, and what."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module == "zoneinfo" or "zoneinfo" in names:
                found.append((node.lineno, "imports zoneinfo"))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if last == "ZoneInfo":
            found.append((node.lineno, "builds a ZoneInfo"))
        elif name.endswith("date.today") or name.endswith("datetime.today"):
            found.append((node.lineno, "reads the server's date"))
        elif name.endswith("datetime.now") or name.endswith("datetime.utcnow"):
            found.append((node.lineno, "reads the time (use clock.utcnow)"))
        elif name.endswith("datetime.combine") and (len(node.args) > 2 or node.keywords):
            found.append((node.lineno, "makes a zoned time (use clock.local_midnight/to_utc)"))
    return found


def test_the_check_finds_what_it_looks_for():
    source = ("import zoneinfo\nfrom zoneinfo import ZoneInfo\nimport datetime as dt\n"
              "ZoneInfo('UTC')\ndt.date.today()\ndt.datetime.now()\n"
              "dt.datetime.combine(day, dt.time(), zone)\ndt.datetime.utcnow()\n"
              "dt.datetime.now(dt.timezone.utc)\ndt.datetime.combine(day, dt.time())\n")
    assert [line for line, _ in zone_arithmetic(source)] == [1, 2, 4, 5, 6, 7, 8, 9]


def test_no_zone_arithmetic_outside_the_clock_module():
    offences = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
                for path in sorted(PACKAGE.rglob("*.py")) if path.name != "clock.py"
                for line, what in sorted(zone_arithmetic(path.read_text()))]
    assert not offences, "\n".join(offences)
