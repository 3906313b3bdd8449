"""The export pages: CSV files of the clinic's records, and a patient's FHIR R4 Bundle.

Each export is recorded in the audit trail in the request's own transaction, which commits
before the first byte of the file is sent (a CSV is streamed after the request's commit, so
its row count is not known when it is recorded). The rows are read through a connection of
the export's own."""
from __future__ import annotations

import json
from collections.abc import Iterator

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from ..auth.access import clinic_patient_or_404, staff_required
from ..extensions import db
from ..models import Patient, utcnow
from ..services import audit
from ..services.exports import (
    KINDS,
    CsvStream,
    ExportError,
    ExportRequest,
    export_rows,
    patient_id_for,
    prepare_export,
    read_connection,
)
from ..services.fhir_export import patient_bundle, resource_counts
from ..services.records import clinic_patient
from ..web import current_actor
from .forms import FhirExportForm, csv_export_form

bp = Blueprint("exports", __name__)


@bp.route("/", methods=["GET", "POST"])
@staff_required
def index() -> Response | str | tuple[str, int]:
    """The CSV export form; a valid POST answers with the file, streamed."""
    asked = KINDS.get(request.form.get("kind", ""))
    if asked is not None and not asked.offered_to(current_user.role):
        abort(404)
    # Every filter is checked here and by prepare_export before anything is audited or a
    # byte is sent: a bad one gives the form back with the reason.
    form = csv_export_form(current_user.role, current_user.clinic.timezone)
    if form.validate_on_submit():
        try:
            export = prepare_export(
                db.session, current_user.clinic, form.kind.data, role=current_user.role,
                date_from=form.date_from.data, date_to=form.date_to.data,
                patient_identifier=(form.patient.data or "").strip() or None,
                instrument=form.instrument.data or None, deidentified=form.deidentified.data)
        except ExportError as error:
            form.form_errors.append(str(error))
        else:
            audit.record(db.session, current_actor(), "export.csv",
                         clinic_id=export.clinic_id, patient=_patient(export),
                         object_type="clinic", object_id=export.clinic_id,
                         details=export.audit_details(rows=None))
            return _csv_response(export)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("exports/index.html", form=form), status


def _patient(export: ExportRequest) -> Patient | None:
    if export.patient_id is None:
        return None
    return clinic_patient(db.session, export.clinic_id, export.patient_id)


def _csv_response(export: ExportRequest) -> Response:
    def body() -> Iterator[bytes]:
        # Runs after the request's commit, so it reads through a connection of its own.
        with read_connection(db.engine) as connection:
            yield from CsvStream(export_rows(connection, export))

    response = Response(stream_with_context(body()), mimetype="text/csv")
    suffix = "-deidentified" if export.deidentified else ""
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{_filename(export.kind + suffix, "csv")}"')
    return response


def _filename(what: str, extension: str) -> str:
    """A file name with no health data in it: what was exported, and when."""
    return f"outcomes-{what}-{utcnow():%Y%m%dT%H%M%SZ}.{extension}"


@bp.post("/fhir")
@staff_required
def find_patient() -> Response:
    """From a clinic identifier to that patient's FHIR export page. Posted, so the identifier
    (an MRN) stays out of URLs, access logs and browser history; the page it leads to is
    named by the record's own id."""
    identifier = (request.form.get("identifier") or "").strip()
    patient_id = patient_id_for(db.session, current_user.clinic_id, identifier)
    if patient_id is None:
        flash("No patient with that identifier at this clinic.", "error")
        return redirect(url_for("exports.index"))
    return redirect(url_for("exports.fhir", patient_id=patient_id))


@bp.route("/patients/<id:patient_id>/fhir", methods=["GET", "POST"])
@staff_required
def fhir(patient_id: int) -> Response | str:
    """A patient's FHIR R4 Bundle: GET shows the form, POST answers with the JSON file."""
    patient = clinic_patient_or_404(patient_id)
    form = FhirExportForm()
    if form.validate_on_submit():
        bundle = patient_bundle(db.session, patient, deidentified=form.deidentified.data)
        audit.record(db.session, current_actor(), "export.fhir", patient=patient,
                     object_type="patient", object_id=patient.id,
                     details={"deidentified": form.deidentified.data,
                              "resources": resource_counts(bundle)})
        response = Response(json.dumps(bundle, ensure_ascii=False, indent=1),
                            mimetype="application/fhir+json")
        suffix = "-deidentified" if form.deidentified.data else ""
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{_filename("fhir" + suffix, "json")}"')
        return response
    audit.record(db.session, current_actor(), "patient.view", patient=patient,
                 object_type="patient", object_id=patient.id)
    return render_template("exports/fhir.html", form=form, patient=patient)
