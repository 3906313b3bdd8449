"""A patient's administrative details, for the clinic: edit name, identifier and contacts
(versioned, with a reason), reassign the clinician, discharge and re-admit, re-issue access
(issue 12 item 4).

One page, "Details and history", holds the forms and every version; each form posts to its
own route, which answers with the page again (422) when refused, or goes back to it. The
invitation and password-reset links stay on the patient's record page, which offers the one
that applies, as does the reset of a patient's extra sign-in step (an authenticator app or
passkeys they chose to add and then lost with their recovery codes)."""
from __future__ import annotations

from collections.abc import Callable

from flask import current_app, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import SelectChoice
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ..auth.access import clinic_patient_or_404, staff_required
from ..auth.mfa import fresh_authentication_required
from ..extensions import db
from ..models import Patient
from ..services import audit
from ..services.audit import Actor
from ..services.mfa import is_enrolled, reset_factors
from ..services.patients import clinic_staff
from ..services.patient_admin import (
    LABELS,
    PatientAdminRefused,
    PatientDetails,
    details_of,
    discharge,
    history,
    latest_version,
    readmit,
    reassign_clinician,
    update_details,
)
from ..web import current_actor, keep_writes_despite_refusal
from .patient_forms import DischargeForm, PatientDetailsForm, ReassignForm
from .views import bp

# The page holds the three forms: their fields' names and ids are prefixed to stay apart.
DETAILS, REASSIGN, CARE = "details", "reassign", "care"


@bp.get("/patients/<id:patient_id>/details")
@staff_required
def patient_details(patient_id: int) -> str:
    """The patient's details, the forms that change them, and every version."""
    return _details_page(clinic_patient_or_404(patient_id))


@bp.post("/patients/<id:patient_id>/details")
@staff_required
def update_patient_details(patient_id: int) -> Response | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    form = PatientDetailsForm(prefix=DETAILS)
    if form.validate_on_submit():
        wanted = PatientDetails(form.display_name.data, form.identifier.data,
                                form.contact_email.data, form.contact_phone.data)
        try:
            changed = update_details(db.session, current_actor(), patient, wanted,
                                     form.based_on.data, form.reason.data,
                                     current_app.config["PHONE_REGION"])
        except PatientAdminRefused as refused:
            if refused.stale:  # start again from the latest, rather than undo someone's change
                form = _fresh_details_form(patient)
            _show(refused, form)
        else:
            flash(f"Saved: {', '.join(LABELS[name].lower() for name in changed)} changed."
                  if changed else "Nothing was changed: the details were already these.", "info")
            return _back(patient)
    return _details_page(patient, details_form=form), 422


@bp.post("/patients/<id:patient_id>/clinician")
@staff_required
def reassign_patient(patient_id: int) -> Response | tuple[str, int]:
    patient = clinic_patient_or_404(patient_id)
    form = _reassign_form(patient, formdata=True)
    if form.validate_on_submit():
        try:
            changed = reassign_clinician(db.session, current_actor(), patient,
                                         form.clinician.data, form.reason.data)
        except PatientAdminRefused as refused:
            _show(refused, form)
        else:
            flash(f"{patient.assigned_clinician.email} is now the patient's clinician."
                  if changed else "Nothing was changed: that is already the patient's "
                  "clinician.", "info")
            return _back(patient)
    return _details_page(patient, reassign_form=form), 422


@bp.post("/patients/<id:patient_id>/discharge")
@staff_required
def discharge_patient(patient_id: int) -> Response | tuple[str, int]:
    return _change_care(patient_id, discharge,
                        "Discharged: nothing is due for them and no reminders go. Their "
                        "history stays here and in the exports.")


@bp.post("/patients/<id:patient_id>/readmit")
@staff_required
def readmit_patient(patient_id: int) -> Response | tuple[str, int]:
    return _change_care(patient_id, readmit,
                        "Re-admitted: their questionnaire plan applies again from today.")


CareChange = Callable[[Session, Actor, Patient, str], None]


def _change_care(patient_id: int, change: CareChange, done: str) -> Response | tuple[str, int]:
    """Discharge or re-admit (``change``), then back to the page saying ``done``."""
    patient = clinic_patient_or_404(patient_id)
    form = DischargeForm(prefix=CARE)
    if form.validate_on_submit():
        try:
            change(db.session, current_actor(), patient, form.reason.data)
        except PatientAdminRefused as refused:
            _show(refused, form)
        else:
            flash(done, "info")
            return _back(patient)
    return _details_page(patient, discharge_form=form), 422


def _show(refused: PatientAdminRefused, form: FlaskForm) -> None:
    """The refusal's messages on the form's fields (the rest above the form)."""
    for name, message in refused.problems.items():
        field = getattr(form, name, None) if name != "form" else None
        if field is None:
            form.form_errors.append(message)
        else:
            field.errors = [*field.errors, message]


def _back(patient: Patient) -> Response:
    return redirect(url_for("clinician.patient_details", patient_id=patient.id), 303)


def _fresh_details_form(patient: Patient) -> PatientDetailsForm:
    details = details_of(patient)
    return PatientDetailsForm(formdata=None, prefix=DETAILS, data={
        "display_name": details.display_name, "identifier": details.identifier,
        "contact_email": details.contact_email or "",
        "contact_phone": details.contact_phone or "",
        "based_on": latest_version(db.session, patient.id)})


def _reassign_form(patient: Patient, formdata: bool = False) -> ReassignForm:
    form = ReassignForm(prefix=REASSIGN) if formdata else ReassignForm(
        formdata=None, prefix=REASSIGN, data={"clinician": patient.assigned_clinician_id})
    form.clinician.choices = [SelectChoice(user.id, f"{user.email} ({user.role})")
                              for user in clinic_staff(db.session, patient.clinic_id, active_only=True)]
    return form


def _details_page(patient: Patient, *, details_form: PatientDetailsForm | None = None,
                  reassign_form: ReassignForm | None = None,
                  discharge_form: DischargeForm | None = None) -> str:
    """The page, with the forms given (a refused one, with its messages) or fresh ones. It
    shows the patient's details and history: an audited read, kept when the answer is a
    refusal."""
    audit.record(db.session, current_actor(), "patient.view_details", patient=patient,
                 object_type="patient", object_id=patient.id)
    keep_writes_despite_refusal()  # the read stands; a refused change wrote nothing
    return render_template(
        "clinician/patient_details.html", patient=patient,
        details_form=details_form or _fresh_details_form(patient),
        reassign_form=reassign_form or _reassign_form(patient),
        discharge_form=discharge_form or DischargeForm(formdata=None, prefix=CARE),
        history=history(db.session, patient))


@bp.post("/patients/<id:patient_id>/sign-in-steps/reset")
@staff_required
@fresh_authentication_required
def reset_patient_sign_in_steps(patient_id: int) -> Response:
    """Remove the authenticator, recovery codes and passkeys a patient added: without it, a
    patient who lost them all could never sign in again (patients are never required to have
    one, so they then sign in with their password)."""
    patient = clinic_patient_or_404(patient_id)
    if FlaskForm().validate_on_submit() and patient.user is not None and patient.user.active \
            and is_enrolled(patient.user):
        reset_factors(db.session, current_actor(), patient.user)
        flash("The patient's extra sign-in step is removed: they sign in with their password, "
              "and may set it up again. They and you are told by email.", "info")
    return redirect(url_for("clinician.patient", patient_id=patient.id) + "#access-title")
