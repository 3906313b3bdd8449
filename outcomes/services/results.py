"""What a score means, in plain words, and the series a trend chart plots."""
from __future__ import annotations

from collections.abc import Sequence

import instruments

from ..charts import Point, Series
from ..models import Assessment


def measure_of(instrument_key: str) -> str:
    """The measure an instrument's totals belong to (PCL-5 for both of its versions)."""
    return instruments.get(instrument_key).measure


def trend_series(assessments: Sequence[Assessment]) -> list[Series]:
    """Totals of validated instruments over time, oldest first, one series per measure.

    ``assessments`` should already exclude records replaced by a correction.
    """
    series: dict[str, Series] = {}
    for assessment in sorted(assessments, key=lambda a: (a.administered_at, a.id)):
        instrument = instruments.get(assessment.instrument_key)
        if not instrument.validated or not assessment.scorable:
            continue
        entry = series.setdefault(instrument.measure, Series(
            measure=instrument.measure, title=instrument.title,
            total_max=instrument.total_max, cutpoint=instrument.cutpoint, bands=instrument.bands,
        ))
        entry.points.append(Point(assessment.administered_at, assessment.total, assessment.id,
                                  flagged=_alerting(assessment)))
    return list(series.values())


def _alerting(assessment: Assessment) -> bool:
    instrument = instruments.get(assessment.instrument_key)
    return any(assessment.flags.get(rule.key) in rule.alert_values for rule in instrument.flags)


def baseline_of(assessments: Sequence[Assessment], assessment: Assessment) -> Assessment | None:
    """The first scorable record of the same measure, if it is not ``assessment`` itself."""
    measure = measure_of(assessment.instrument_key)
    earlier = [a for a in assessments
               if a.scorable and measure_of(a.instrument_key) == measure]
    if not earlier:
        return None
    first = min(earlier, key=lambda a: (a.administered_at, a.id))
    return None if first.id == assessment.id else first


def plain_summary(assessment: Assessment, baseline: Assessment | None) -> str:
    """One or two calm sentences saying what the score is, with no diagnostic wording."""
    instrument = instruments.get(assessment.instrument_key)
    if not instrument.validated:
        return ("Thank you. Your care team will see how you felt after your infusion.")
    if not assessment.scorable:
        return ("Some questions were left blank, so a total score cannot be worked out. "
                "Your care team can see the answers you gave.")
    text = f"Your {instrument.measure} score is {assessment.total} out of {instrument.total_max}."
    band = instrument.band_for(assessment.total) if instrument.bands else None
    if band is not None:
        text += f" On this questionnaire, scores from {band.min} to {band.max} are in the range " \
                f"called “{band.label.lower()}”."
    if baseline is not None and baseline.total is not None:
        difference = assessment.total - baseline.total
        when = baseline.administered_at.strftime("%-d %B")
        if difference == 0:
            text += f" That is the same as your first score, on {when}."
        else:
            direction = "lower" if difference < 0 else "higher"
            text += (f" Your first score, on {when}, was {baseline.total}: this one is "
                     f"{abs(difference)} point{'s' if abs(difference) != 1 else ''} {direction}.")
    return text
