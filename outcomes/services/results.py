"""What a score means, in plain words, and the series and infusion marks a trend chart plots."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import instruments

from ..charts import InfusionMark, Part, Point, Series, Vitals
from ..models import Assessment, Course, InfusionVersion
from .courses import SIDE_EFFECTS


def measure_of(instrument_key: str) -> str:
    """The measure an instrument's totals belong to (PCL-5 for both of its versions)."""
    return instruments.get(instrument_key).measure


def trend_series(assessments: Sequence[Assessment]) -> list[Series]:
    """Totals of validated instruments over time, oldest first, one series per measure, with
    each record's part scores (PCL-5 clusters) and safety flags.

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
            parts=parts_of(instrument),
        ))
        entry.points.append(Point(
            assessment.administered_at, assessment.total, assessment.id,
            alerts=alert_texts(assessment),
            subscales={key: value for key, value in (assessment.subscales or {}).items()
                       if value is not None}))
    return list(series.values())


def parts_of(instrument: instruments.Instrument) -> tuple[Part, ...]:
    """The instrument's subscales as chart parts, each with its highest possible total."""
    items = {item.id: item for item in instrument.items}
    return tuple(Part(s.key, s.label, sum(items[i].max_value for i in s.items))
                 for s in instrument.subscales)


def alert_texts(assessment: Assessment) -> tuple[str, ...]:
    """The record's alerting flags as short texts, e.g. "suicide risk (item 9): positive"."""
    instrument = instruments.get(assessment.instrument_key)
    numbers = {item.id: item.number for item in instrument.items}
    texts = []
    for rule in instrument.flags:
        value = assessment.flags.get(rule.key)
        if value not in rule.alert_values:
            continue
        name = rule.key.replace("_", " ")
        item = numbers.get(rule.params.get("item")) if "item" in rule.params else None
        texts.append(f"{name}{f' (item {item})' if item else ''}: "
                     f"{value if isinstance(value, str) else 'yes'}")
    return tuple(texts)


def infusion_marks(courses: Sequence[Course]) -> list[InfusionMark]:
    """Every infusion of the patient's courses as its latest version records it, oldest
    first. With more than one course the label names the course."""
    ordered = sorted(courses, key=lambda c: (c.start_date, c.id))
    marks = []
    for course_number, course in enumerate(ordered, start=1):
        for infusion in course.infusions:
            label = (f"Infusion {infusion.number}" if len(ordered) == 1
                     else f"Course {course_number}, infusion {infusion.number}")
            marks.append(_mark(label, infusion.current))
    return sorted(marks, key=lambda m: m.administered_at)


def _mark(label: str, version: InfusionVersion) -> InfusionMark:
    def vitals(when: str) -> Vitals:
        return Vitals(*(getattr(version, f"{name}_{when}")
                        for name in ("systolic", "diastolic", "heart_rate", "spo2")))

    return InfusionMark(
        label=label, administered_at=version.administered_at,
        dose_mg_per_kg=version.dose_mg_per_kg, total_dose_mg=version.total_dose_mg,
        before=vitals("before"), peak=vitals("peak"), after=vitals("after"),
        side_effects=tuple(SIDE_EFFECTS.get(key, key) for key in version.side_effects or ()),
    )


def first_infusion_at(marks: Sequence[InfusionMark]) -> dt.datetime | None:
    """When the patient's first infusion was given, if any."""
    return min((mark.administered_at for mark in marks), default=None)


def baseline_point(points: Sequence[Point], first_infusion: dt.datetime | None) -> Point | None:
    """The score treatment is measured against: the last one at or before the first infusion
    (the usual trial convention), or the first score when none came before it."""
    if not points:
        return None
    before = [p for p in points if first_infusion is not None
              and p.administered_at <= first_infusion]
    return before[-1] if before else points[0]


def progress_sentence(series: Series, first_infusion: dt.datetime | None, now: dt.datetime,
                      zone: dt.tzinfo) -> str:
    """One calm sentence from the baseline score to the latest, right whether the score fell,
    rose or stayed the same, and with a single score.

    "Your PCL-5 score went from 52 before your first infusion to 31 this week."
    """
    start = baseline_point(series.points, first_infusion)
    if start is None:
        return ""
    latest = series.points[-1]
    name = f"Your {series.measure} score"
    if first_infusion is not None and start.administered_at <= first_infusion:
        since = "before your first infusion"
    else:
        since = _when(start.administered_at, now, zone)
    if latest is start:
        return f"{name} was {start.total} {since}; your next scores will show how it changes."
    until = _when(latest.administered_at, now, zone)
    if latest.total == start.total:
        return f"{name} was {start.total} {since}, and it was {latest.total} again {until}."
    return f"{name} went from {start.total} {since} to {latest.total} {until}."


def _when(moment: dt.datetime, now: dt.datetime, zone: dt.tzinfo) -> str:
    day, today = moment.astimezone(zone).date(), now.astimezone(zone).date()
    days = (today - day).days
    if days == 0:
        return "today"
    if 0 < days < 7:
        return "this week"
    if 7 <= days < 14:
        return "last week"
    return f"on {day:%-d %B}" + (f" {day.year}" if day.year != today.year else "")


def baseline_of(assessments: Sequence[Assessment], assessment: Assessment) -> Assessment | None:
    """The first scorable record of the same measure, if it is not ``assessment`` itself."""
    measure = measure_of(assessment.instrument_key)
    earlier = [a for a in assessments
               if a.scorable and measure_of(a.instrument_key) == measure]
    if not earlier:
        return None
    first = min(earlier, key=lambda a: (a.administered_at, a.id))
    return None if first.id == assessment.id else first


def plain_summary(assessment: Assessment, baseline: Assessment | None,
                  zone: dt.tzinfo = dt.timezone.utc) -> str:
    """One or two calm sentences saying what the score is, with no diagnostic wording; dates
    in ``zone`` (the clinic's)."""
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
        when = baseline.administered_at.astimezone(zone).strftime("%-d %B")
        if difference == 0:
            text += f" That is the same as your first score, on {when}."
        else:
            direction = "lower" if difference < 0 else "higher"
            text += (f" Your first score, on {when}, was {baseline.total}: this one is "
                     f"{abs(difference)} point{'s' if abs(difference) != 1 else ''} {direction}.")
    return text
