"""CSV exports: columns, filters, access, audit, formula injection, RFC 4180, de-identification,
streaming and the command line."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import select, text

from outcomes.extensions import db
from outcomes.models import (
    Alert,
    Assessment,
    AuditEvent,
    Course,
    Infusion,
    InfusionVersion,
    Patient,
    utcnow,
)
from outcomes.exports.forms import csv_export_form
from outcomes.services import exports, fhir_export
from outcomes.services.assessments import submit_assessment
from outcomes.services.audit import Actor
from outcomes.services.courses import (
    correct_infusion,
    version_values,
)

from .conftest import sign_in
from .helpers import INFUSION_VALUES, RECORDS_LATE, RECORDS_T0, as_dicts, parse, post_export

UTC = dt.timezone.utc
T0, LATE = RECORDS_T0, RECORDS_LATE  # the times of the ``records`` fixture
DOCS = Path(__file__).resolve().parent.parent / "docs" / "exports.md"
#: Every character that can start a formula, bare and after spaces.
TRIGGERS = ["=", "+", "-", "@", "\t", "\r", "\n"]
PAYLOADS = [f"{spaces}{trigger}HYPERLINK(\"http://x.invalid\")"
            for trigger in TRIGGERS for spaces in ("", " ", "   ")]


@pytest.fixture
def admin(factory, world):
    return factory.staff(world.clinic, "admin")


def audit_events(session, action):
    return session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(AuditEvent.id)).all()


# --- Columns -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(exports.KINDS))
def test_each_kind_has_its_columns_and_the_guide_defines_every_one(client, admin, records,
                                                                   kind):
    sign_in(client, admin)
    columns = exports.KINDS[kind].columns
    for deidentified in (False, True):
        response = post_export(client, kind=kind, deidentified=deidentified)
        assert response.status_code == 200
        header = parse(response.data)[0]
        assert header == [column.heading(deidentified) for column in columns
                          if not (deidentified and column.treatment == exports.NAME)]
    guide = DOCS.read_text()
    section = guide.split(f"## `{kind}`")[1].split("\n## ")[0]
    for column in columns:
        for name in {column.name, column.heading(True)}:
            assert f"`{name}`" in section, f"docs/exports.md does not define {kind}.{name}"


def test_the_form_the_command_line_and_the_guide_offer_the_registered_kinds(app, runner):
    # One entry in exports.KINDS is the whole of a kind: nothing else lists the kinds.
    with app.test_request_context():
        offered = {role: [(choice.value, choice.label) for choice in
                          csv_export_form(role, "UTC").kind.choices]
                   for role in ("clinician", "admin")}
    labels = [(key, kind.label) for key, kind in exports.KINDS.items()]
    assert offered == {"admin": labels, "clinician": [c for c in labels if c[0] != "audit"]}
    help_text = " ".join(runner.invoke(args=["export", "--help"]).output.split())
    assert f"{', '.join(exports.KINDS)} as CSV, or {fhir_export.KIND} " in help_text
    guide = DOCS.read_text()
    listed = re.search(r"`KIND` is (.*?)\. The file", guide, re.DOTALL).group(1)
    assert re.findall(r"`([a-z]+)`", listed) == list(exports.KINDS)
    assert re.findall(r"^## `([a-z]+)`$", guide, re.MULTILINE) == list(exports.KINDS)
    assert f"export {fhir_export.KIND} --clinic" in guide


def test_responses_show_every_answer_with_who_entered_it(client, world, records):
    sign_in(client, world.clinician)
    rows = as_dicts(post_export(client, kind="responses").data)
    assert len(rows) == 9 + 7 + 9  # answered items only; the other clinic's are absent
    assert {row["patient_identifier"] for row in rows} == {world.patient.identifier}
    first = rows[0]
    assert first == {
        "patient_identifier": world.patient.identifier, "patient_name": "Pat Example",
        "assessment_id": str(records.phq9_id), "instrument_key": "phq9",
        "instrument_version": "1.0", "administered_at": "2025-06-02T15:00:00Z",
        "submitted_at": first["submitted_at"], "source": "patient", "entered_by_role": "patient",
        "entered_by": world.patient_user.email, "item_number": "1", "item_id": "q1",
        "loinc_item_code": "44250-9", "value": "1", "label": "Several days",
        "loinc_answer_code": "LA6569-3"}
    gad7 = [row for row in rows if row["instrument_key"] == "gad7"]
    assert {(row["source"], row["entered_by_role"], row["entered_by"]) for row in gad7} == {
        ("transcribed", "clinician", world.clinician.email)}


def test_scores_infusions_and_alerts_carry_their_clinical_fields(client, world, records):
    sign_in(client, world.clinician)
    scores = {row["assessment_id"]: row for row in as_dicts(
        post_export(client, kind="scores").data)}
    baseline, gad7 = scores[str(records.phq9_id)], scores[str(records.gad7_id)]
    assert (baseline["total"], baseline["band"], baseline["band_label"]) == ("9", "mild", "Mild")
    assert baseline["flags"] == '{"suicide_risk":"positive"}'
    assert (baseline["course_id"], baseline["infusion_number"]) == ("", "")
    assert baseline["days_since_first_infusion"] == "-2"
    assert (gad7["course_id"], gad7["infusion_number"]) == (str(records.course_id), "1")
    assert gad7["days_since_first_infusion"] == "3"

    infusion, = as_dicts(post_export(client, kind="infusions").data)
    assert (infusion["version"], infusion["current"], infusion["weight_kg"],
            infusion["total_dose_mg"], infusion["side_effects"], infusion["notes"],
            infusion["recorded_by"]) == ("1", "true", "80.5", "40.25", "dissociation;nausea",
                                         "Calm, tolerated", world.clinician.email)

    alert, = as_dicts(post_export(client, kind="alerts").data)
    assert (alert["kind"], alert["value"], alert["crisis"], alert["instrument_key"]) == (
        "suicide_risk", "positive", "true", "phq9")
    assert (alert["acknowledged_by"], alert["acknowledgement_note"]) == (
        world.clinician.email, "Called the patient; safe plan")


REFERENCE = ("reference_assessment_id", "reference_kind", "reference_total",
             "change_from_reference")


def test_scores_carry_each_records_reference_whatever_the_filters(client, world, records,
                                                                  session):
    """The PHQ-9 two days before the first infusion is the course's baseline; the late one is
    compared with it; the GAD-7 (after the first infusion, none before) is its own first
    score. A filter leaves the reference where the patient's history puts it."""
    sign_in(client, world.clinician)
    scores = {row["assessment_id"]: row for row in as_dicts(
        post_export(client, kind="scores").data)}
    baseline = str(records.phq9_id)
    assert [scores[baseline][c] for c in REFERENCE] == [baseline, "baseline", "9", ""]
    assert [scores[str(records.late_id)][c] for c in REFERENCE] == [
        baseline, "baseline", "9", "-9"]
    assert [scores[str(records.gad7_id)][c] for c in REFERENCE] == [
        str(records.gad7_id), "since first", "14", ""]
    late, = as_dicts(post_export(client, kind="scores", date_from="2025-06-10",
                                 instrument="phq9").data)
    assert [late[c] for c in REFERENCE] == [baseline, "baseline", "9", "-9"]


def test_a_corrected_reference_counts_with_its_correction(client, world, records, factory,
                                                          session):
    correction = factory.assessment(world.patient, "phq9", [2] * 9, at=T0, by=world.clinician,
                                    amends=session.get(Assessment, records.phq9_id))
    sign_in(client, world.clinician)
    scores = {row["assessment_id"]: row for row in as_dicts(
        post_export(client, kind="scores").data)}
    assert [scores[str(records.phq9_id)][c] for c in REFERENCE] == ["", "", "", ""]
    assert [scores[str(records.late_id)][c] for c in REFERENCE] == [
        str(correction.id), "baseline", "18", "-18"]


def test_deidentified_references_point_at_the_same_pseudonyms(client, world, records):
    sign_in(client, world.clinician)
    rows = as_dicts(post_export(client, kind="scores", deidentified=True).data)
    baseline = next(row for row in rows if row["administered_day"] == "-2")
    late = next(row for row in rows if row["total"] == "0")
    assert late["reference_assessment_pseudonym"] == baseline["assessment_pseudonym"]
    assert (late["reference_kind"], late["reference_total"], late["change_from_reference"]) \
        == ("baseline", "9", "-9")


def test_every_version_of_an_infusion_is_a_row(client, world, records, session):
    infusion = session.scalars(select(Infusion)).one()
    correct_infusion(session, Actor(world.clinician), infusion,
                     {**version_values(infusion.current), "weight_kg": 81.0,
                      "total_dose_mg": 40.5}, "Weight misread")
    session.commit()
    sign_in(client, world.clinician)
    rows = as_dicts(post_export(client, kind="infusions").data)
    assert [(row["version"], row["current"], row["weight_kg"], row["correction_reason"])
            for row in rows] == [("1", "false", "80.5", ""),
                                 ("2", "true", "81.0", "Weight misread")]


# --- Filters -------------------------------------------------------------------------------

def test_dates_are_clinic_days_and_include_the_whole_last_day(client, world, records):
    sign_in(client, world.clinician)

    def ids(**filters):
        rows = as_dicts(post_export(client, kind="scores", **filters).data)
        return {int(row["assessment_id"]) for row in rows}

    # LATE is 19 June in New York though 20 June in UTC.
    assert records.late_id in ids(date_from="2025-06-19", date_to="2025-06-19")
    assert ids(date_from="2025-06-20") == set()
    assert ids(date_to="2025-06-02") == {records.phq9_id}
    assert ids(date_from="2025-06-03", date_to="2025-06-18") == {records.gad7_id}


def test_patient_and_instrument_filters(client, world, factory, records):
    sign_in(client, world.clinician)
    factory.patient(world.clinic, world.clinician, identifier="MRN-QUIET")
    rows = as_dicts(post_export(client, kind="responses", instrument="gad7").data)
    assert {row["instrument_key"] for row in rows} == {"gad7"} and len(rows) == 7
    assert as_dicts(post_export(client, kind="scores", patient="MRN-QUIET").data) == []
    alerts = as_dicts(post_export(client, kind="alerts", instrument="gad7").data)
    assert alerts == []


@pytest.mark.parametrize("fields, message", [
    ({"patient": "MRN-NOBODY"}, b"No patient with identifier"),
    ({"date_from": "2025-06-10", "date_to": "2025-06-01"}, b"start date is after"),
    ({"kind": "infusions", "instrument": "phq9"}, b"cannot be filtered by questionnaire"),
    ({"instrument": "nonsense"}, b"Not a valid choice"),
])
def test_a_filter_that_cannot_apply_is_refused_and_nothing_is_exported(
        client, world, records, session, fields, message):
    sign_in(client, world.clinician)
    response = post_export(client, **fields)
    assert response.status_code == 422 and message in response.data
    assert response.mimetype == "text/html"
    assert audit_events(session, "export.csv") == []


def test_another_clinics_patient_cannot_be_named_in_a_filter(client, world, records):
    sign_in(client, world.clinician)
    response = post_export(client, patient=world.other_patient.identifier)
    assert response.status_code == 422


# --- Access and audit ----------------------------------------------------------------------

def test_patients_and_strangers_cannot_export(client, world, records):
    assert client.get("/exports/").status_code == 302  # to the sign-in page
    assert post_export(client).status_code == 302
    sign_in(client, world.patient_user)
    assert client.get("/exports/").status_code == 404
    assert post_export(client).status_code == 404


def test_only_admins_export_the_audit_trail(client, world, admin, records):
    sign_in(client, world.clinician)
    assert b'value="audit"' not in client.get("/exports/").data
    assert post_export(client, kind="audit").status_code == 404
    client.post("/logout")
    sign_in(client, admin)
    assert b'value="audit"' in client.get("/exports/").data
    rows = as_dicts(post_export(client, kind="audit").data)
    assert {"patient.enrol", "infusion.record"} <= {row["action"] for row in rows}
    assert all(row["event_id"].isdigit() and len(row["row_hash"]) == 64 for row in rows)


def test_the_audit_export_holds_this_clinics_events_only(client, world, admin, records,
                                                          session):
    sign_in(client, admin)
    rows = as_dicts(post_export(client, kind="audit").data)
    ids = {int(row["event_id"]) for row in rows}
    own = set(session.scalars(select(AuditEvent.id).where(
        AuditEvent.clinic_id == world.clinic.id)))
    assert ids <= own and world.other_patient.identifier not in {
        row["patient_identifier"] for row in rows}


def test_each_export_is_audited_with_its_filters_before_it_streams(client, world, records,
                                                                   session):
    sign_in(client, world.clinician)
    response = post_export(client, kind="scores", patient=world.patient.identifier,
                           instrument="phq9", date_from="2025-06-01", deidentified=True)
    assert response.status_code == 200
    event, = audit_events(session, "export.csv")
    assert (event.actor_id, event.actor_role, event.clinic_id, event.patient_id) == (
        world.clinician.id, "clinician", world.clinic.id, world.patient.id)
    assert event.details == {
        "kind": "scores", "rows": None, "deidentified": True,
        "filters": {"from": "2025-06-01", "to": None, "patient_id": world.patient.id,
                    "instrument": "phq9"}}
    assert event.request_id == response.headers["X-Request-ID"]


def test_the_download_is_named_without_health_data(client, world, records):
    sign_in(client, world.clinician)
    response = post_export(client, kind="responses", patient=world.patient.identifier)
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="outcomes-responses-\d{8}T\d{6}Z\.csv"',
                        disposition), disposition
    assert response.mimetype == "text/csv" and response.headers["Cache-Control"] == "no-store"


# --- Formula injection and RFC 4180 --------------------------------------------------------

@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_text_cell_that_could_start_a_formula_gets_an_apostrophe(payload):
    assert exports.cell(payload) == "'" + payload


@pytest.mark.parametrize("value, expected", [
    (0, 0), (-3, -3), (12, 12), (80.5, 80.5), (-0.25, -0.25), (True, "true"), (None, ""),
    ("Several days", "Several days"), ("  plain", "  plain"), ("-", "'-"), ("", ""),
    ("MRN-1", "MRN-1"), ({"a": "=1"}, '{"a":"=1"}'), (["x"], '["x"]'),
    (dt.datetime(2025, 6, 2, 15, tzinfo=UTC), "2025-06-02T15:00:00Z"),
])
def test_numbers_stay_numbers_and_other_text_is_untouched(value, expected):
    assert exports.cell(value) == expected


@pytest.fixture
def hostile(world, session):
    """Records whose text fields carry the whole payload table, written as a careless import
    might (the app's own forms strip leading whitespace)."""
    patients = []
    for index, payload in enumerate(PAYLOADS):
        patient = Patient(clinic_id=world.clinic.id, identifier=f"{payload}{index}",
                          display_name=payload)
        session.add(patient)
        patients.append(patient)
    session.flush()
    course = Course(patient_id=patients[0].id, indication="other", planned_infusions=6,
                    start_date=T0.date(), status="active", created_by_id=world.clinician.id)
    session.add(course)
    session.flush()
    for number, payload in enumerate(PAYLOADS, start=1):
        infusion = Infusion(course_id=course.id, number=number)
        session.add(infusion)
        session.flush()
        session.add(InfusionVersion(
            infusion_id=infusion.id, version=1, recorded_by_id=world.clinician.id,
            administered_at=T0 + dt.timedelta(days=number), **INFUSION_VALUES, notes=payload, adverse_events=f'He said "{payload}", then left,\r\nfine'))
    session.commit()
    return patients


def test_the_payload_table_comes_out_inert_from_a_real_export(client, world, hostile):
    sign_in(client, world.clinician)
    body = post_export(client, kind="infusions").data
    rows = as_dicts(body)
    assert len(rows) == len(PAYLOADS)
    for row, payload in zip(rows, PAYLOADS):
        assert row["notes"] == "'" + payload
        assert row["adverse_events"] == f'He said "{payload}", then left,\r\nfine'
    assert rows[0]["patient_identifier"] == "'" + PAYLOADS[0] + "0"
    assert rows[0]["patient_name"] == "'" + PAYLOADS[0]
    text_body = body.decode("utf-8-sig")
    # Numbers are bare numbers: never quoted, never prefixed.
    assert ",80.5,0.5,40.25,40,122,78,72,98,140,90,84,97,126,80,74,98," in text_body
    for line in text_body.split("\r\n")[1:]:
        assert not re.search(r'(^|,)"?[ ]*[=+\-@]', line.replace(",'", ",")), line


def test_every_text_cell_of_every_kind_is_inert(client, world, admin, hostile):
    sign_in(client, admin)
    for kind in exports.KINDS:
        for row in parse(post_export(client, kind=kind).data)[1:]:
            for value in row:
                stripped = value.lstrip(" ")
                if stripped[:1] in exports.FORMULA_TRIGGERS:
                    assert re.fullmatch(r"-?\d+(\.\d+)?", value), (kind, value)


def test_quoting_round_trips_through_csv_reader(client, world, hostile):
    sign_in(client, world.clinician)
    body = post_export(client, kind="infusions").data
    assert body.count(b"\r\n") >= len(PAYLOADS) + 1 and b"\n\n" not in body
    rows = parse(body)
    assert {len(row) for row in rows} == {len(rows[0])}
    assert rows[1][rows[0].index("adverse_events")] == \
        f'He said "{PAYLOADS[0]}", then left,\r\nfine'


# --- De-identification ---------------------------------------------------------------------

def test_deidentified_exports_leak_no_name_identifier_email_date_or_note(
        client, world, admin, records, session):
    sign_in(client, admin)
    secrets_ = [world.patient.identifier, "Pat Example", world.patient_user.email,
                world.clinician.email, admin.email, "Called the patient", "Calm, tolerated",
                world.other_patient.identifier]
    for kind in exports.KINDS:
        body = post_export(client, kind=kind, deidentified=True).data.decode("utf-8-sig")
        for secret in secrets_:
            assert secret not in body, (kind, secret)
        assert not re.search(r"\d{4}-\d{2}-\d{2}", body), kind
        assert "127.0.0.1" not in body


def test_pseudonyms_are_stable_within_an_export_and_differ_between_exports(
        client, world, records):
    sign_in(client, world.clinician)
    first = as_dicts(post_export(client, kind="responses", deidentified=True).data)
    second = as_dicts(post_export(client, kind="responses", deidentified=True).data)
    assert len({row["patient_pseudonym"] for row in first}) == 1
    assert re.fullmatch(r"P-[0-9a-f]{12}", first[0]["patient_pseudonym"])
    assert first[0]["patient_pseudonym"] != second[0]["patient_pseudonym"]
    by_assessment = {row["assessment_pseudonym"] for row in first}
    assert len(by_assessment) == 3
    assert {row["administered_day"] for row in first} == {"-2", "3", "15"}


def test_deidentified_free_text_is_flagged_not_kept(client, world, records):
    sign_in(client, world.clinician)
    infusion, = as_dicts(post_export(client, kind="infusions", deidentified=True).data)
    assert (infusion["notes"], infusion["adverse_events"]) == ("[removed]", "")
    alert, = as_dicts(post_export(client, kind="alerts", deidentified=True).data)
    assert alert["acknowledgement_note"] == "[removed]"


def test_days_without_a_first_infusion_are_empty(client, world, factory):
    sign_in(client, world.clinician)
    factory.assessment(world.patient, "phq9", [0] * 9, at=T0)
    row, = as_dicts(post_export(client, kind="scores", deidentified=True).data)
    assert (row["administered_day"], row["days_since_first_infusion"]) == ("", "")


# --- Streaming -----------------------------------------------------------------------------

def test_the_first_bytes_go_out_before_most_rows_are_read(app, world, records, monkeypatch):
    """The generator yields a chunk after one batch: rows are fetched as they are written."""
    fetched = []
    kind = exports.KINDS["responses"]

    def counting(row, request):
        fetched.append(row)
        return kind.cells(row, request)

    monkeypatch.setitem(exports.KINDS, "responses", dataclasses.replace(kind, cells=counting))
    with app.app_context():
        request = exports.ExportRequest(kind="responses", clinic_id=world.clinic.id,
                                        timezone="America/New_York")
        with exports.read_connection(db.engine) as connection:
            chunks = iter(exports.CsvStream(exports.export_rows(connection, request, batch=4),
                                            batch=4))
            first = next(chunks)
            assert first.count(b"\r\n") == 5 and len(fetched) <= 8
            if connection.dialect.name == "postgresql":  # rows wait in a server-side cursor
                assert connection.execute(text("SELECT count(*) FROM pg_cursors")).scalar() >= 1
            rest = b"".join(chunks)
    assert len(fetched) == 25 and (first + rest).count(b"\r\n") == 26


def test_a_long_export_does_not_hold_the_sqlite_write_lock(app, world, records, session):
    """While an export is part-way through, the app can still write (SQLite: WAL snapshot
    with no transaction; PostgreSQL: MVCC)."""
    with app.app_context():
        request = exports.ExportRequest(kind="responses", clinic_id=world.clinic.id,
                                        timezone="America/New_York")
        with exports.read_connection(db.engine) as connection:
            chunks = iter(exports.CsvStream(exports.export_rows(connection, request, batch=2),
                                            batch=2))
            next(chunks)
            submit_assessment(db.session, Actor(db.session.merge(world.patient_user)),
                              db.session.merge(world.patient), "gad7", [0] * 7, "key-during")
            db.session.commit()
            rows = b"".join(chunks)
    assert rows.count(b"\r\n") == 25 - 2  # the snapshot: the new record is not in this file


# --- Command line --------------------------------------------------------------------------

def test_the_command_writes_a_file_and_audits_the_row_count(runner, world, records, session,
                                                            tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "scores.csv"
    result = runner.invoke(args=["export", "scores", "--clinic", world.clinic.name,
                                 "--instrument", "phq9", "--output", str(target)])
    assert result.exit_code == 0, result.output
    rows = as_dicts(target.read_bytes())
    assert len(rows) == 2 and target.stat().st_mode & 0o077 == 0
    event, = audit_events(session, "export.csv")
    assert (event.actor_role, event.clinic_id, event.details["rows"],
            event.details["filters"]["instrument"], event.details["output"]) == (
        "system", world.clinic.id, 2, "phq9", "file")
    assert list(folder.iterdir()) == [target]


def test_the_command_writes_to_standard_output_by_default(runner, world, records):
    result = runner.invoke(args=["export", "responses", "--clinic", world.clinic.name,
                                 "--patient", world.patient.identifier, "--deidentified",
                                 "--from", "2025-06-01", "--to", "2025-06-30"])
    assert result.exit_code == 0, result.stderr
    assert len(as_dicts(result.stdout_bytes)) == 25
    assert "Exported 25 responses rows." in result.stderr


@pytest.mark.parametrize("args, message", [
    (["bogus", "--clinic", "Harbour Clinic"], "Unknown export 'bogus'"),
    (["responses"], "Missing option '--clinic'"),
    (["responses", "--clinic", "Nowhere"], "No clinic named 'Nowhere'"),
    (["responses", "--clinic", "Harbour Clinic", "--from", "02/06/2025"], "--from must be a date"),
    (["responses", "--clinic", "Harbour Clinic", "--from", "2025-06-05", "--to", "2025-06-01"],
     "start date is after"),
    (["responses", "--clinic", "Harbour Clinic", "--patient", "MRN-NOBODY"], "No patient"),
    (["responses", "--clinic", "Harbour Clinic", "--instrument", "nope"], "Unknown questionnaire"),
    (["audit", "--clinic", "Harbour Clinic", "--instrument", "phq9"], "cannot be filtered"),
    (["responses", "--clinic", "Harbour Clinic", "--colour", "red"], "No such option"),
    (["responses", "--clinic", "Harbour Clinic", "--output", "/no/such/folder/x.csv"],
     "No folder"),
    (["fhir", "--clinic", "Harbour Clinic"], "needs --patient"),
    (["fhir", "--clinic", "Harbour Clinic", "--patient", "MRN-NOBODY"], "No patient"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(runner, world, records, session,
                                                            tmp_path, args, message):
    before = len(session.scalars(select(AuditEvent.id)).all())
    folder = tmp_path / "exports"
    folder.mkdir()
    result = runner.invoke(args=["export", *args, *(
        [] if "--output" in args else ["--output", str(folder / "out.csv")])])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == "" and list(folder.iterdir()) == []
    assert len(session.scalars(select(AuditEvent.id)).all()) == before


def test_alerts_raised_from_unsaved_forms_are_exported_with_their_questionnaire_only(
        client, world, session):
    session.add(Alert(patient_id=world.patient.id, submission_key="k" * 20,
                      instrument_key="phq9", kind="suicide_risk", value="positive",
                      reason="Item 9 above 0", crisis=True, evidence={"9": 1},
                      raised_at=utcnow()))
    session.commit()
    sign_in(client, world.clinician)
    alert, = as_dicts(post_export(client, kind="alerts").data)
    assert (alert["assessment_id"], alert["instrument_key"], alert["value"]) == ("", "phq9",
                                                                               "positive")
