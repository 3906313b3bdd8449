"""The forms of a patient's "Details and history" page (clinician/patients.py): the details,
the clinician, discharge and re-admission. Each change carries its reason;
``services.patient_admin`` checks the rest (an identifier in use, a phone number, ...)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, TelField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from ..services.patient_admin import EMAIL_MAX, IDENTIFIER_MAX, NAME_MAX, REASON_MAX


class ReasonForm(FlaskForm):
    """A change of the patient's versioned details: why it is made."""

    reason = TextAreaField("Reason for the change", validators=[
        InputRequired("Give the reason for the change."),
        Length(max=REASON_MAX, message=f"Keep the reason to {REASON_MAX} characters.")])


class PatientDetailsForm(ReasonForm):
    display_name = StringField("Name", validators=[
        InputRequired("Give the patient's name."),
        Length(max=NAME_MAX, message=f"Keep the name to {NAME_MAX} characters.")])
    identifier = StringField("Clinic identifier (MRN)", validators=[
        InputRequired("Give the clinic's identifier (MRN) for the patient."),
        Length(max=IDENTIFIER_MAX, message=f"Keep the identifier to {IDENTIFIER_MAX} "
                                           "characters.")])
    # A text field, not EmailField's own check: the service's (channels.contacts) says why.
    contact_email = StringField("Email (optional)", validators=[
        Optional(), Length(max=EMAIL_MAX, message="That is too long for an email address.")])
    contact_phone = TelField("Mobile number (optional)", validators=[
        Optional(), Length(max=32, message="That is too long for a phone number.")])
    #: The version the form showed: a change made meanwhile by someone else is kept.
    based_on = IntegerField(widget=HiddenInput(), validators=[
        InputRequired("The form was incomplete. Reload the page and try again."),
        NumberRange(min=1)])


def _user_id(value: object) -> int:
    """A chosen account's id; anything else reads as 0, no account, which the service
    refuses with its message."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else 0


class ReassignForm(ReasonForm):
    # Any id is let through to the service, which says why one cannot be chosen.
    clinician = SelectField("Clinician", coerce=_user_id, validate_choice=False, validators=[
        InputRequired("Choose a clinician.")])


class DischargeForm(ReasonForm):
    """Discharge, or re-admit: the route says which."""
