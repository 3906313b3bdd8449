"""What a score means, in plain words, and the series and infusion marks a trend chart plots."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import instruments

from ..charts import InfusionMark, Part, Point, Series, Vitals
from ..clock import local_date, to_local
from ..models import Assessment, Course, InfusionVersion
from .assessments import alerts_called_for
from .baseline import (
    BASELINE_WINDOW_DAYS,
    Reference,
    choose_reference,
    course_windows,
    reference_for,
)
from .courses import SIDE_EFFECTS


def measure_of(instrument_key: str) -> str:
    """The measure an instrument's totals belong to (PCL-5 for both of its versions)."""
    return instruments.get(instrument_key).measure


def trend_series(assessments: Sequence[Assessment], courses: Sequence[Course],
                 zone: dt.tzinfo) -> list[Series]:
    """Totals of validated instruments over time, oldest first, one series per measure, with
    each record's part scores (PCL-5 clusters), safety flags, and the point the latest one's
    change is read from (``services.baseline``; days counted in ``zone``, the clinic's).

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
    windows = course_windows(courses, zone)
    for entry in series.values():
        entry.reference = choose_reference(entry.points, _point_time, windows,
                                           entry.points[-1].administered_at)
    return list(series.values())


def _point_time(point: Point) -> dt.datetime:
    return point.administered_at


def parts_of(instrument: instruments.Instrument) -> tuple[Part, ...]:
    """The instrument's subscales as chart parts, each with its highest possible total."""
    items = {item.id: item for item in instrument.items}
    return tuple(Part(s.key, s.label, sum(items[i].max_value for i in s.items))
                 for s in instrument.subscales)


def alert_texts(assessment: Assessment) -> tuple[str, ...]:
    """The record's alerting flags as short texts, e.g. "suicide risk (item 9): positive".

    Which flags alert is the definition's rule, asked through ``alerts_called_for``; the item
    named is the one the rule reads (from the definition, so no answers need loading)."""
    instrument = instruments.get(assessment.instrument_key)
    numbers = {item.id: item.number for item in instrument.items}
    rules = {rule.key: rule for rule in instrument.flags}
    texts = []
    for spec in alerts_called_for(assessment.instrument_key, assessment.flags, None, None):
        item = numbers.get(rules[spec.kind].params.get("item"))
        texts.append(f"{spec.kind.replace('_', ' ')}{f' (item {item})' if item else ''}: "
                     f"{'yes' if spec.value == 'true' else spec.value}")
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


def progress_sentence(series: Series, now: dt.datetime, zone: dt.tzinfo) -> str:
    """One calm sentence from the series' reference score to the latest, right whether the
    score fell, rose or stayed the same, and with a single score. The reference is named
    for what it is: the score before the first infusion, or the first score.

    "Your PCL-5 score went from 52 before your first infusion to 31 this week."
    """
    if series.reference is None:
        return ""
    start, latest = series.reference.record, series.points[-1]
    name = f"Your {series.measure} score"
    until = _when(latest.administered_at, now, zone)
    if not series.reference.is_baseline:
        first = "your first score"
        if latest is start:
            return (f"{name} was {start.total} {until}; your next scores will show how it "
                    "changes.")
        if latest.total == start.total:
            return (f"{name} was {latest.total} {until}, the same as {first} "
                    f"{_when(start.administered_at, now, zone)}.")
        return (f"{name} went from {start.total} {_when(start.administered_at, now, zone)} "
                f"({first}) to {latest.total} {until}.")
    since = f"before {_first_infusion_words(series.reference)}"
    if latest is start:
        return f"{name} was {start.total} {since}; your next scores will show how it changes."
    if latest.total == start.total:
        return f"{name} was {start.total} {since}, and it was {latest.total} again {until}."
    return f"{name} went from {start.total} {since} to {latest.total} {until}."


def _first_infusion_words(reference: Reference[object]) -> str:
    return ("your first infusion" if (reference.course or 1) == 1
            else "the first infusion of this course")


def reference_sentence(series: Series, zone: dt.tzinfo) -> str:
    """For the clinician's chart: which score change is read from, named for what it is."""
    reference = series.reference
    if reference is None:
        return ""
    start = reference.record
    when = to_local(start.administered_at, zone).strftime("%-d %b %Y")
    latest = series.points[-1]
    change = latest.total - start.total
    to_latest = ("" if latest is start else
                 f"; latest {latest.total} ({change:+d})")
    course = f" of course {reference.course}" if reference.course else ""
    if reference.is_baseline:
        return (f"Baseline{course}: {start.total} on {when}, the last score within "
                f"{BASELINE_WINDOW_DAYS} days before the first infusion{to_latest}.")
    why = (f"no score within {BASELINE_WINDOW_DAYS} days before the first infusion{course}"
           if reference.course else "no course has begun")
    return f"Since first ({why}): {start.total} on {when}{to_latest}."


def _when(moment: dt.datetime, now: dt.datetime, zone: dt.tzinfo) -> str:
    day, today = local_date(moment, zone), local_date(now, zone)
    days = (today - day).days
    if days == 0:
        return "today"
    if 0 < days < 7:
        return "this week"
    if 7 <= days < 14:
        return "last week"
    return f"on {day:%-d %B}" + (f" {day.year}" if day.year != today.year else "")


def reference_of(assessments: Sequence[Assessment], courses: Sequence[Course],
                 assessment: Assessment, zone: dt.tzinfo) -> Reference[Assessment] | None:
    """The reference ``assessment`` is compared with (``services.baseline``), unless it is
    that record itself. ``assessments`` are the patient's current records."""
    reference = reference_for(assessments, courses, zone,
                              measure_of(assessment.instrument_key), assessment.administered_at)
    if reference is None or reference.record.id == assessment.id:
        return None
    return reference


def plain_summary(assessment: Assessment, reference: Reference[Assessment] | None,
                  zone: dt.tzinfo = dt.timezone.utc) -> str:
    """One or two calm sentences saying what the score is, compared with its reference (the
    score before the first infusion, or the first score: each named as such), with no
    diagnostic wording; dates in ``zone`` (the clinic's)."""
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
    if reference is not None and reference.record.total is not None:
        start = reference.record
        difference = assessment.total - start.total
        when = to_local(start.administered_at, zone).strftime("%-d %B")
        named = (f"your score before {_first_infusion_words(reference)}, on {when}"
                 if reference.is_baseline else
                 f"your first score, on {when}")
        if difference == 0:
            text += f" That is the same as {named}."
        else:
            direction = "lower" if difference < 0 else "higher"
            text += (f" {named[0].upper()}{named[1:]}, was {start.total}: this one is "
                     f"{abs(difference)} point{'s' if abs(difference) != 1 else ''} {direction}.")
    return text
