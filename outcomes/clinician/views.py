"""The clinician's side: the patient list, a patient's record, enrolment, paper forms, alerts
and plans. Every patient id is looked up within the clinician's own clinic."""
from __future__ import annotations

import datetime as dt
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response
from wtforms import SelectChoice

import instruments

from .. import clock
from ..auth.access import (
    alert_or_404,
    assessment_or_404,
    clinic_patient_or_404,
    staff_required,
)
from ..auth.one_time_links import one_time_link_page
from ..charts import clinician_charts, weekly_mean_chart
from ..extensions import db
from ..forms import questionnaire_form
from ..models import Assessment, Patient
from ..services import audit, plans, schedule
from ..services.alerts import AlertError, acknowledge_alert, assessment_alerts, patient_alerts
from ..services.assessments import (
    SubmissionError,
    crisis_flagged,
    raise_unsaved_risk_alerts,
    submit_assessment,
)
from ..services.enrolment import EnrolmentError, enrol_patient, issue_invitation
from ..services.dashboard import (
    DashboardQuery,
    dashboard,
    signal_legend,
    triage_counts,
)
from ..services.completion import clinic_completion, patient_completion
from ..services.mfa import is_enrolled
from ..services.outcomes import clinic_outcomes
from ..services.record_view import courses_of, in_words
from ..services.patients import clinic_staff
from ..services.records import (
    current_assessments,
    patient_assessments,
    patient_courses,
    plan_for,
    superseded_ids,
)
from ..services.triage import (
    InboxQuery,
    already_acknowledged,
    describe,
    describe_with_notifications,
    open_alerts,
)
from ..services.baseline import BASELINE_WINDOW_DAYS
from ..services.results import infusion_marks, reference_sentence, trend_series
from ..services.submissions import RepeatedSubmission
from ..web import current_actor, keep_writes_despite_refusal
from .forms import (
    TIMINGS,
    AcknowledgeAlertForm,
    ConfirmForm,
    DashboardForm,
    DashboardSearchForm,
    EnrolPatientForm,
    InboxForm,
    plan_changes,
    plan_form,
)

bp = Blueprint("clinician", __name__)


def repeated(repeat: RepeatedSubmission, location: str) -> Response:
    """The answer to a copy of a form that was stored already: where the first copy led.
    A copy with other values changed nothing, and says so."""
    if repeat.same_values:
        flash("This form was sent more than once and saved once.", "info")
    else:
        flash("This form had already been saved, so the changes in the copy sent again were "
              "not saved. Open the form again to make them.", "error")
    return redirect(location)


@bp.get("/patients")
@staff_required
def patients() -> tuple[str, int]:
    """The dashboard: the clinic's triage counts, then every patient, open alerts first."""
    form = DashboardForm(request.args)
    status = 200
    if not form.validate():
        status = 400
        form = DashboardForm(formdata=None)  # show everything rather than half a filter
        flash("Some of the filters in the address were not valid and were reset.", "error")
    search = saved_search(form.search.data)
    if form.search.data and search is None:
        status = 400
        flash("That search has expired. Search again.", "error")
    mine = current_user.id if form.mine.data else None
    query = DashboardQuery(search=search or "", filter=form.filter.data or "",
                           clinician_id=mine, course_status=form.status.data or "",
                           sort=form.sort.data or "priority", page=form.page.data or 1)
    zone = clock.clinic_zone(current_user.clinic)
    today = clock.clinic_today(zone)
    counts = triage_counts(db.session, current_user.clinic_id, today, zone, mine)
    page = dashboard(db.session, current_user.clinic_id, query, today, zone)
    # What this page shows of each patient is part of their record: the read names them.
    audit.record(db.session, current_actor(), "dashboard.view", object_type="clinic",
                 object_id=current_user.clinic_id,
                 details={"patients": [row.patient.id for row in page.rows]})
    search_form = DashboardSearchForm(formdata=None, data={**form.data, "q": query.search})
    links = {"search": form.search.data if search else None, "filter": query.filter,
             "status": query.course_status, "mine": "y" if mine else None, "sort": query.sort}
    keep_writes_despite_refusal()  # the read is audited even when the answer is a 400
    return render_template("clinician/dashboard.html", form=search_form, page=page,
                           query=query, links=links, counts=counts, legend=signal_legend(),
                           grace_days=schedule.GRACE_DAYS), status


@bp.post("/patients/search")
@staff_required
def search_patients() -> Response | tuple[str, int]:
    """The dashboard's form arrives here by POST; the search text is kept in the session and
    the dashboard is shown under an opaque reference to it."""
    form = DashboardSearchForm()
    if not form.validate_on_submit():
        return render_template("errors/error.html", title="This search could not be used",
                               message="Some of the filters were not valid. Go back to the "
                               "patient list and try again."), 400
    reference = save_search(form.q.data.strip()) if form.q.data and form.q.data.strip() \
        else None
    return redirect(url_for("clinician.patients", search=reference,
                            filter=form.filter.data or None, status=form.status.data or None,
                            mine="y" if form.mine.data else None,
                            sort=None if form.sort.data == "priority" else form.sort.data))


#: Searches a clinician ran recently, kept in their session under opaque references.
_SEARCHES = "dashboard_searches"
SEARCHES_KEPT = 5
SEARCH_LIFETIME = dt.timedelta(hours=1)


def save_search(text: str) -> str:
    """Keep a search in the session; returns its reference for the URL."""
    now = clock.utcnow().timestamp()
    searches = {reference: entry for reference, entry in session.get(_SEARCHES, {}).items()
                if now - entry["at"] < SEARCH_LIFETIME.total_seconds()}
    reference = secrets.token_urlsafe(12)
    searches[reference] = {"q": text, "at": now}
    newest = sorted(searches.items(), key=lambda item: item[1]["at"])[-SEARCHES_KEPT:]
    session[_SEARCHES] = dict(newest)
    return reference


def saved_search(reference: str | None) -> str | None:
    """The text of a search kept in the session, or None when unknown or expired."""
    entry = session.get(_SEARCHES, {}).get(reference) if reference else None
    now = clock.utcnow().timestamp()
    if entry is None or now - entry["at"] >= SEARCH_LIFETIME.total_seconds():
        return None
    return entry["q"]


@bp.get("/alerts")
@staff_required
def alerts() -> tuple[str, int]:
    """The triage inbox: every open alert of the clinic, crisis alerts first, then the longest
    waiting, each with what happened, its age and the patient's clinician."""
    form = InboxForm(request.args)
    status = 200
    if not form.validate():
        status = 400
        form = InboxForm(formdata=None)
        flash("Some of the filters in the address were not valid and were reset.", "error")
    query = InboxQuery(clinician_id=current_user.id if form.mine.data else None,
                       kind=form.kind.data or "")
    found = open_alerts(db.session, current_user.clinic_id, query)
    audit.record(db.session, current_actor(), "alerts.view", object_type="clinic",
                 object_id=current_user.clinic_id,
                 details={"patients": sorted({alert.patient_id for alert in found}),
                          "alerts": [alert.id for alert in found]})
    keep_writes_despite_refusal()  # the read is audited even when the answer is a 400
    return render_template("clinician/alerts.html", form=form,
                           alerts=describe_with_notifications(db.session, found),
                           query=query), status


@bp.route("/patients/new", methods=["GET", "POST"])
@staff_required
def enrol() -> Response | str | tuple[str, int]:
    form = EnrolPatientForm()
    staff = clinic_staff(db.session, current_user.clinic_id)
    form.assigned_clinician.choices = [SelectChoice(user.id, user.email) for user in staff]
    if request.method == "GET":
        form.assigned_clinician.data = current_user.id
    if form.validate_on_submit():
        clinician = next(user for user in staff if user.id == form.assigned_clinician.data)
        try:
            patient = enrol_patient(db.session, current_actor(), current_user.clinic,
                                    form.identifier.data, form.display_name.data,
                                    form.contact_email.data, clinician,
                                    form.submission_key.data)
            issued = issue_invitation(db.session, current_actor(), patient,
                                      current_app.config["INVITATION_VALID_DAYS"])
        except RepeatedSubmission as repeat:
            # The first copy's link was shown once and only its hash is kept: this copy
            # cannot show it again, nor replace it (the first copy's page may be the one on
            # screen), so it leads to the patient, where a new link can be issued.
            if repeat.same_values:
                flash("This patient was added by the first copy of this form. If its "
                      "invitation link did not appear, issue a new link here.", "info")
                return redirect(url_for("clinician.patient", patient_id=repeat.object_id))
            return repeated(repeat, url_for("clinician.patient", patient_id=repeat.object_id))
        except EnrolmentError as error:
            form.identifier.errors.append(str(error))
        else:
            return _invitation_page(patient, issued.token, issued.invitation.expires_at)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("clinician/enrol.html", form=form), status


@bp.post("/patients/<id:patient_id>/invitation")
@staff_required
def reissue_invitation(patient_id: int) -> Response | str:
    patient = clinic_patient_or_404(patient_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        issued = issue_invitation(db.session, current_actor(), patient,
                                  current_app.config["INVITATION_VALID_DAYS"])
    except EnrolmentError as error:
        flash(str(error), "error")
        return redirect(url_for("clinician.patient", patient_id=patient.id))
    return _invitation_page(patient, issued.token, issued.invitation.expires_at)


def _invitation_page(patient: Patient, token: str, expires_at: dt.datetime) -> str:
    return one_time_link_page(patient, "auth.open_invitation", token, expires_at,
                              title="Invitation")


@bp.get("/patients/<id:patient_id>")
@staff_required
def patient(patient_id: int) -> str:
    patient = clinic_patient_or_404(patient_id)
    assessments = patient_assessments(db.session, patient.id)
    current = current_assessments(assessments)
    courses = patient_courses(db.session, patient.id)
    zone = clock.clinic_zone(patient.clinic)
    series = trend_series(current, courses, zone)
    trend_charts = clinician_charts(series, infusion_marks(courses), zone, {
        entry.measure: reference_sentence(entry, zone) for entry in series})
    due = schedule.due_questionnaires(plan_for(db.session, patient.id),
                                      schedule.timeline_of(patient, courses, assessments),
                                   clock.utcnow())
    audit.record(db.session, current_actor(), "patient.view", patient=patient,
                 object_type="patient", object_id=patient.id)
    return render_template(
        "clinician/patient.html", patient=patient,
        assessments=[in_words(assessment) for assessment in assessments],
        superseded=superseded_ids(assessments),
        alerts=describe_with_notifications(db.session, patient_alerts(db.session, patient.id)),
        trend_charts=trend_charts, due=due,
        instruments=instruments.all(), courses=courses_of(courses),
        completion=patient_completion(db.session, patient, clock.utcnow())[90],
        extra_sign_in_step=patient.user is not None and is_enrolled(patient.user),
    )


@bp.route("/patients/<id:patient_id>/paper/<key>", methods=["GET", "POST"])
@staff_required
def transcribe(patient_id: int, key: str) -> Response | str | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    return _paper_form(patient, key, amends=None)


@bp.route("/patients/<id:patient_id>/assessments/<id:assessment_id>/correct",
          methods=["GET", "POST"])
@staff_required
def correct(patient_id: int, assessment_id: int) -> Response | str | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    original = assessment_or_404(patient, assessment_id)
    return _paper_form(patient, original.instrument_key, amends=original)


def _paper_form(patient: Patient, key: str, amends: Assessment | None
                ) -> Response | str | tuple[str, int]:
    try:
        instrument = instruments.get(key)
    except instruments.UnknownInstrument:
        abort(404)
    prefill = None
    if amends is not None:
        given = {answer.item_number: answer.value for answer in amends.answers}
        prefill = [given.get(item.number) for item in instrument.items]
    form = questionnaire_form(instrument, transcription=True, correction=amends is not None,
                              prefill=prefill)
    zone = clock.clinic_zone(patient.clinic)
    if not form.is_submitted():
        form.administered_on.data = (clock.local_date(amends.administered_at, zone)
                                     if amends is not None else clock.clinic_today(zone))
    if form.validate_on_submit() and _completed_on_a_past_day(form, patient, zone):
        try:
            submission = submit_assessment(
                db.session, current_actor(), patient, key, form.answers(),
                form.submission_key.data, form_date=form.administered_on.data,
                amends=amends,
                amendment_reason=form.amendment_reason.data if amends is not None else None,
            )
        except SubmissionError as error:
            form.form_errors.append(str(error))
        else:
            if submission.created:
                flash(f"{instrument.short_title} saved.", "info")
            if crisis_flagged(submission.assessment):
                return redirect(url_for("clinician.assessment", patient_id=patient.id,
                                        assessment_id=submission.assessment.id))
            return redirect(url_for("clinician.patient", patient_id=patient.id))
    if not form.is_submitted():
        audit.record(db.session, current_actor(),
                     "assessment.view" if amends is not None else "patient.view",
                     patient=patient, object_type="assessment" if amends is not None
                     else "patient", object_id=amends.id if amends is not None else patient.id)
        return render_template("clinician/paper_form.html", form=form, instrument=instrument,
                               patient=patient, amends=amends)
    # A paper form refused (its date, say) still tells of what the patient wrote: risk on it
    # opens its alert now, and the form comes back with the crisis panel first.
    risk = raise_unsaved_risk_alerts(db.session, current_actor(), patient, key,
                                     form.submission_key.data, form.valid_answers(),
                                     amends=amends)
    keep_writes_despite_refusal()  # an alert it opened stands, although the page answers 422
    return render_template("clinician/paper_form.html", form=form, instrument=instrument,
                           patient=patient, amends=amends, crisis=risk.crisis,
                           clinic=patient.clinic), 422


def _completed_on_a_past_day(form, patient: Patient, zone: dt.tzinfo) -> bool:
    day = form.administered_on.data
    earliest = clock.local_date(patient.enrolled_at, zone) - dt.timedelta(days=365)
    if day > clock.clinic_today(zone):
        form.administered_on.errors.append("The date the form was completed cannot be in the "
                                           "future.")
    elif day < earliest:
        form.administered_on.errors.append(
            f"The date is more than a year before the patient was enrolled; give a date from "
            f"{earliest:%-d %B %Y} on.")
    return not form.administered_on.errors


@bp.get("/patients/<id:patient_id>/assessments/<id:assessment_id>")
@staff_required
def assessment(patient_id: int, assessment_id: int) -> str:
    patient = clinic_patient_or_404(patient_id)
    record = assessment_or_404(patient, assessment_id)
    alerts = assessment_alerts(db.session, record.id)
    audit.record(db.session, current_actor(), "assessment.view", patient=patient,
                 object_type="assessment", object_id=record.id)
    words = in_words(record)
    return render_template("clinician/assessment.html", patient=patient, assessment=record,
                           alerts=describe(alerts), crisis=crisis_flagged(record),
                           clinic=patient.clinic, instrument=words.instrument, words=words)


@bp.post("/alerts/<id:alert_id>/acknowledge")
@staff_required
def acknowledge(alert_id: int) -> Response:
    alert = alert_or_404(alert_id)
    form = AcknowledgeAlertForm()
    if not form.validate_on_submit():
        flash(form.note.errors[0] if form.note.errors else "The form expired; try again.",
              "error")
    else:
        try:
            acknowledge_alert(db.session, current_actor(), alert, form.note.data,
                              seen=form.seen.data or 0)
        except AlertError as error:
            db.session.refresh(alert)
            flash(str(error) if alert.is_open else already_acknowledged(
                alert, clock.clinic_zone(current_user.clinic)), "error")
        else:
            flash("Alert acknowledged.", "info")
    if form.back.data == "inbox":
        return redirect(url_for("clinician.alerts"))
    return redirect(url_for("clinician.patient", patient_id=alert.patient_id) + "#alerts")


@bp.route("/patients/<id:patient_id>/plan", methods=["GET", "POST"])
@staff_required
def plan(patient_id: int) -> Response | str | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    entries = {(e.instrument_key, e.schedule): e for e in plan_for(db.session, patient.id)}
    form = plan_form(entries)
    done = url_for("clinician.patient", patient_id=patient.id)
    if form.validate_on_submit():
        try:
            plans.update_plan(db.session, current_actor(), patient, plan_changes(form),
                              form.submission_key.data)
        except RepeatedSubmission as repeat:
            return repeated(repeat, done)
        except plans.PlanError as error:
            form.form_errors.append(str(error))
        else:
            flash("Plan saved.", "info")
            return redirect(done)
    audit.record(db.session, current_actor(), "plan.view", patient=patient,
                 object_type="patient", object_id=patient.id)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("clinician/plan.html", form=form, patient=patient,
                           instruments=instruments.all(), timings=TIMINGS), status


@bp.get("/outcomes")
@staff_required
def outcomes() -> str:
    """The clinic's outcomes: the headline measures' means by week since the first infusion, and
    response and remission rates per completed course, with their definitions."""
    report = clinic_outcomes(db.session, current_user.clinic_id,
                             clock.clinic_zone(current_user.clinic))
    audit.record(db.session, current_actor(), "clinic_outcomes.view", object_type="clinic",
                 object_id=current_user.clinic_id)
    weekly = {m.measure: weekly_mean_chart(m.measure, m.total_max, m.weeks, m.patients)
              for m in report.measures if m.weeks}
    return render_template("clinician/outcomes.html", report=report, weekly=weekly,
                           baseline_days=BASELINE_WINDOW_DAYS,
                           completion=clinic_completion(db.session, current_user.clinic,
                                                        clock.utcnow()))
