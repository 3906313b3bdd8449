"""The default limit of wrong second-factor codes (MFA_CODE_LIMIT) bounds what guessing can
achieve over a year, not only over an hour: six digits, three of them valid at once (a step
either side for clock drift), so 20 guesses an hour around the clock, about 175,000 a year,
would find a code with even odds; the daily cap keeps it to a few per cent."""
from __future__ import annotations

import datetime as dt

from limits import parse_many

from outcomes.config import settings_from_environment
from outcomes.services.mfa import DRIFT_STEPS

YEAR = dt.timedelta(days=365)


def wrong_codes_a_year(limit: str) -> float:
    """The most wrong codes ``limit`` lets through in a year: its tightest item, repeated."""
    return min(item.amount * YEAR.total_seconds() / item.get_expiry()
               for item in parse_many(limit))


def test_the_default_caps_a_years_guessing_at_a_few_per_cent():
    limit = settings_from_environment({})["MFA_CODE_LIMIT"]
    assert limit == "5 per minute; 20 per hour; 50 per day"
    chance = wrong_codes_a_year(limit) * (2 * DRIFT_STEPS + 1) / 10 ** 6
    assert chance < 0.06
    assert wrong_codes_a_year("5 per minute; 20 per hour") == 20 * 24 * 365
