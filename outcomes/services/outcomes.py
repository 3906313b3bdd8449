"""Clinic-wide outcomes of each headline measure (``instruments.headline_measures``): the
mean by week since the first infusion, with 95 % confidence intervals and n, and response
and remission rates per completed course.

The statistics are plain functions over plain numbers, tested against hand-computed values.
``clinic_outcomes`` feeds them from two SQL statements whatever the size of the clinic, each
selecting only the columns it needs (no ORM objects, no answers). Times in this module are
POSIX seconds (UTC), computed by the database: a clinic's history is half a million rows, and
plain numbers come into Python several times faster than datetimes.

Rules (shown on the page too):

* Week 0 is the baseline of the patient's first course, as ``services.baseline`` defines it
  (the last score on or before the day of the first infusion, within 30 days before it; the
  infusion's latest recorded version): patients without one have no week 0. A score after
  the day of the first infusion falls in week round(days / 7) since the first infusion, and
  in week 1 at least; a patient's last score in a week stands for that week, so each patient
  counts once per week. Patients with no infusion are left out.
* A week's confidence interval is mean ± t(0.975, n − 1) · s / √n; weeks with n < 2 have none.
* A completed course's change runs from the course's baseline (``services.baseline``) to
  the patient's last score after the day of its first infusion and no later than 4 weeks
  after the day the course ended. Courses without both scores are not counted (a course
  without a baseline has no response or remission to judge); stopped courses are not
  completed ones and are left out (their number is shown).
* Which changes count (PHQ-9 response and remission, PCL-5 clinically meaningful
  improvement, say) is decided by the instruments package's change thresholds, never here.
"""
from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import Float, and_, exists, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

import instruments

from ..clock import day_bounds
from ..models import Assessment, Course, Infusion, InfusionVersion, Patient
from .baseline import Window, baseline_window, course_baseline

CONFIDENCE = 0.95
#: How long after a course ends a score still counts as the course's outcome.
FOLLOW_UP_AFTER_COURSE = dt.timedelta(weeks=4)
#: Up to this many degrees of freedom the t quantile is found exactly; above, by expansion.
EXACT_T_MAX_DF = 100
WEEK = 7 * 24 * 3600  # seconds


# --- statistics ---------------------------------------------------------------------------

def t_central_probability(t: float, df: int) -> float:
    """P(−t ≤ T ≤ t) for Student's t with ``df`` (a whole number ≥ 1) degrees of freedom.

    The closed forms for whole degrees of freedom (Abramowitz & Stegun 26.7.3 and 26.7.4),
    with θ = atan(t / √df): for odd df, (2/π)(θ + sin θ · Σ) where Σ = cos θ + (2/3)cos³θ +
    (2·4)/(3·5)cos⁵θ + … up to cos^(df−2)θ (Σ = 0 when df = 1); for even df,
    sin θ · (1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + … up to cos^(df−2)θ). Each term is the one
    before times cos²θ · (k − 1)/k, k being the new power.
    """
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    theta = math.atan(abs(t) / math.sqrt(df))
    cos_squared, sine = math.cos(theta) ** 2, math.sin(theta)
    odd = df % 2 == 1
    term = math.cos(theta) if odd else 1.0
    total = term if df > 1 or not odd else 0.0
    for power in range(3 if odd else 2, df - 1, 2):
        term *= cos_squared * (power - 1) / power
        total += term
    if odd:
        return 2 / math.pi * (theta + sine * total)
    return sine * total


@lru_cache(maxsize=512)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, for 0.5 ≤ p < 1.

    Up to ``EXACT_T_MAX_DF`` degrees of freedom: the exact distribution
    (``t_central_probability``) inverted by bisection, to about 1e-12. Above: the
    Cornish–Fisher expansion of Abramowitz & Stegun 26.7.5 to the 1/df⁴ term, whose error
    there is below 1e-7 (t(0.975, 2) = 4.3027, t(0.975, 30) = 2.0423, t(0.975, ∞) = 1.9600).
    """
    if not 0.5 <= p < 1:
        raise ValueError("p must be in [0.5, 1)")
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df > EXACT_T_MAX_DF:
        return _cornish_fisher(p, df)
    target = 2 * p - 1
    low, high = 0.0, 1.0
    while t_central_probability(high, df) < target:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if t_central_probability(middle, df) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _cornish_fisher(p: float, df: int) -> float:
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


@dataclass(frozen=True)
class MeanCI:
    """A mean with its confidence interval (None when n < 2) and the number of values."""

    n: int
    mean: float
    low: float | None
    high: float | None


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanCI:
    """The mean of ``values`` and its two-sided t confidence interval:
    mean ± t((1 + confidence) / 2, n − 1) · s / √n, with s the sample standard deviation.

    Needs at least one value; with one, there is no interval. For [10, 12, 14]: mean 12,
    s = 2, 12 ± 4.3027 · 2 / √3 = 7.03 to 16.97.
    """
    n = len(values)
    if n == 0:
        raise ValueError("a mean needs at least one value")
    mean = statistics.fmean(values)
    if n < 2:
        return MeanCI(n, mean, None, None)
    half = t_quantile((1 + confidence) / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return MeanCI(n, mean, mean - half, mean + half)


@dataclass(frozen=True)
class WeekMean(MeanCI):
    """The mean of one week since the first infusion (week 0 is the baseline)."""

    week: int


class Score(NamedTuple):
    """One current, scored total: all the outcomes need of an assessment. A tuple, because a
    clinic has hundreds of thousands."""

    patient_id: int
    instrument_key: str
    #: When it was answered, in POSIX seconds.
    at: float
    total: int
    #: The assessment's id: of two scores given at the same moment, the later record counts.
    id: int = 0


def week_of(first_infusion: float, at: float) -> int:
    """0 for a score at or before the first infusion; otherwise the nearest whole number of
    weeks since it, and at least 1 (a score 3 days after the first infusion is a treated one,
    not a baseline). Both times in POSIX seconds."""
    elapsed = (at - first_infusion) / WEEK
    if elapsed <= 0:
        return 0
    return max(1, math.floor(elapsed + 0.5))


def weekly_means(scores: Iterable[Score], first_infusions: Mapping[int, float],
                 zone: dt.tzinfo, confidence: float = CONFIDENCE) -> list[WeekMean]:
    """Mean total by week since each patient's first infusion, for the weeks anyone has a
    score in, with each patient counted once a week (their last score of that week; for
    week 0, their baseline, its days counted in ``zone``). Patients missing from
    ``first_infusions`` are left out."""
    by_patient: dict[int, list[Score]] = defaultdict(list)
    for score in scores:
        if score.patient_id in first_infusions:
            by_patient[score.patient_id].append(score)
    by_week: dict[int, list[int]] = defaultdict(list)
    for patient_id, patient_scores in by_patient.items():
        first = first_infusions[patient_id]
        window = seconds_window(first, zone)
        ordered = sorted(patient_scores, key=_order)
        baseline = course_baseline(ordered, _at, window)
        latest = {0: baseline} if baseline is not None else {}
        for score in ordered:
            if score.at >= window.closes:
                latest[week_of(first, score.at)] = score  # oldest first: the last one stays
        for week, score in latest.items():
            by_week[week].append(score.total)
    return [WeekMean(**vars(mean_ci(by_week[week], confidence)), week=week)
            for week in sorted(by_week)]


def _order(score: Score) -> tuple[float, int]:
    return score.at, score.id


def _at(score: Score) -> float:
    return score.at


def seconds_window(first_infusion: float, zone: dt.tzinfo) -> Window[float]:
    """The baseline window (``services.baseline``) of a first infusion given in POSIX
    seconds, in POSIX seconds."""
    moment = dt.datetime.fromtimestamp(first_infusion, dt.timezone.utc)
    return baseline_window(moment, zone).as_seconds()


@dataclass(frozen=True)
class CourseWindow:
    """A completed course's windows, in POSIX seconds: its baseline window
    (``services.baseline``) and where its outcome is read, from the end of the first
    infusion's day to the end of the day 4 weeks after the course ended (exclusive)."""

    course_id: int
    patient_id: int
    first_infusion: float
    ends_at: float
    baseline: Window[float]


def course_window(course_id: int, patient_id: int, first_infusion: float,
                  ended_on: dt.date, zone: dt.tzinfo) -> CourseWindow:
    """The course's windows, their days counted whole in the clinic's zone."""
    last_day = ended_on + FOLLOW_UP_AFTER_COURSE
    ends_at = day_bounds(zone, last_day)[1]
    return CourseWindow(course_id, patient_id, first_infusion, ends_at.timestamp(),
                        seconds_window(first_infusion, zone))


def course_change(scores: Sequence[Score], window: CourseWindow) -> tuple[Score, Score] | None:
    """(baseline, outcome) of one measure for a course: the course's baseline and the last
    score after the first infusion's day within the window; None without both (a course
    without a baseline has no response to judge). ``scores`` are the patient's scores of
    that measure."""
    ordered = sorted(scores, key=_order)
    baseline = course_baseline(ordered, _at, window.baseline)
    outcome = None
    for score in ordered:
        if window.baseline.closes <= score.at < window.ends_at:
            outcome = score
    if baseline is None or outcome is None:
        return None
    return baseline, outcome


@dataclass(frozen=True)
class Rate:
    """How many evaluable courses met a change threshold of the instruments package."""

    key: str
    label: str
    source: str
    met: int
    evaluable: int

    @property
    def percent(self) -> float | None:
        return 100 * self.met / self.evaluable if self.evaluable else None


def improvement_thresholds(measure_key: str) -> list[instruments.ChangeThreshold]:
    """The definition's thresholds that signal improvement (PHQ-9: response and remission;
    PCL-5: clinically meaningful improvement), with their labels and sources."""
    return [t for t in instruments.get(measure_key).change_thresholds
            if t.signals == "improvement"]


def course_rates(measure_key: str, changes: Iterable[tuple[Score, Score]]) -> list[Rate]:
    """For each improvement threshold of ``measure_key``'s definition, how many of the
    (baseline, outcome) pairs meet it, judged by ``instruments.change``. A pair for which the
    definition leaves the judgement undefined (PHQ-9 response from a baseline of 0) is not
    evaluable for that threshold."""
    thresholds = improvement_thresholds(measure_key)
    met = dict.fromkeys((t.key for t in thresholds), 0)
    evaluable = dict.fromkeys((t.key for t in thresholds), 0)
    for baseline, outcome in changes:
        fields = instruments.change(outcome.instrument_key, baseline.total, outcome.total).fields
        for threshold in thresholds:
            verdict = fields.get(threshold.key)
            if verdict is None:
                continue
            evaluable[threshold.key] += 1
            met[threshold.key] += bool(verdict)
    return [Rate(t.key, t.label, t.source, met[t.key], evaluable[t.key]) for t in thresholds]


# --- the clinic's figures -----------------------------------------------------------------

@dataclass
class MeasureOutcomes:
    """One measure's figures for the clinic."""

    measure: str
    title: str
    total_max: int
    #: The time frames of the measure's versions (PCL-5: past month, past week), by key.
    time_frames: list[str]
    weeks: list[WeekMean]
    patients: int
    rates: list[Rate]
    courses_evaluated: int


@dataclass
class ClinicOutcomes:
    """Everything the outcomes page shows."""

    measures: list[MeasureOutcomes] = field(default_factory=list)
    patients_with_infusion: int = 0
    completed_courses: int = 0
    stopped_courses: int = 0
    completed_without_infusion: int = 0


@dataclass(frozen=True)
class _CourseRow:
    course_id: int
    patient_id: int
    status: str
    ended_on: dt.date | None
    first_infusion: float | None


def clinic_outcomes(session: Session, clinic_id: int, zone: dt.tzinfo) -> ClinicOutcomes:
    """The clinic's outcome figures, from two SQL statements whatever its size."""
    courses = _course_rows(session, clinic_id)
    first_infusions: dict[int, float] = {}
    for course in courses:
        if course.first_infusion is not None:
            held = first_infusions.get(course.patient_id)
            if held is None or course.first_infusion < held:
                first_infusions[course.patient_id] = course.first_infusion
    completed = [c for c in courses if c.status == "completed"]
    windows = [course_window(c.course_id, c.patient_id, c.first_infusion, c.ended_on, zone)
               for c in completed if c.first_infusion is not None and c.ended_on is not None]
    headline = instruments.headline_measures()
    versions = _versions([measure.name for measure in headline])
    keys = {instrument.key: measure for measure, found in versions.items()
            for instrument in found}
    # One pass over the rows: by measure, then by patient.
    scores: dict[str, dict[int, list[Score]]] = {measure.name: defaultdict(list)
                                                 for measure in headline}
    for score in _scores(session, clinic_id, list(keys)):
        scores[keys[score.instrument_key]][score.patient_id].append(score)
    result = ClinicOutcomes(
        patients_with_infusion=len(first_infusions), completed_courses=len(completed),
        stopped_courses=sum(c.status == "stopped" for c in courses),
        completed_without_infusion=sum(c.first_infusion is None for c in completed))
    for measure in headline:
        instrument = instruments.get(measure.key)
        by_patient = scores[measure.name]
        changes = [pair for window in windows
                   if (pair := course_change(by_patient.get(window.patient_id, ()), window))]
        result.measures.append(MeasureOutcomes(
            measure=measure.name, title=instrument.title, total_max=instrument.total_max,
            time_frames=[version.time_frame for version in versions[measure.name]],
            weeks=weekly_means(chain.from_iterable(by_patient.values()), first_infusions, zone),
            patients=sum(patient in first_infusions for patient in by_patient),
            rates=course_rates(measure.key, changes), courses_evaluated=len(changes)))
    return result


def _versions(measures: Sequence[str]) -> dict[str, list[instruments.Instrument]]:
    """Every validated instrument of each of ``measures``, by key (PCL-5: both versions)."""
    found: dict[str, list[instruments.Instrument]] = {measure: [] for measure in measures}
    for instrument in instruments.all():
        if instrument.validated and instrument.measure in found:
            found[instrument.measure].append(instrument)
    return found


def _course_rows(session: Session, clinic_id: int) -> list[_CourseRow]:
    """Each course of the clinic with the time of its first infusion, taken from each
    infusion's latest version (a correction may move it). One statement."""
    later = aliased(InfusionVersion)
    is_latest = ~exists().where(later.infusion_id == InfusionVersion.infusion_id,
                                later.version > InfusionVersion.version)
    rows = session.execute(
        select(Course.id, Course.patient_id, Course.status, Course.ended_on,
               func.min(epoch_seconds(InfusionVersion.administered_at)))
        .join(Patient, Patient.id == Course.patient_id)
        .outerjoin(Infusion, Infusion.course_id == Course.id)
        .outerjoin(InfusionVersion, and_(InfusionVersion.infusion_id == Infusion.id, is_latest))
        .where(Patient.clinic_id == clinic_id)
        .group_by(Course.id, Course.patient_id, Course.status, Course.ended_on)
    )
    return [_CourseRow(*row) for row in rows]


def _scores(session: Session, clinic_id: int, keys: Sequence[str]) -> list[Score]:
    """The clinic's current scored totals of ``keys``: a record replaced by a correction is
    left out, so each counts once. One statement, four columns."""
    correction = aliased(Assessment)
    # Through the connection, not the ORM: plain rows, which at this size is much quicker.
    rows = session.connection().execute(
        select(Assessment.patient_id, Assessment.instrument_key,
               epoch_seconds(Assessment.administered_at), Assessment.total, Assessment.id)
        .join(Patient, Patient.id == Assessment.patient_id)
        .where(Patient.clinic_id == clinic_id, Assessment.instrument_key.in_(keys),
               Assessment.scorable.is_(True),
               ~exists().where(correction.amends_id == Assessment.id))
    )
    return list(map(Score._make, rows))


class epoch_seconds(FunctionElement):  # noqa: N801 - used like the SQL function it renders
    """A stored UTC time as POSIX seconds (a float), computed by the database."""

    type = Float()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # SQLite keeps UTC times as text, which julianday() reads; day 2440587.5 is 1970-01-01.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch_seconds, "postgresql")
def _epoch_seconds_postgresql(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # extract() gives numeric (a Decimal in Python); double precision arrives as a float.
    return (f"CAST(extract(epoch FROM {compiler.process(element.clauses, **kw)})"
            " AS double precision)")
