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

from ..models import PlanEntry


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


INTERVAL_CHOICES = [SelectChoice("7", "Every week"), SelectChoice("14", "Every 2 weeks"),
                    SelectChoice("28", "Every 4 weeks")]
LATER_INTERVAL_CHOICES = [SelectChoice("none", "Stop"), SelectChoice("14", "Every 2 weeks"),
                          SelectChoice("28", "Every 4 weeks"), SelectChoice("56", "Every 8 weeks")]
TIMINGS = (("baseline", "Before the first infusion"),
           ("before_infusion", "Within 24 hours before each infusion"),
           ("after_infusion", "The day after each infusion"),
           ("recurring", "Regularly, during the course and after it"))


def plan_form(entries: dict[tuple[str, str], PlanEntry]) -> FlaskForm:
    """One fieldset per questionnaire: which timings are on, and the regular interval."""
    attributes: dict[str, object] = {}
    data: dict[str, object] = {}
    for instrument in instruments.all():
        key = instrument.key
        for schedule, label in TIMINGS:
            attributes[f"{key}__{schedule}"] = BooleanField(label)
            entry = entries.get((key, schedule))
            data[f"{key}__{schedule}"] = bool(entry and entry.active)
        recurring = entries.get((key, "recurring"))
        attributes[f"{key}__every"] = SelectField("How often", choices=INTERVAL_CHOICES)
        attributes[f"{key}__follow_up"] = IntegerField(
            "Keep that up for how many weeks after the course",
            validators=[NumberRange(0, 104, "Give a number of weeks from 0 to 104.")])
        attributes[f"{key}__then_every"] = SelectField("Then", choices=LATER_INTERVAL_CHOICES)
        data[f"{key}__every"] = str(recurring.every_days) if recurring and recurring.every_days \
            else "7"
        data[f"{key}__follow_up"] = recurring.follow_up_weeks if recurring and \
            recurring.follow_up_weeks is not None else 12
        data[f"{key}__then_every"] = str(recurring.then_every_days) if recurring and \
            recurring.then_every_days else ("28" if recurring is None else "none")
    form = type("PlanForm", (FlaskForm,), attributes)()
    if not form.is_submitted():
        for name, value in data.items():
            form[name].data = value
    return form


def plan_changes(form: FlaskForm) -> dict[tuple[str, str], tuple[bool, int | None, int | None,
                                                                  int | None]]:
    """What the submitted plan form asks for, as ``plans.update_plan`` takes it."""
    changes = {}
    for instrument in instruments.all():
        key = instrument.key
        then_every = form[f"{key}__then_every"].data
        for schedule, _ in TIMINGS:
            active = bool(form[f"{key}__{schedule}"].data)
            if schedule == "recurring":
                changes[(key, schedule)] = (
                    active, int(form[f"{key}__every"].data), form[f"{key}__follow_up"].data,
                    None if then_every == "none" else int(then_every))
            else:
                changes[(key, schedule)] = (active, None, None, None)
    return changes
