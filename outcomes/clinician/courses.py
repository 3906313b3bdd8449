"""Treatment courses and the infusion log, on the clinician blueprint."""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from ..auth.access import clinic_patient_or_404, course_or_404, infusion_or_404, staff_required
from ..clock import clinic_today, clinic_zone, local_now, to_local, to_utc
from ..extensions import db
from ..services import audit
from ..services.courses import (
    SIDE_EFFECTS,
    CourseError,
    correct_infusion,
    record_infusion,
    start_course,
    update_course,
    version_values,
)
from ..services.record_view import course_line
from ..services.submissions import RepeatedSubmission
from ..web import current_actor
from .forms import CourseForm, CourseUpdateForm, InfusionForm
from .views import bp, repeated


def _refuse(form: Any, error: CourseError) -> None:
    """Put a service's refusal on the field it names, or at the top of the form."""
    target = getattr(form, error.field, None) if error.field else None
    if target is not None:
        target.errors = [*target.errors, str(error)]
    else:
        form.form_errors.append(str(error))


@bp.route("/patients/<id:patient_id>/courses/new", methods=["GET", "POST"])
@staff_required
def new_course(patient_id: int) -> Response | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    zone = clinic_zone(patient.clinic)
    form = CourseForm(meta={"timezone": patient.clinic.timezone})
    if not form.is_submitted():
        form.start_date.data = clinic_today(zone)
    done = url_for("clinician.patient", patient_id=patient.id) + "#course"
    if form.validate_on_submit():
        try:
            start_course(db.session, current_actor(), patient, form.indication.data,
                         form.planned_infusions.data, form.start_date.data,
                         to_utc(form.next_infusion_at.data, zone), form.submission_key.data)
        except RepeatedSubmission as repeat:
            return repeated(repeat, done)
        except CourseError as error:
            _refuse(form, error)
        else:
            flash("Course started.", "info")
            return redirect(done)
    return _page("clinician/course_form.html", form, patient=patient, course=None)


@bp.route("/patients/<id:patient_id>/courses/<id:course_id>", methods=["GET", "POST"])
@staff_required
def edit_course(patient_id: int, course_id: int) -> Response | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    course = course_or_404(patient, course_id)
    zone = clinic_zone(patient.clinic)
    form = CourseUpdateForm(meta={"timezone": patient.clinic.timezone})
    if not form.is_submitted():
        form.status.data = course.status
        form.planned_infusions.data = course.planned_infusions
        form.next_infusion_at.data = to_local(course.next_infusion_at, zone)
    done = url_for("clinician.patient", patient_id=patient.id) + "#course"
    if form.validate_on_submit():
        try:
            update_course(db.session, current_actor(), course, status=form.status.data,
                          planned_infusions=form.planned_infusions.data,
                          next_infusion_at=to_utc(form.next_infusion_at.data, zone),
                          ended_on=clinic_today(zone),
                          submission_key=form.submission_key.data)
        except RepeatedSubmission as repeat:
            return repeated(repeat, done)
        except CourseError as error:
            _refuse(form, error)
        else:
            flash("Course updated.", "info")
            return redirect(done)
    return _page("clinician/course_form.html", form, patient=patient, course=course,
                 course_line=course_line(course))


@bp.route("/patients/<id:patient_id>/courses/<id:course_id>/infusions/new",
          methods=["GET", "POST"])
@staff_required
def new_infusion(patient_id: int, course_id: int) -> Response | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    course = course_or_404(patient, course_id)
    zone = clinic_zone(patient.clinic)
    form = InfusionForm(meta={"timezone": patient.clinic.timezone})
    if not form.is_submitted():
        form.administered_at.data = local_now(zone)
        form.dose_mg_per_kg.data = 0.5
        form.duration_minutes.data = 40
        if course.infusions:  # the last weight is usually right
            form.weight_kg.data = course.infusions[-1].current.weight_kg
    done = url_for("clinician.patient", patient_id=patient.id) + "#course"
    if form.validate_on_submit():
        try:
            infusion = record_infusion(db.session, current_actor(), course,
                                       _infusion_values(form, zone),
                                       to_utc(form.next_infusion_at.data, zone),
                                       form.submission_key.data)
        except RepeatedSubmission as repeat:
            return repeated(repeat, done)
        except CourseError as error:
            _refuse(form, error)
        else:
            flash(f"Infusion {infusion.number} recorded.", "info")
            return redirect(done)
    return _page("clinician/infusion_form.html", form, patient=patient, course=course,
                 course_line=course_line(course), infusion=None, side_effects=SIDE_EFFECTS)


@bp.route("/patients/<id:patient_id>/infusions/<id:infusion_id>", methods=["GET", "POST"])
@staff_required
def infusion(patient_id: int, infusion_id: int) -> Response | tuple[str, int]:
    """An infusion's history of versions, and the form to correct it."""
    patient = clinic_patient_or_404(patient_id)
    record = infusion_or_404(patient, infusion_id)
    zone = clinic_zone(patient.clinic)
    form = InfusionForm(meta={"timezone": patient.clinic.timezone})
    if not form.is_submitted():
        values = version_values(record.current)
        for name, value in values.items():
            getattr(form, name).data = value
        form.administered_at.data = to_local(record.current.administered_at, zone)
        form.corrects_version.data = record.current.version
    done = url_for("clinician.infusion", patient_id=patient.id, infusion_id=record.id)
    if form.validate_on_submit():
        try:
            correct_infusion(db.session, current_actor(), record, _infusion_values(form, zone),
                             form.correction_reason.data or "", form.submission_key.data,
                             form.corrects_version.data)
        except RepeatedSubmission as repeat:
            return repeated(repeat, done)
        except CourseError as error:
            _refuse(form, error)
        else:
            flash(f"Infusion {record.number} corrected; the earlier version stays in its "
                  "history.", "info")
            return redirect(done)
    return _page("clinician/infusion_form.html", form, patient=patient, course=record.course,
                 infusion=record, side_effects=SIDE_EFFECTS)


def _infusion_values(form: InfusionForm, zone: dt.tzinfo) -> dict[str, Any]:
    values = {name: getattr(form, name).data for name in InfusionForm.MEASURES}
    values.update(
        administered_at=to_utc(form.administered_at.data, zone),
        side_effects=form.side_effects.data or [],
        dissociation_rating=form.dissociation_rating.data,
        adverse_events=form.adverse_events.data,
        notes=form.notes.data,
    )
    return values


def _page(template: str, form: Any, **context: Any) -> tuple[str, int]:
    """A course or infusion form: it shows the patient's record, so showing it is a read."""
    status = 422 if form.is_submitted() and (form.errors or form.form_errors) else 200
    patient = context["patient"]
    kind, record = next((kind, context[kind]) for kind in ("infusion", "course", "patient")
                        if context.get(kind) is not None)
    audit.record(db.session, current_actor(), f"{kind}.view", patient=patient,
                 object_type=kind, object_id=record.id)
    return render_template(template, form=form, **context), status
