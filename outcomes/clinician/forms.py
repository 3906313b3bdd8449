from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional

import instruments


class EnrolPatientForm(FlaskForm):
    identifier = StringField("Clinic identifier (for example the MRN)",
                             validators=[DataRequired("Give the clinic's identifier."),
                                         Length(max=64)])
    display_name = StringField("Patient's name", validators=[DataRequired("Give a name."),
                                                             Length(max=200)])
    contact_email = EmailField("Email (optional)", validators=[
        Optional(), Email("Enter a valid email address."), Length(max=254)])
    assigned_clinician = SelectField("Assigned clinician", coerce=int)


class ConfirmForm(FlaskForm):
    """A POST with nothing but its CSRF token (issue a new link, and the like)."""


class AcknowledgeAlertForm(FlaskForm):
    note = TextAreaField("What was done", validators=[
        DataRequired("Say what was done, for example who called the patient."),
        Length(max=2000)])


INTERVAL_CHOICES = [SelectChoice("once", "Once, at baseline"), SelectChoice("7", "Every week"),
                    SelectChoice("14", "Every 2 weeks"), SelectChoice("28", "Every 4 weeks")]


def plan_form(entries: dict[str, tuple[bool, int | None, int]]) -> FlaskForm:
    """A form with one row per instrument: offered or not, how often, first due after."""
    attributes: dict[str, object] = {}
    for instrument in instruments.all():
        key = instrument.key
        attributes[f"{key}__active"] = BooleanField(f"Offer {instrument.title}")
        attributes[f"{key}__every"] = SelectField(f"How often ({instrument.short_title})",
                                                  choices=INTERVAL_CHOICES)
        attributes[f"{key}__starts"] = IntegerField(
            f"First due, days after enrolment ({instrument.short_title})",
            validators=[NumberRange(0, 365, "Give a number of days from 0 to 365.")])
    form_class = type("PlanForm", (FlaskForm,), attributes)
    data: dict[str, object] = {}
    for instrument in instruments.all():
        active, every, starts = entries.get(instrument.key, (False, None, 0))
        data[f"{instrument.key}__active"] = active
        data[f"{instrument.key}__every"] = "once" if every is None else str(every)
        data[f"{instrument.key}__starts"] = starts
    return form_class(data=data)
