"""The reminder cadence (issue 11): first when due, at most one a clinic day, at most three,
never in quiet hours, none once done or no longer asked for. Pure rules: no database."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outcomes.clock import local_date
from outcomes.services.plans import default_plan_entries
from outcomes.services.reminder_rules import ReminderPolicy, in_quiet_hours, reminder_due
from outcomes.services.schedule import Occurrence, Timeline, outstanding

ZONE = "America/New_York"
UTC = dt.timezone.utc
POLICY = ReminderPolicy()
#: Monday 6 April 2026, midnight in New York (UTC-4 for the weeks the tests span).
MIDNIGHT = dt.datetime(2026, 4, 6, 4, 0, tzinfo=UTC)


def at(day: int, hour: float) -> dt.datetime:
    return MIDNIGHT + dt.timedelta(days=day, hours=hour)


def occurrence(opens_at: dt.datetime) -> Occurrence:
    return Occurrence("phq9", "recurring", opens_at, opens_at + dt.timedelta(days=3),
                      "Your regular check-in")


def simulate(occurrences_at, start: dt.datetime, hours: int, policy: ReminderPolicy = POLICY,
             step_minutes: int = 15) -> list[tuple[int, dt.datetime]]:
    """Ticks every ``step_minutes`` from ``start``; at each, the rule is asked about the
    occurrence ``occurrences_at(now)`` gives (None once it is no longer outstanding) and what
    it says is sent. Returns (number, moment) of each reminder sent."""
    sent: list[tuple[int, dt.datetime]] = []
    now = start
    while now < start + dt.timedelta(hours=hours):
        current = occurrences_at(now)
        if current is not None:
            number = reminder_due(current, [moment for _, moment in sent], now, ZONE, policy)
            if number is not None:
                sent.append((number, now))
        now += dt.timedelta(minutes=step_minutes)
    return sent


def test_first_reminder_when_due_then_one_a_day_three_in_all():
    due = occurrence(at(0, 10))
    sent = simulate(lambda now: due, at(0, 0), 24 * 7)
    assert sent == [(1, at(0, 10)), (2, at(1, 9)), (3, at(2, 9))]


def test_due_at_midnight_waits_for_the_end_of_quiet_hours():
    sent = simulate(lambda now: occurrence(at(0, 0)), at(0, 0), 24)
    assert sent == [(1, at(0, 9))]


def test_none_once_done():
    done_at = at(1, 8)
    sent = simulate(lambda now: occurrence(at(0, 10)) if now < done_at else None,
                    at(0, 0), 24 * 7)
    assert sent == [(1, at(0, 10))]


def test_the_clinic_setting_changes_the_count_and_the_quiet_hours():
    policy = ReminderPolicy(max_reminders=1, quiet_from=dt.time(22), quiet_until=dt.time(7))
    assert simulate(lambda now: occurrence(at(0, 0)), at(0, 0), 24 * 5, policy) \
        == [(1, at(0, 7))]
    none = ReminderPolicy(max_reminders=0)
    assert simulate(lambda now: occurrence(at(0, 10)), at(0, 0), 48, none) == []
    with pytest.raises(ValueError, match="cannot be negative"):
        ReminderPolicy(max_reminders=-1)


def test_quiet_hours_wrap_past_midnight_and_equal_times_mean_none():
    assert in_quiet_hours(at(0, 23), ZONE, POLICY) and in_quiet_hours(at(1, 3), ZONE, POLICY)
    assert not in_quiet_hours(at(0, 9), ZONE, POLICY)
    assert not in_quiet_hours(at(0, 20.99), ZONE, POLICY) and in_quiet_hours(at(0, 21), ZONE, POLICY)
    daytime = ReminderPolicy(quiet_from=dt.time(12), quiet_until=dt.time(13))
    assert in_quiet_hours(at(0, 12.5), ZONE, daytime) and not in_quiet_hours(at(0, 13), ZONE,
                                                                             daytime)
    always = ReminderPolicy(quiet_from=dt.time(9), quiet_until=dt.time(9))
    assert not in_quiet_hours(at(0, 3), ZONE, always)


def test_quiet_hours_follow_the_clinic_clock_across_a_dst_change():
    # 8 March 2026: New York moves from UTC-5 to UTC-4. 09:00 local is 13:00 UTC from then on.
    assert in_quiet_hours(dt.datetime(2026, 3, 9, 12, 30, tzinfo=UTC), ZONE, POLICY)
    assert not in_quiet_hours(dt.datetime(2026, 3, 9, 13, 0, tzinfo=UTC), ZONE, POLICY)


def test_the_before_infusion_phq9_is_reminded_inside_its_24_hour_window():
    enrolled = at(0, 10)
    infusion = at(9, 8)  # 08:00: the window opens at 08:00 the day before, in quiet hours
    baseline = {"pcl5": [enrolled], "phq9": [enrolled], "gad7": [enrolled],
                "pcl5-weekly": [at(7, 12)]}
    line = Timeline(enrolled_at=enrolled, timezone=ZONE, next_infusion_at=infusion,
                    completed=dict(baseline, phq9=[enrolled, at(7, 12)]))
    plan = default_plan_entries(1)

    def before_infusion(now: dt.datetime) -> Occurrence | None:
        return next((o for o in outstanding(plan, line, now)
                     if o.schedule == "before_infusion" and o.is_due(now)), None)

    sent = simulate(before_infusion, at(7, 13), 24 * 3)
    assert sent == [(1, at(8, 9))]
    assert infusion - dt.timedelta(hours=24) <= sent[0][1] < infusion


@settings(max_examples=200, deadline=None)
@given(opens_minutes=st.integers(0, 7 * 24 * 60), done_after=st.none() | st.integers(0, 9000),
       max_reminders=st.integers(0, 5), quiet_from=st.integers(0, 23),
       quiet_until=st.integers(0, 23))
def test_whatever_the_timing_the_cadence_holds(opens_minutes, done_after, max_reminders,
                                               quiet_from, quiet_until):
    policy = ReminderPolicy(max_reminders, dt.time(quiet_from), dt.time(quiet_until))
    opens_at = MIDNIGHT + dt.timedelta(minutes=opens_minutes)
    done_at = None if done_after is None else opens_at + dt.timedelta(minutes=done_after)
    due = occurrence(opens_at)
    sent = simulate(lambda now: due if done_at is None or now < done_at else None,
                    MIDNIGHT, 24 * 14, policy, step_minutes=30)
    assert [number for number, _ in sent] == list(range(1, len(sent) + 1))
    assert len(sent) <= max_reminders
    days = [local_date(moment, ZONE) for _, moment in sent]
    assert len(days) == len(set(days))  # one a clinic day at most
    for _, moment in sent:
        assert moment >= opens_at and (done_at is None or moment < done_at)
        assert not in_quiet_hours(moment, ZONE, policy)
    if done_at is None and max_reminders and quiet_from == quiet_until:
        assert sent[0][1] - opens_at < dt.timedelta(minutes=30)  # sent at the first tick
