"""The patient's phone: what is due, questionnaires, results and their own trend."""
from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint, abort, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

import instruments

from .. import clock
from ..charts import Chart, Series, patient_charts
from ..extensions import db
from ..forms import questionnaire_form
from ..models import Course, Patient
from ..services import audit, schedule
from ..services.alerts import assessment_alerts
from ..services.assessments import (
    SubmissionError,
    crisis_flagged,
    raise_unsaved_risk_alerts,
    submit_assessment,
)
from ..services.held_answers import take_held_answers
from ..services.records import (
    current_assessments,
    offered_instruments,
    patient_assessments,
    patient_courses,
    plan_for,
)
from ..services.results import (
    infusion_marks,
    plain_summary,
    progress_sentence,
    reference_of,
    trend_series,
)
from ..auth.access import assessment_or_404, own_patient, patient_required
from ..web import current_actor, keep_writes_despite_refusal

bp = Blueprint("patient", __name__, url_prefix="/me")


def own_charts(patient: Patient, series: Sequence[Series],
               courses: Sequence[Course]) -> list[Chart]:
    """The patient's charts, with their infusions and one plain sentence each."""
    zone = clock.clinic_zone(patient.clinic)
    now = clock.utcnow()
    return patient_charts(series, infusion_marks(courses), zone, {
        entry.measure: progress_sentence(entry, now, zone) for entry in series})


@bp.get("/")
@patient_required
def home() -> str:
    patient = own_patient()
    assessments = patient_assessments(db.session, patient.id)
    courses = patient_courses(db.session, patient.id)
    due = schedule.due_questionnaires(plan_for(db.session, patient.id),
                                      schedule.timeline_of(patient, courses, assessments),
                                      clock.utcnow())
    series = trend_series(current_assessments(assessments), courses,
                          clock.clinic_zone(patient.clinic))
    audit.record(db.session, current_actor(), "patient.view_own", patient=patient,
                 object_type="patient", object_id=patient.id)
    return render_template(
        "patient/home.html", patient=patient, due=due, recent=assessments[:5],
        trend_charts=own_charts(patient, series, courses),
    )


@bp.route("/questionnaires/<key>", methods=["GET", "POST"])
@patient_required
def questionnaire(key: str) -> Response | str | tuple[str, int]:
    patient = own_patient()
    if key not in offered_instruments(db.session, patient.id):
        abort(404)
    instrument = instruments.get(key)
    form = questionnaire_form(instrument)
    if form.validate_on_submit():
        try:
            submission = submit_assessment(db.session, current_actor(), patient, key,
                                           form.answers(), form.submission_key.data)
        except SubmissionError as error:
            form.form_errors.append(str(error))
        else:
            # The result page puts crisis resources before anything else when called for.
            return redirect(url_for("patient.result", assessment_id=submission.assessment.id))
    if not form.is_submitted():
        # Answers sent after the last session ended come back once, with their form's key.
        held = take_held_answers(db.session, current_user.id, key)
        if held is not None:
            form = questionnaire_form(instrument, prefill=held.answers)
            form.submission_key.data = held.submission_key
        page = render_template("patient/questionnaire.html", form=form, instrument=instrument)
        # A blank form holds no health data: the back button may keep it, with its key.
        return page, 200, {"Cache-Control": "no-store" if held else "private, no-cache"}
    # Risk the patient has disclosed is never lost, even on a form sent incomplete: the
    # panel shows exactly when the alert is opened (or already open).
    risk = raise_unsaved_risk_alerts(db.session, current_actor(), patient, key,
                                     form.submission_key.data, form.valid_answers())
    keep_writes_despite_refusal()  # an alert it opened stands, although the page answers 422
    return render_template("patient/questionnaire.html", form=form, instrument=instrument,
                           crisis=risk.crisis, clinic=patient.clinic), 422


@bp.get("/results/<id:assessment_id>")
@patient_required
def result(assessment_id: int) -> str:
    assessment = assessment_or_404(own_patient(), assessment_id)
    patient = assessment.patient
    history = current_assessments(patient_assessments(db.session, patient.id))
    courses = patient_courses(db.session, patient.id)
    zone = clock.clinic_zone(patient.clinic)
    series = [s for s in trend_series(history, courses, zone)
              if s.measure == instruments.get(assessment.instrument_key).measure]
    audit.record(db.session, current_actor(), "assessment.view", patient=patient,
                 object_type="assessment", object_id=assessment.id)
    return render_template(
        "patient/result.html", assessment=assessment,
        instrument=instruments.get(assessment.instrument_key), clinic=patient.clinic,
        summary=plain_summary(assessment, reference_of(history, courses, assessment, zone), zone),
        crisis=crisis_flagged(assessment), trend_charts=own_charts(patient, series, courses),
        alerted=bool(assessment_alerts(db.session, assessment.id)),
    )


@bp.get("/help")
def crisis_help() -> tuple[str, int, dict[str, str]]:
    """Crisis resources, one tap from every patient page. Open to anyone (a session may have
    ended); a signed-in person also gets their clinic's own number."""
    clinic = current_user.clinic if current_user.is_authenticated else None
    # Nothing of a health record is on it, so the browser may keep it for the back button.
    return (render_template("patient/help.html", clinic=clinic), 200,
            {"Cache-Control": "private, no-cache"})
