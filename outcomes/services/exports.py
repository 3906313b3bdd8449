"""CSV exports of a clinic's records, as generators that never hold more than a batch of rows.

``prepare_export`` checks what was asked for and resolves it to an ``ExportRequest``;
``export_rows`` streams the header and the rows of one kind from a single SQL statement;
``CsvStream`` turns rows into RFC 4180 bytes, neutralising every text cell against formula
injection. ``read_connection`` opens the connection an export reads through, apart from the
request's session. Every column of every kind is defined in docs/exports.md.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flask import current_app
from sqlalchemy import Select, create_engine, event, exists, func, select
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.orm import Session, aliased
from sqlalchemy.pool import NullPool

import instruments

from ..clock import clinic_zone, day_bounds, local_date, local_midnight
from ..database import set_statement_timeout
from .baseline import administered, choose_reference, measure_records, windows_from
from ..models import (
    Alert,
    Assessment,
    AssessmentAnswer,
    AuditEvent,
    Clinic,
    Course,
    Delivery,
    Infusion,
    InfusionVersion,
    Patient,
    User,
    as_utc,
)

#: Rows fetched from the database, and written to the CSV buffer, at a time.
BATCH_SIZE = 2000
#: Excel reads a CSV without a byte-order mark in the machine's legacy code page, which
#: garbles every accented name; with it, Excel, LibreOffice and Numbers all read UTF-8.
BOM = "\ufeff"
#: What a free-text cell holds in a de-identified export when the record had text there.
REMOVED = "[removed]"
#: How a spreadsheet could read a text cell as a formula: these as its first character
#: (after any spaces). A leading apostrophe makes the spreadsheet show the cell as text.
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n")


class ExportError(ValueError):
    """An export that cannot be made as asked, with a one-line reason."""


# --- What each column is, and what de-identification does with it --------------------------

KEEP = "keep"          # the value as stored
PATIENT = "patient"    # the clinic's identifier → a per-export pseudonym "P-…"
USER = "user"          # a staff or patient login (email) → a per-export pseudonym "U-…"
RECORD = "record"      # a database id → a per-export pseudonym (prefix per record type)
TIME = "time"          # a UTC time → whole days since the patient's first infusion
TEXT = "text"          # free text → "[removed]" when there was any, else empty
NAME = "name"          # a person's name → the column is left out


@dataclass(frozen=True)
class Column:
    name: str
    treatment: str = KEEP
    #: The pseudonym prefix of a RECORD column ("A" for an assessment id, ...).
    prefix: str = ""

    def heading(self, deidentified: bool) -> str:
        """The column's name in the header row; de-identified columns say what they hold."""
        if not deidentified:
            return self.name
        if self.treatment == TIME:
            return self.name.removesuffix("_at") + "_day"
        if self.treatment in (PATIENT, USER, RECORD):
            return self.name.removesuffix("_identifier").removesuffix("_id") + "_pseudonym"
        return self.name


def _columns(*specs: str | tuple[str, str] | tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(spec) if isinstance(spec, str) else Column(*spec) for spec in specs)


RESPONSE_COLUMNS = _columns(
    ("patient_identifier", PATIENT), ("patient_name", NAME), ("assessment_id", RECORD, "A"),
    "instrument_key", "instrument_version", ("administered_at", TIME), ("submitted_at", TIME),
    "source", "entered_by_role", ("entered_by", USER), "item_number", "item_id", "loinc_item_code",
    "value", "label", "loinc_answer_code")

SCORE_COLUMNS = _columns(
    ("patient_identifier", PATIENT), ("patient_name", NAME), ("assessment_id", RECORD, "A"),
    "instrument_key", "instrument_version", ("administered_at", TIME), ("submitted_at", TIME),
    "source", "entered_by_role", ("entered_by", USER), "scorable", "total", "prorated", "band",
    "band_label", "above_cutpoint", "provisional_diagnosis", "subscales", "flags",
    "missing_items", ("amends_assessment_id", RECORD, "A"), ("amendment_reason", TEXT),
    ("course_id", RECORD, "C"), "infusion_number", "days_since_first_infusion",
    ("reference_assessment_id", RECORD, "A"), "reference_kind", "reference_total",
    "change_from_reference")

VITALS = tuple(f"{name}_{when}" for when in ("before", "peak", "after")
               for name in ("systolic", "diastolic", "heart_rate", "spo2"))

INFUSION_COLUMNS = _columns(
    ("patient_identifier", PATIENT), ("patient_name", NAME), ("course_id", RECORD, "C"),
    "course_indication",
    ("infusion_id", RECORD, "I"), "infusion_number", "version", "current",
    ("administered_at", TIME), "weight_kg", "dose_mg_per_kg", "total_dose_mg",
    "duration_minutes", *VITALS, "side_effects", "dissociation_rating",
    ("adverse_events", TEXT), ("notes", TEXT), "recorded_by_role", ("recorded_by", USER),
    ("recorded_at", TIME), ("correction_reason", TEXT))

ALERT_COLUMNS = _columns(
    ("alert_id", RECORD, "L"), ("patient_identifier", PATIENT), ("patient_name", NAME),
    ("assessment_id", RECORD, "A"),
    "instrument_key", "kind", "value", "reason", "crisis", ("raised_at", TIME),
    ("acknowledged_at", TIME), "acknowledged_by_role", ("acknowledged_by", USER),
    ("acknowledgement_note", TEXT))

DELIVERY_COLUMNS = _columns(
    ("delivery_id", RECORD, "D"), "purpose", "channel", "recipient_kind",
    ("patient_identifier", PATIENT), ("alert_id", RECORD, "L"), "account_notice",
    "instrument_key", "schedule",
    ("occurrence_opens_at", TIME), "reminder_number", "status", "attempts", ("created_at", TIME),
    ("sent_at", TIME), ("failed_at", TIME), "last_error")

AUDIT_COLUMNS = _columns(
    ("event_id", RECORD, "E"), ("occurred_at", TIME), "actor_role", ("actor", USER),
    ("patient_identifier", PATIENT), ("patient_name", NAME), "action", "object_type",
    ("object_id", TEXT),
    "object_version", ("old_values", TEXT), ("new_values", TEXT), ("reason", TEXT),
    ("ip_address", TEXT), ("request_id", TEXT), ("details", TEXT), ("prev_hash", TEXT),
    ("row_hash", TEXT))


# --- The request --------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportRequest:
    """A checked export: what, for which clinic, with which filters. Plain values only, so it
    outlives the session it was resolved in (the rows are read through another connection)."""

    kind: str
    clinic_id: int
    timezone: str
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    patient_id: int | None = None
    instrument: str | None = None
    deidentified: bool = False

    @property
    def zone(self) -> dt.tzinfo:
        """The clinic's time zone: dates in filters and day counts are the clinic's."""
        return clinic_zone(self.timezone)

    def window(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The date range as UTC instants: from the start of ``date_from`` to the end of
        ``date_to``, both clinic-local days (the end is exclusive)."""
        return (local_midnight(self.zone, self.date_from) if self.date_from else None,
                day_bounds(self.zone, self.date_to)[1] if self.date_to else None)

    def audit_details(self, rows: int | None) -> dict[str, Any]:
        """What the audit trail keeps about this export (``rows`` None: not known yet)."""
        return {"kind": self.kind, "rows": rows, "deidentified": self.deidentified,
                "filters": {"from": self.date_from.isoformat() if self.date_from else None,
                            "to": self.date_to.isoformat() if self.date_to else None,
                            "patient_id": self.patient_id, "instrument": self.instrument}}


@dataclass(frozen=True)
class Kind:
    """One kind of export: what the form calls it, its columns, the statement that reads it,
    and how a row becomes cells (in column order). ``KINDS`` lists them all: the export form,
    the command line and the tests of docs/exports.md read it, so a new kind is one entry."""

    label: str
    columns: tuple[Column, ...]
    #: Which filters apply: a kind without instruments refuses an instrument filter.
    has_instrument: bool
    statement: Callable[[ExportRequest], Select[Any]]
    cells: Callable[[Row[Any], ExportRequest], Sequence[Any]]
    #: Cells that need more than the row, after ``cells``: made once per export from its
    #: connection, then asked row by row in order (``scores``: each record's reference).
    more_cells: Callable[[Connection, ExportRequest],
                         Callable[[Row[Any]], Sequence[Any]]] | None = None
    #: Only an admin may export it (the audit trail).
    admin_only: bool = False

    def offered_to(self, role: str) -> bool:
        """Whether ``role`` may export this kind (``system``: the command line)."""
        return not self.admin_only or role in ("admin", "system")


def kinds_for(role: str) -> list[str]:
    """The kinds ``role`` may export, in the order the form lists them."""
    return [key for key, kind in KINDS.items() if kind.offered_to(role)]


def prepare_export(session: Session, clinic: Clinic, kind: str, *, role: str,
                   date_from: dt.date | None = None, date_to: dt.date | None = None,
                   patient_identifier: str | None = None, instrument: str | None = None,
                   deidentified: bool = False) -> ExportRequest:
    """Check an export request and resolve the patient identifier within the clinic.

    ``role`` is the requester's (``system`` for the command line). Raises ExportError with a
    one-line reason for anything that cannot be exported as asked."""
    if kind not in KINDS:
        raise ExportError(f"Unknown export {kind!r}; choose one of {', '.join(KINDS)}.")
    if not KINDS[kind].offered_to(role):
        raise ExportError(f"Only an admin may export the {kind} trail.")
    if date_from and date_to and date_from > date_to:
        raise ExportError("The start date is after the end date.")
    if instrument:
        if not KINDS[kind].has_instrument:
            raise ExportError(f"The {kind} export cannot be filtered by questionnaire.")
        try:
            instruments.get(instrument)
        except instruments.UnknownInstrument:
            raise ExportError(f"Unknown questionnaire {instrument!r}.") from None
    patient_id = None
    if patient_identifier:
        patient_id = patient_id_for(session, clinic.id, patient_identifier)
        if patient_id is None:
            raise ExportError(f"No patient with identifier {patient_identifier!r} at this "
                              "clinic.")
    return ExportRequest(kind=kind, clinic_id=clinic.id, timezone=clinic.timezone,
                         date_from=date_from, date_to=date_to, patient_id=patient_id,
                         instrument=instrument or None, deidentified=deidentified)


def patient_id_for(session: Session, clinic_id: int, identifier: str | None) -> int | None:
    """The id of the clinic's patient with this clinic identifier, or None."""
    if not identifier:
        return None
    return session.scalar(select(Patient.id).where(Patient.clinic_id == clinic_id,
                                                   Patient.identifier == identifier))


# --- Reading ------------------------------------------------------------------------------

@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection to read one export through, apart from any request's session.

    On SQLite the app's engine opens every transaction with BEGIN IMMEDIATE (the write
    lock), which would stop every other request for the length of a large export. This
    connection comes from an engine of its own that opens no transaction: the export's one
    SELECT reads a consistent snapshot (WAL) and writers go on. ``query_only`` makes it
    refuse writes. On PostgreSQL it is a read-only transaction, so that a server-side cursor
    can stream the rows."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        # The app's engine puts the file in WAL mode when it connects; without WAL this
        # reader's lock would block writers after all.
        engine.connect().close()
        reader = create_engine(engine.url, poolclass=NullPool)
        event.listen(reader, "connect", _query_only)
        try:
            with reader.connect() as connection:
                yield connection
        finally:
            reader.dispose()
        return
    with engine.connect() as connection:
        reader = connection.execution_options(postgresql_readonly=True)
        # One statement reads the whole export: it may run longer than a page's may.
        set_statement_timeout(reader, current_app.config["DATABASE_EXPORT_STATEMENT_TIMEOUT"])
        yield reader


def _query_only(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.execute("PRAGMA query_only = ON")


def export_rows(connection: Connection, request: ExportRequest,
                batch: int = BATCH_SIZE) -> Iterator[Sequence[Any]]:
    """The header, then one list of cell values per row, read in batches of ``batch`` from a
    server-side cursor (PostgreSQL) or a stepping SQLite cursor: never all rows at once."""
    kind = KINDS[request.kind]
    private = Pseudonyms() if request.deidentified else None
    yield [column.heading(request.deidentified) for column in kind.columns
           if not (request.deidentified and column.treatment == NAME)]
    result = connection.execution_options(stream_results=True, yield_per=batch).execute(
        kind.statement(request))
    # After the rows' statement has begun, so that on SQLite both read one snapshot.
    more = kind.more_cells(connection, request) if kind.more_cells is not None else None
    for rows in result.partitions():
        for row in rows:
            cells = kind.cells(row, request)
            if more is not None:
                cells = [*cells, *more(row)]
            yield cells if private is None else private.apply(kind.columns, cells, row, request)


def _filtered(statement: Select[Any], request: ExportRequest, moment: Any,
              patient_id: Any, instrument_key: Any = None) -> Select[Any]:
    start, end = request.window()
    if start is not None:
        statement = statement.where(moment >= start)
    if end is not None:
        statement = statement.where(moment < end)
    if request.patient_id is not None:
        statement = statement.where(patient_id == request.patient_id)
    if request.instrument is not None and instrument_key is not None:
        statement = statement.where(instrument_key == request.instrument)
    return statement


def _latest_version() -> Any:
    """True for the latest version of each infusion record (a correction supersedes)."""
    later = aliased(InfusionVersion)
    return ~exists().where(later.infusion_id == InfusionVersion.infusion_id,
                           later.version > InfusionVersion.version)


def _first_infusions(clinic_id: int) -> Any:
    """Each of the clinic's patients' first infusion, as its latest version records it."""
    return (select(Course.patient_id.label("patient_id"),
                   func.min(InfusionVersion.administered_at).label("first_at"))
            .join(Patient, Patient.id == Course.patient_id)
            .join(Infusion, Infusion.course_id == Course.id)
            .join(InfusionVersion, InfusionVersion.infusion_id == Infusion.id)
            .where(Patient.clinic_id == clinic_id, _latest_version())
            .group_by(Course.patient_id).subquery("first_infusion"))


def _with_first_infusion(statement: Select[Any], request: ExportRequest, patient_id: Any,
                         needed: bool) -> Select[Any]:
    if not needed:
        return statement
    first = _first_infusions(request.clinic_id)
    return (statement.add_columns(first.c.first_at)
            .outerjoin(first, first.c.patient_id == patient_id))


def _responses_statement(request: ExportRequest) -> Select[Any]:
    statement = (
        select(Patient.id.label("patient_id"), Patient.identifier, Patient.display_name,
               Assessment.id, Assessment.instrument_key, Assessment.instrument_version,
               Assessment.administered_at, Assessment.submitted_at, Assessment.source,
               User.role, User.id.label("user_id"), User.email, AssessmentAnswer.item_number,
               AssessmentAnswer.value)
        .select_from(AssessmentAnswer)
        .join(Assessment, Assessment.id == AssessmentAnswer.assessment_id)
        .join(Patient, Patient.id == Assessment.patient_id)
        .join(User, User.id == Assessment.entered_by_id)
        .where(Patient.clinic_id == request.clinic_id)
        .order_by(Assessment.id, AssessmentAnswer.item_number))
    statement = _filtered(statement, request, Assessment.administered_at, Patient.id,
                          Assessment.instrument_key)
    return _with_first_infusion(statement, request, Patient.id, request.deidentified)


def _responses_cells(row: Row[Any], request: ExportRequest) -> Sequence[Any]:
    # By position: a million of these rows make attribute lookups by name show.
    (patient_id, identifier, name, assessment_id, key, version, administered, submitted,
     source, role, user_id, email, number, value) = row[:14]
    item_id, item_loinc, label, answer_loinc = _answer(key, number, value)
    return [(patient_id, identifier), name, assessment_id, key, version, administered,
            submitted, source, role, (user_id, email), number, item_id, item_loinc, value,
            label, answer_loinc]


@lru_cache(maxsize=4096)
def _answer(key: str, number: int, value: int) -> tuple[str | None, ...]:
    """An answer's item id, item LOINC code, option label and answer LOINC code, from the
    shipped definition (blank when the definition no longer has it)."""
    try:
        instrument = instruments.get(key)
    except instruments.UnknownInstrument:
        return None, None, None, None
    item = next((item for item in instrument.items if item.number == number), None)
    if item is None:
        return None, None, None, None
    option = next((option for option in item.options if option.value == value), None)
    return (item.id, item.loinc, option.label if option else None,
            option.loinc if option else None)


def _fields(model: Any, *names: str) -> list[Any]:
    """Columns of ``model`` labelled with their attribute names (rows are read by name)."""
    return [getattr(model, name).label(name) for name in names]


ASSESSMENT_FIELDS = ("instrument_key", "instrument_version", "administered_at", "submitted_at",
                     "source", "scorable", "total", "prorated", "band", "above_cutpoint",
                     "provisional_diagnosis", "subscales", "flags", "missing_items",
                     "amends_id", "amendment_reason")
VERSION_FIELDS = ("version", "administered_at", "weight_kg", "dose_mg_per_kg",
                  "total_dose_mg", "duration_minutes", *VITALS, "side_effects",
                  "dissociation_rating", "adverse_events", "notes", "recorded_at",
                  "correction_reason")


def _scores_statement(request: ExportRequest) -> Select[Any]:
    prior = (select(Infusion.id)
             .join(Course, Course.id == Infusion.course_id)
             .join(InfusionVersion, InfusionVersion.infusion_id == Infusion.id)
             .where(Course.patient_id == Assessment.patient_id, _latest_version(),
                    InfusionVersion.administered_at <= Assessment.administered_at)
             .order_by(InfusionVersion.administered_at.desc(), Infusion.id.desc())
             .limit(1).correlate(Assessment).scalar_subquery())
    given = aliased(Infusion)
    statement = (
        select(Patient.id.label("patient_id"), Patient.identifier, Patient.display_name,
               Assessment.id,
               *_fields(Assessment, *ASSESSMENT_FIELDS), User.role,
               User.id.label("user_id"), User.email, given.course_id,
               given.number.label("infusion_number"))
        .select_from(Assessment)
        .join(Patient, Patient.id == Assessment.patient_id)
        .join(User, User.id == Assessment.entered_by_id)
        .outerjoin(given, given.id == prior)
        .where(Patient.clinic_id == request.clinic_id)
        # By patient: each patient's references are read once, beside their rows.
        .order_by(Assessment.patient_id, Assessment.id))
    statement = _filtered(statement, request, Assessment.administered_at, Patient.id,
                          Assessment.instrument_key)
    return _with_first_infusion(statement, request, Patient.id, True)


def _scores_cells(row: Row[Any], request: ExportRequest) -> Sequence[Any]:
    return [(row.patient_id, row.identifier), row.display_name, row.id, row.instrument_key,
            row.instrument_version, row.administered_at, row.submitted_at, row.source,
            row.role, (row.user_id, row.email), row.scorable, row.total, row.prorated,
            row.band, _band_label(row.instrument_key, row.band), row.above_cutpoint,
            row.provisional_diagnosis, row.subscales, row.flags, row.missing_items,
            row.amends_id, row.amendment_reason, row.course_id, row.infusion_number,
            days_between(row.first_at, row.administered_at, request.zone)]


class _References:
    """Each ``scores`` row's reference (services.baseline, as the patient's pages show it),
    for rows that come ordered by patient.

    Two more statements stream beside the rows, in the same patient order: every current
    scorable record of a validated questionnaire, and each course's first infusion. At each
    new patient the next groups are taken from them, so one patient's history is in memory
    at a time, and the work is the same three statements whatever the number of rows. The
    reference is taken from the patient's whole history, whatever the filters."""

    def __init__(self, connection: Connection, request: ExportRequest) -> None:
        streaming = connection.execution_options(stream_results=True, yield_per=BATCH_SIZE)
        self.records = _ByPatient(streaming.execute(_current_records_statement(request)))
        self.firsts = _ByPatient(streaming.execute(_course_firsts_statement(request)))
        self.zone = request.zone
        self.patient_id: int | None = None
        self.current: set[int] = set()
        self.by_measure: dict[str, list[Row[Any]]] = {}
        self.windows: list[Any] = []

    def __call__(self, row: Row[Any]) -> Sequence[Any]:
        if row.patient_id != self.patient_id:
            self._read_patient(row.patient_id)
        if row.id not in self.current:  # replaced, not scorable, or not a validated measure
            return [None, None, None, None]
        measure = instruments.get(row.instrument_key).measure
        reference = choose_reference(self.by_measure[measure], administered, self.windows,
                                     row.administered_at)
        start = reference.record
        # A record that is its own reference (the first score, a baseline) changes from nothing.
        change = row.total - start.total if start.id != row.id else None
        return [start.id, reference.kind, start.total, change]

    def _read_patient(self, patient_id: int) -> None:
        self.patient_id = patient_id
        records = self.records.of(patient_id)
        self.current = {record.id for record in records}
        self.by_measure = {measure: measure_records(records, measure)
                           for measure in {instruments.get(r.instrument_key).measure
                                           for r in records}}
        self.windows = windows_from((as_utc(first.first_at)
                                     for first in self.firsts.of(patient_id)), self.zone)


class _ByPatient:
    """The rows of a statement ordered by patient, one patient's at a time, asked for in
    increasing patient order."""

    def __init__(self, rows: Iterable[Row[Any]]) -> None:
        self.groups = itertools.groupby(rows, key=lambda row: row.patient_id)
        self.next = next(self.groups, None)

    def of(self, patient_id: int) -> list[Row[Any]]:
        """The rows of ``patient_id`` (none when the statement has none of theirs)."""
        while self.next is not None and self.next[0] < patient_id:
            self.next = next(self.groups, None)
        if self.next is None or self.next[0] != patient_id:
            return []
        return list(self.next[1])


def _with_patient_filter(statement: Select[Any], request: ExportRequest,
                         patient_id: Any) -> Select[Any]:
    statement = statement.join(Patient, Patient.id == patient_id).where(
        Patient.clinic_id == request.clinic_id)
    if request.patient_id is not None:
        statement = statement.where(patient_id == request.patient_id)
    return statement.order_by(patient_id)


def _current_records_statement(request: ExportRequest) -> Select[Any]:
    """The clinic's current scorable records of validated questionnaires (of the filtered
    questionnaire's measure only, when filtered), by patient: the rule's candidates."""
    chosen = [instrument for instrument in instruments.all() if instrument.validated]
    if request.instrument is not None:
        measure = instruments.get(request.instrument).measure
        chosen = [instrument for instrument in chosen if instrument.measure == measure]
    correction = aliased(Assessment)
    statement = (select(Assessment.patient_id, Assessment.id, Assessment.instrument_key,
                        Assessment.administered_at, Assessment.total, Assessment.scorable)
                 .where(Assessment.scorable.is_(True),
                        Assessment.instrument_key.in_([i.key for i in chosen]),
                        ~exists().where(correction.amends_id == Assessment.id)))
    return _with_patient_filter(statement, request, Assessment.patient_id)


def _course_firsts_statement(request: ExportRequest) -> Select[Any]:
    """Each course's first infusion (as its infusions' latest versions record them), by
    patient."""
    statement = (select(Course.patient_id, func.min(InfusionVersion.administered_at)
                        .label("first_at"))
                 .join(Infusion, Infusion.course_id == Course.id)
                 .join(InfusionVersion, InfusionVersion.infusion_id == Infusion.id)
                 .where(_latest_version())
                 .group_by(Course.patient_id, Course.id))
    return _with_patient_filter(statement, request, Course.patient_id)


@lru_cache(maxsize=256)
def _band_label(key: str, band: str | None) -> str | None:
    if band is None:
        return None
    try:
        bands = instruments.get(key).bands
    except instruments.UnknownInstrument:
        return None
    return next((candidate.label for candidate in bands if candidate.key == band), None)


def _infusions_statement(request: ExportRequest) -> Select[Any]:
    statement = (
        select(Patient.id.label("patient_id"), Patient.identifier, Patient.display_name,
               Course.id.label("course_id"),
               Course.indication, Infusion.id.label("infusion_id"), Infusion.number,
               _latest_version().label("current"), *_fields(InfusionVersion, *VERSION_FIELDS),
               User.role, User.id.label("user_id"), User.email)
        .select_from(InfusionVersion)
        .join(Infusion, Infusion.id == InfusionVersion.infusion_id)
        .join(Course, Course.id == Infusion.course_id)
        .join(Patient, Patient.id == Course.patient_id)
        .join(User, User.id == InfusionVersion.recorded_by_id)
        .where(Patient.clinic_id == request.clinic_id)
        .order_by(Patient.id, Course.id, Infusion.number, InfusionVersion.version))
    statement = _filtered(statement, request, InfusionVersion.administered_at, Patient.id)
    return _with_first_infusion(statement, request, Patient.id, request.deidentified)


def _infusions_cells(row: Row[Any], request: ExportRequest) -> Sequence[Any]:
    return [(row.patient_id, row.identifier), row.display_name, row.course_id, row.indication, row.infusion_id,
            row.number, row.version, bool(row.current), row.administered_at, row.weight_kg,
            row.dose_mg_per_kg, row.total_dose_mg, row.duration_minutes,
            *(getattr(row, name) for name in VITALS), ";".join(row.side_effects or ()),
            row.dissociation_rating, row.adverse_events, row.notes, row.role,
            (row.user_id, row.email), row.recorded_at, row.correction_reason]


ALERT_FIELDS = ("id", "assessment_id", "instrument_key", "kind", "value", "reason", "crisis",
                "raised_at", "acknowledged_at", "acknowledgement_note")


def _alerts_statement(request: ExportRequest) -> Select[Any]:
    acknowledger = aliased(User)
    statement = (
        select(*_fields(Alert, *ALERT_FIELDS), Patient.id.label("patient_id"),
               Patient.identifier, Patient.display_name, acknowledger.role,
               acknowledger.id.label("user_id"), acknowledger.email)
        .select_from(Alert)
        .join(Patient, Patient.id == Alert.patient_id)
        .outerjoin(acknowledger, acknowledger.id == Alert.acknowledged_by_id)
        .where(Patient.clinic_id == request.clinic_id)
        .order_by(Alert.id))
    # The alert's own questionnaire: one raised from a form sent incomplete has no record.
    statement = _filtered(statement, request, Alert.raised_at, Patient.id, Alert.instrument_key)
    return _with_first_infusion(statement, request, Patient.id, request.deidentified)


def _alerts_cells(row: Row[Any], request: ExportRequest) -> Sequence[Any]:
    acknowledger = (row.user_id, row.email) if row.user_id is not None else None
    return [row.id, (row.patient_id, row.identifier), row.display_name, row.assessment_id,
            row.instrument_key,
            row.kind, row.value, row.reason, row.crisis, row.raised_at, row.acknowledged_at,
            row.role, acknowledger, row.acknowledgement_note]


DELIVERY_FIELDS = ("id", "purpose", "channel", "alert_id", "account_notice", "instrument_key",
                   "schedule",
                   "occurrence_opens_at", "reminder_number", "status", "attempts", "created_at",
                   "sent_at", "failed_at", "last_error")


def _deliveries_statement(request: ExportRequest) -> Select[Any]:
    # The patient a message is about: a reminder's recipient, the patient of the alert, or
    # the patient whose own account an account notice is about.
    owner = aliased(Patient)
    about = func.coalesce(Delivery.patient_id, Alert.patient_id, owner.id)
    statement = (
        select(*_fields(Delivery, *DELIVERY_FIELDS), Delivery.patient_id.label("recipient_id"),
               owner.id.label("owner_id"), Delivery.user_id, about.label("patient_id"),
               Patient.identifier)
        .select_from(Delivery)
        .outerjoin(Alert, Alert.id == Delivery.alert_id)
        .outerjoin(owner, owner.user_id == Delivery.user_id)
        .outerjoin(Patient, Patient.id == about)
        .where(Delivery.clinic_id == request.clinic_id)
        .order_by(Delivery.id))
    statement = _filtered(statement, request, Delivery.created_at, about)
    return _with_first_infusion(statement, request, about, request.deidentified)


def _deliveries_cells(row: Row[Any], request: ExportRequest) -> Sequence[Any]:
    patient = (row.patient_id, row.identifier) if row.patient_id is not None else None
    recipient = ("patient" if row.recipient_id is not None or row.owner_id is not None
                 else "staff" if row.user_id is not None else "on_call")
    return [row.id, row.purpose, row.channel, recipient, patient, row.alert_id,
            row.account_notice, row.instrument_key, row.schedule, row.occurrence_opens_at, row.reminder_number,
            row.status, row.attempts, row.created_at, row.sent_at, row.failed_at,
            row.last_error]


AUDIT_FIELDS = ("id", "occurred_at", "actor_id", "actor_role", "patient_id", "action",
                "object_type", "object_id", "object_version", "old_values", "new_values",
                "reason", "ip_address", "request_id", "details", "prev_hash", "row_hash")


def _audit_statement(request: ExportRequest) -> Select[Any]:
    actor = aliased(User)
    statement = (
        select(*_fields(AuditEvent, *AUDIT_FIELDS), Patient.identifier, Patient.display_name,
               actor.email)
        .select_from(AuditEvent)
        .outerjoin(Patient, Patient.id == AuditEvent.patient_id)
        .outerjoin(actor, actor.id == AuditEvent.actor_id)
        .where(AuditEvent.clinic_id == request.clinic_id)
        .order_by(AuditEvent.id))
    statement = _filtered(statement, request, AuditEvent.occurred_at, AuditEvent.patient_id)
    return _with_first_infusion(statement, request, AuditEvent.patient_id,
                                request.deidentified)


def _audit_cells(row: Row[Any], request: ExportRequest) -> Sequence[Any]:
    patient = (row.patient_id, row.identifier) if row.patient_id is not None else None
    actor = (row.actor_id, row.email) if row.actor_id is not None else None
    return [row.id, row.occurred_at, row.actor_role, actor, patient, row.display_name,
            row.action,
            row.object_type, row.object_id, row.object_version, row.old_values,
            row.new_values, row.reason, row.ip_address, row.request_id, row.details,
            row.prev_hash, row.row_hash]


KINDS: dict[str, Kind] = {
    "responses": Kind("Responses: one row per answered item", RESPONSE_COLUMNS,
                      has_instrument=True, statement=_responses_statement,
                      cells=_responses_cells),
    "scores": Kind("Scores: one row per questionnaire", SCORE_COLUMNS, has_instrument=True,
                   statement=_scores_statement, cells=_scores_cells, more_cells=_References),
    "infusions": Kind("Infusions: one row per version of each infusion record",
                      INFUSION_COLUMNS, has_instrument=False, statement=_infusions_statement,
                      cells=_infusions_cells),
    "alerts": Kind("Alerts: raised and acknowledged", ALERT_COLUMNS, has_instrument=True,
                   statement=_alerts_statement, cells=_alerts_cells),
    "deliveries": Kind("Deliveries: one row per message sent or queued", DELIVERY_COLUMNS,
                       has_instrument=False, statement=_deliveries_statement,
                       cells=_deliveries_cells),
    "audit": Kind("Audit trail (admins only)", AUDIT_COLUMNS, has_instrument=False,
                  statement=_audit_statement, cells=_audit_cells, admin_only=True),
}


def days_between(first: dt.datetime | str | None, moment: dt.datetime | None,
                 zone: dt.tzinfo) -> int | None:
    """Calendar days (in the clinic's zone) from the first infusion to ``moment``: 0 on the
    day of the first infusion, negative before it; None without an infusion or a moment."""
    if first is None or moment is None:
        return None
    return (local_date(moment, zone) - local_date(as_utc(first), zone)).days


# --- De-identification --------------------------------------------------------------------

@dataclass
class Pseudonyms:
    """Per-export pseudonyms: an HMAC of the record's id under a random key made for this
    export and never stored, so they are stable within the export and unlinkable across
    exports (and cannot be reversed by anyone, the clinic included)."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def of(self, prefix: str, record_id: int) -> str:
        """``prefix-`` and 12 hex digits (48 bits: a collision among a million records has a
        chance below 1 in 500)."""
        digest = hmac.new(self.key, f"{prefix}:{record_id}".encode(), hashlib.sha256)
        return f"{prefix}-{digest.hexdigest()[:12]}"

    def apply(self, columns: Sequence[Column], cells: Sequence[Any], row: Row[Any],
              request: ExportRequest) -> list[Any]:
        """The row's cells with every identifying value replaced (see docs/exports.md)."""
        first = row.first_at
        out = []
        for column, value in zip(columns, cells):
            if column.treatment == NAME:
                continue
            if value is None or column.treatment == KEEP:
                out.append(value)
            elif column.treatment == PATIENT:
                out.append(self.of("P", value[0]))
            elif column.treatment == USER:
                out.append(self.of("U", value[0]))
            elif column.treatment == RECORD:
                out.append(self.of(column.prefix, value))
            elif column.treatment == TIME:
                out.append(days_between(first, value, request.zone))
            else:  # TEXT: no free text survives, but the reader learns there was some
                out.append(REMOVED if value not in ("", {}, []) else None)
        return out


# --- Writing ------------------------------------------------------------------------------

def neutralise(text: str) -> str:
    """A text cell that no spreadsheet will run: one whose first character (after any
    leading spaces) could start a formula gets a leading apostrophe."""
    if text[:1].isalnum():  # most cells: nothing to look at
        return text
    for character in text:
        if character in FORMULA_TRIGGERS:
            return "'" + text
        if not character.isspace():
            return text
    return text


@lru_cache(maxsize=1024)  # an assessment's times repeat on each of its item rows
def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def cell(value: Any) -> Any:
    """One value as it goes into the CSV: numbers stay numbers; everything else becomes
    text (times in ISO 8601 UTC, true/false, JSON for structures) and is neutralised."""
    kind = type(value)
    if kind is str:
        return value if value[:1].isalnum() else neutralise(value)
    if kind is int or kind is float:
        return value
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if kind is tuple:  # (id, identifier or email): identified mode shows the text
        value = value[1]
    elif isinstance(value, dt.datetime):
        value = _iso(value)
    elif isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return neutralise(str(value))


class CsvStream:
    """The rows as RFC 4180 CSV (UTF-8 with a byte-order mark, CRLF line ends), yielded as
    bytes a batch at a time. ``rows_written`` counts data rows (not the header) so far."""

    def __init__(self, rows: Iterable[Sequence[Any]], batch: int = 500) -> None:
        self.rows = rows
        self.batch = batch
        self.rows_written = 0

    def __iter__(self) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        buffer.write(BOM)
        pending = -1  # the header is not a data row
        for row in self.rows:
            writer.writerow(map(cell, row))
            pending += 1
            if pending >= self.batch:
                self.rows_written += pending
                pending = 0
                yield _drain(buffer)
        self.rows_written += max(pending, 0)
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data
