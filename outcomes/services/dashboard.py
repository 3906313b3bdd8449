"""The clinician's dashboard: every patient of the clinic, one summary row each, under the
clinic's triage counts, with a column for each headline measure (``instruments``).

Four statements whatever the clinic's size: the counts, a count and one page of rows (on
``patient_summary`` joined to each headline measure's row of ``patient_measure_summary``,
which the write services keep current), and the open alerts of that page.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import AliasedClass

import instruments

from ..clock import day_bounds
from ..models import COURSE_STATUSES, Alert, MeasureSummary, Patient, PatientSummary, utcnow
from .courses import STATUS_LABELS
from .schedule import GRACE_DAYS, overdue_before
from .summaries import Signal, change_signals
from .triage import AlertDescription, describe, open_alerts_statement, patients_open_alerts

PAGE_SIZE = 50
FILTERS = {
    "alerts": "Open safety alert",
    "overdue": "Overdue questionnaires",
    "infusion_today": "Infusion booked for today",
    "improving": "Improving",
    "not_improving": "Not improving",
    "discharged": "Discharged patients",
}
#: The sort by a headline measure's change: ``pcl5_change`` for PCL-5 (its key, then this).
CHANGE_SORT = "_change"


def sorts() -> dict[str, str]:
    """The dashboard's sorts by value, with their labels: one by each headline measure's
    change among the fixed ones."""
    by_change = {f"{measure.key}{CHANGE_SORT}": f"{measure.name} change"
                 for measure in instruments.headline_measures()}
    return {"priority": "Alerts, then overdue, then name", "name": "Name",
            "identifier": "Identifier", **by_change,
            "activity": "Last activity", "next_infusion": "Next infusion"}


@dataclass(frozen=True)
class DashboardQuery:
    search: str = ""
    filter: str = ""
    #: Only the patients assigned to this clinician ("my patients"); None for everyone.
    clinician_id: int | None = None
    course_status: str = ""
    sort: str = "priority"
    page: int = 1


@dataclass(frozen=True)
class MeasureFigures:
    #: The reference's total (services.baseline), and what it is: BASELINE or SINCE_FIRST.
    baseline: int | None
    reference_kind: str | None
    latest: int | None
    latest_at: dt.datetime | None
    change: int | None
    percent_change: float | None
    signals: list[Signal]


@dataclass(frozen=True)
class Chip:
    """A status chip of a dashboard row: its tone (``due``, ``neutral``, ``good`` or
    ``alert``: a style), its words and what explains it."""

    tone: str
    text: str
    title: str


def signal_tone(signals: str) -> str:
    """A change signal's chip tone: an improvement reads well, a worsening calls for care."""
    return "good" if signals == "improvement" else "alert"


@dataclass
class DashboardRow:
    patient: Patient
    summary: PatientSummary
    measures: dict[str, MeasureFigures] = field(default_factory=dict)
    due: bool = False
    overdue: bool = False
    #: The patient's open alerts, most urgent first.
    alerts: list[AlertDescription] = field(default_factory=list)

    @property
    def chips(self) -> list[Chip]:
        """Discharged, overdue or due, then each headline measure's change signals."""
        chips = []
        if self.patient.discharged_at is not None:
            chips.append(Chip("neutral", "discharged",
                              "Discharged by the clinic: nothing is due and no reminders go"))
        if self.overdue and self.summary.next_due_on is not None:
            chips.append(Chip("due", f"overdue since {self.summary.next_due_on:%-d %b}",
                              f"A questionnaire has been due for more than {GRACE_DAYS} days"))
        elif self.due:
            chips.append(Chip("neutral", "questionnaire due", "A questionnaire of the plan is due"))
        chips.extend(Chip(signal_tone(signal.signals), f"{measure} {signal.label.lower()}",
                          signal.source)
                     for measure, figures in self.measures.items() for signal in figures.signals)
        return chips

    @property
    def course_status(self) -> str | None:
        """The current course's status in words ("Active"); None without a course."""
        status = self.summary.course_status
        return STATUS_LABELS[status] if status else None

    @property
    def more_alerts(self) -> int:
        """Open alerts beyond the most urgent one the row shows."""
        return max(0, len(self.alerts) - 1)


@dataclass
class DashboardPage:
    rows: list[DashboardRow]
    total: int
    page: int
    pages: int
    #: The headline measures' names, in order: a column each.
    measures: list[str] = field(default_factory=list)


def dashboard(session: Session, clinic_id: int, query: DashboardQuery, today: dt.date,
              zone: dt.tzinfo) -> DashboardPage:
    """One page of the clinic's patients, filtered, searched and sorted, with each one's
    open alerts described."""
    conditions = _conditions(clinic_id, query, today, zone)
    total = session.scalar(select(func.count()).select_from(PatientSummary)
                           .join(Patient, Patient.id == PatientSummary.patient_id)
                           .where(*conditions))
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, query.page), pages)
    # Each headline measure's row of the patient, if any, joined in: still one statement.
    headline = {measure: aliased(MeasureSummary, name=f"measure_{index}")
                for index, measure in enumerate(instruments.headline_measures())}
    statement: Select = select(PatientSummary, Patient, *headline.values()).join(
        Patient, Patient.id == PatientSummary.patient_id)
    for measure, row in headline.items():
        statement = statement.outerjoin(row, and_(row.patient_id == PatientSummary.patient_id,
                                                  row.measure == measure.name))
    statement = (statement.where(*conditions)
                 .order_by(*_order(query.sort, today, headline), Patient.id)
                 .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
    rows = [_row(summary, patient, dict(zip(headline, measures)), today)
            for summary, patient, *measures in session.execute(statement)]
    # Always asked, even for a page without alerts, so the statements do not grow with it.
    alerts = patients_open_alerts(session, [row.patient.id for row in rows])
    now = utcnow()
    for row in rows:
        row.alerts = describe(alerts.get(row.patient.id, []), now)
    return DashboardPage(rows=rows, total=total, page=page, pages=pages,
                         measures=[measure.name for measure in headline])


@dataclass(frozen=True)
class TriageCounts:
    crisis_alerts: int
    other_alerts: int
    overdue: int
    infusions_today: int
    #: Discharged patients (the dashboard hides them unless asked, or an alert is open).
    discharged: int


def triage_counts(session: Session, clinic_id: int, today: dt.date, zone: dt.tzinfo,
                  clinician_id: int | None = None) -> TriageCounts:
    """The counts at the top of the dashboard, in one statement: open crisis alerts, other
    open alerts, and the patients the "overdue", "infusion today" and "discharged" filters
    show (so a count and the list it links to always agree)."""
    def alerts(crisis: bool):
        return (open_alerts_statement(clinic_id, clinician_id).where(Alert.crisis.is_(crisis))
                .with_only_columns(func.count(Alert.id)).scalar_subquery())

    def patients(filter: str):
        query = DashboardQuery(filter=filter, clinician_id=clinician_id)
        return (select(func.count(PatientSummary.patient_id))
                .join(Patient, Patient.id == PatientSummary.patient_id)
                .where(*_conditions(clinic_id, query, today, zone)).scalar_subquery())

    row = session.execute(select(alerts(True), alerts(False), patients("overdue"),
                                 patients("infusion_today"), patients("discharged"))).one()
    return TriageCounts(*row)


def _conditions(clinic_id: int, query: DashboardQuery, today: dt.date,
                zone: dt.tzinfo) -> list:
    conditions = [PatientSummary.clinic_id == clinic_id]
    if query.filter == "discharged":
        conditions.append(Patient.discharged_at.is_not(None))
    else:
        # Discharged patients only when asked for, but never while an alert of theirs is open.
        conditions.append(or_(Patient.discharged_at.is_(None), PatientSummary.open_alerts > 0))
    if query.clinician_id is not None:
        conditions.append(Patient.assigned_clinician_id == query.clinician_id)
    if query.search.strip():
        pattern = "%" + _escape_like(query.search.strip().lower()) + "%"
        conditions.append(or_(func.lower(Patient.display_name).like(pattern, escape="\\"),
                              func.lower(Patient.identifier).like(pattern, escape="\\")))
    if query.filter == "alerts":
        conditions.append(PatientSummary.open_alerts > 0)
    elif query.filter == "overdue":
        conditions.append(PatientSummary.next_due_on < overdue_before(today))
    elif query.filter == "infusion_today":
        start, end = day_bounds(zone, today)
        conditions.append(and_(PatientSummary.next_infusion_at >= start,
                               PatientSummary.next_infusion_at < end))
    elif query.filter == "improving":
        conditions.append(_headline_row(MeasureSummary.improving.is_(True)))
    elif query.filter == "not_improving":
        conditions.append(and_(~_headline_row(MeasureSummary.improving.is_(True)),
                               _headline_row()))
    if query.course_status == "none":
        conditions.append(PatientSummary.course_status.is_(None))
    elif query.course_status in COURSE_STATUSES:
        conditions.append(PatientSummary.course_status == query.course_status)
    return conditions


def _headline_row(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """Whether the patient has a row of a headline measure (meeting ``conditions``)."""
    names = [measure.name for measure in instruments.headline_measures()]
    return exists().where(MeasureSummary.patient_id == PatientSummary.patient_id,
                          MeasureSummary.measure.in_(names), *conditions)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _order(sort: str, today: dt.date,
           headline: dict[instruments.Measure, AliasedClass[MeasureSummary]]) -> list:
    name = func.lower(Patient.display_name)
    if sort == "name":
        return [name]
    if sort == "identifier":
        return [Patient.identifier]
    by_change = {f"{measure.key}{CHANGE_SORT}": row for measure, row in headline.items()}
    if sort in by_change:
        row = by_change[sort]
        return [(row.latest - row.baseline).asc().nulls_last(), name]
    if sort == "activity":
        return [PatientSummary.last_activity_at.desc().nulls_last(), name]
    if sort == "next_infusion":
        return [PatientSummary.next_infusion_at.asc().nulls_last(), name]
    overdue = and_(PatientSummary.next_due_on.is_not(None),
                   PatientSummary.next_due_on < overdue_before(today))
    return [(PatientSummary.open_alerts > 0).desc(), overdue.desc(), name]


def _row(summary: PatientSummary, patient: Patient,
         measures: dict[instruments.Measure, MeasureSummary | None],
         today: dt.date) -> DashboardRow:
    row = DashboardRow(patient=patient, summary=summary)
    for measure, scores in measures.items():
        if scores is None:
            row.measures[measure.name] = MeasureFigures(None, None, None, None, None, None, [])
            continue
        change = percent = None
        signals: list[Signal] = []
        if scores.latest_at != scores.baseline_at:
            figures = instruments.change(measure.key, scores.baseline, scores.latest)
            change, percent = figures.change, figures.percent_change
            signals = change_signals(measure.key, scores.baseline, scores.latest)
        row.measures[measure.name] = MeasureFigures(scores.baseline, scores.reference_kind,
                                                    scores.latest, scores.latest_at,
                                                    change, percent, signals)
    if summary.next_due_on is not None:
        row.due = summary.next_due_on <= today
        row.overdue = summary.next_due_on < overdue_before(today)
    return row


def signal_legend() -> list[tuple[str, str, str, str]]:
    """Every change chip the dashboard can show: (measure, label, tone, source)."""
    legend = []
    for measure in instruments.headline_measures():
        for threshold in instruments.get(measure.key).change_thresholds:
            if threshold.signals != "status":
                legend.append((measure.name, threshold.label, signal_tone(threshold.signals),
                               threshold.source))
    return legend
