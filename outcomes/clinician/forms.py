from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    EmailField,
    FloatField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TelField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, HiddenInput, ListWidget

import instruments

from ..forms import ClinicDate, KeyedForm
from ..models import IDLE_MINUTES_MAX, IDLE_MINUTES_MIN, PlanEntry
from ..services.clinic_settings import NAME_MAX, RESPONSE_WORDING_MAX, SENDER_NAME_MAX
from ..services.courses import INDICATION_LABELS, SIDE_EFFECTS, STATUS_LABELS
from ..services.dashboard import FILTERS, sorts
from ..services.triage import inbox_kinds


class EnrolPatientForm(KeyedForm):
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
    #: Where to go back to: the patient's record, or the triage inbox.
    back = SelectField(choices=[SelectChoice("patient", "patient"), SelectChoice("inbox", "inbox")],
                       default="patient", validators=[Optional()])
    #: How many later records linked to the alert the page showed; acknowledging refuses if
    #: more are linked by now. Missing counts as none, the most cautious reading.
    seen = IntegerField(widget=HiddenInput(), default=0,
                        validators=[Optional(), NumberRange(min=0)])


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
    form = type("PlanForm", (KeyedForm,), attributes)()
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


class DashboardFilters(FlaskForm):
    """The dashboard's filters and sort."""

    filter = SelectField("Show", choices=[SelectChoice("", "All patients under care")] + [
        SelectChoice(key, label) for key, label in FILTERS.items()], validators=[Optional()])
    status = SelectField("Course", choices=[SelectChoice("", "Any course"),
                                            SelectChoice("none", "No course")] + [
        SelectChoice(key, label) for key, label in STATUS_LABELS.items()],
        validators=[Optional()])
    mine = BooleanField("Only my patients")
    # A callable: the sorts by measure follow the definitions' headline measures.
    sort = SelectField("Sort by", choices=lambda: [SelectChoice(key, label)
                                                   for key, label in sorts().items()],
                       default="priority", validators=[Optional()])


class DashboardForm(DashboardFilters):
    """The dashboard's filters, read from the URL. A search by name or identifier never
    travels in it: the URL carries an opaque reference (``search``) to a search kept in the
    session, so names and MRNs stay out of access logs and browser history."""

    class Meta:
        csrf = False  # a GET form: nothing changes

    search = StringField("Search reference", validators=[Optional(), Length(max=32)])
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(1, 100_000)])


class DashboardSearchForm(DashboardFilters):
    """The dashboard's form as sent: by POST, so the search text is never in a URL."""

    q = StringField("Search name or identifier", validators=[Optional(), Length(max=100)])


class InboxForm(FlaskForm):
    """The triage inbox's filters, read from the URL (no health data in them)."""

    class Meta:
        csrf = False

    mine = BooleanField("Only my patients")
    kind = SelectField("Kind", choices=[SelectChoice("", "All kinds")] + [
        SelectChoice(key, label) for key, label in inbox_kinds().items()],
        validators=[Optional()])


# Forms with dates are built with meta={"timezone": <the clinic's zone>} (``ClinicDate``).
BOOKED = ClinicDate("The booked infusion", ahead=True)


class CourseForm(KeyedForm):
    indication = SelectField("Indication", choices=[
        SelectChoice(key, label) for key, label in INDICATION_LABELS.items()])
    planned_infusions = IntegerField("Planned infusions", default=6, validators=[
        InputRequired("Give the number of planned infusions."),
        NumberRange(1, 24, "Plan between 1 and 24 infusions.")])
    start_date = DateField("Start date", validators=[
        InputRequired("Give the start date."), ClinicDate("The start date", ahead=True)])
    next_infusion_at = DateTimeLocalField("First infusion booked for (optional)",
                                          validators=[Optional(), BOOKED])


class CourseUpdateForm(KeyedForm):
    status = SelectField("Status", choices=[SelectChoice(key, label)
                                            for key, label in STATUS_LABELS.items()])
    planned_infusions = IntegerField("Planned infusions", validators=[
        InputRequired("Give the number of planned infusions."),
        NumberRange(1, 24, "Plan between 1 and 24 infusions.")])
    next_infusion_at = DateTimeLocalField("Next infusion booked for (optional)",
                                          validators=[Optional(), BOOKED])


def _measure(label: str, required: bool = True, decimal: bool = False):
    field = FloatField if decimal else IntegerField
    validators = [InputRequired(f"Give the {label[0].lower() + label[1:]}.")] if required \
        else [Optional()]
    return field(label, validators=validators,
                 render_kw={"inputmode": "decimal" if decimal else "numeric"})


class InfusionForm(KeyedForm):
    """One infusion. The bounds are checked by ``services.courses`` (and the schema); the
    form refuses dates the clinic's calendar cannot have."""

    administered_at = DateTimeLocalField("Date and time of the infusion", validators=[
        InputRequired("Give the date and time of the infusion."), ClinicDate("The infusion")])
    weight_kg = _measure("Weight (kg)", decimal=True)
    dose_mg_per_kg = _measure("Dose (mg/kg)", decimal=True)
    total_dose_mg = _measure("Total dose (mg)", decimal=True)
    duration_minutes = _measure("Duration (minutes)")
    systolic_before = _measure("Systolic before (mmHg)")
    diastolic_before = _measure("Diastolic before (mmHg)")
    heart_rate_before = _measure("Heart rate before (beats/min)")
    spo2_before = _measure("SpO2 before (%)")
    systolic_peak = _measure("Systolic at peak (mmHg)", required=False)
    diastolic_peak = _measure("Diastolic at peak (mmHg)", required=False)
    heart_rate_peak = _measure("Heart rate at peak (beats/min)", required=False)
    spo2_peak = _measure("SpO2 at peak (%)", required=False)
    systolic_after = _measure("Systolic after (mmHg)")
    diastolic_after = _measure("Diastolic after (mmHg)")
    heart_rate_after = _measure("Heart rate after (beats/min)")
    spo2_after = _measure("SpO2 after (%)")
    side_effects = SelectMultipleField(
        "Side effects observed",
        choices=[SelectChoice(key, label) for key, label in SIDE_EFFECTS.items()],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
        validators=[Optional()])
    dissociation_rating = RadioField(
        "Dissociation rating (a local 0–4 rating, not a validated scale)",
        choices=[SelectChoice(value, label) for value, label in (
            (0, "0 none"), (1, "1 mild"), (2, "2 moderate"), (3, "3 marked"),
            (4, "4 severe"))],
        coerce=int, validators=[Optional()])
    adverse_events = TextAreaField("Adverse events", validators=[Optional(), Length(max=4000)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=4000)])
    next_infusion_at = DateTimeLocalField("Next infusion booked for (optional)",
                                          validators=[Optional(), BOOKED])
    #: On the correction page: the version shown, which the correction replaces.
    corrects_version = IntegerField("Version being corrected", widget=HiddenInput(),
                                    validators=[Optional()])
    correction_reason = TextAreaField("Reason for the correction",
                                      validators=[Optional(), Length(max=2000)])

    MEASURES = ("weight_kg", "dose_mg_per_kg", "total_dose_mg", "duration_minutes",
                *(f"{vital}_{when}" for when in ("before", "peak", "after")
                  for vital in ("systolic", "diastolic", "heart_rate", "spo2")))


# The settings forms read the values; ``services.clinic_settings`` checks them and says what
# is wrong with each. Their fields are named as the clinic's columns.

class ClinicDetailsForm(FlaskForm):
    """Who the clinic is to its patients."""

    name = StringField("Clinic name", validators=[InputRequired("Give the clinic's name.")],
                       render_kw={"maxlength": NAME_MAX, "autocomplete": "off"})
    crisis_phone = TelField("Crisis phone shown to patients", validators=[
        InputRequired("Give the number patients in crisis can call.")],
        render_kw={"autocomplete": "off", "inputmode": "tel"})
    #: Typed, with the list of zones offered as suggestions (the page's datalist).
    timezone = StringField("Time zone", validators=[
        InputRequired("Give the clinic's time zone, such as America/New_York.")],
        render_kw={"list": "time-zones", "autocomplete": "off", "autocapitalize": "off",
                   "spellcheck": "false"})
    alert_response_wording = TextAreaField(
        "What patients are told about when the care team responds (optional)",
        render_kw={"maxlength": RESPONSE_WORDING_MAX, "rows": 3})


class SignInPolicyForm(FlaskForm):
    """How long sessions last without activity, and the clinic's staff MFA rule."""

    staff_idle_minutes = IntegerField(
        "Staff: minutes without activity before signing out (optional)",
        validators=[Optional()], render_kw={"min": IDLE_MINUTES_MIN, "max": IDLE_MINUTES_MAX,
                                            "inputmode": "numeric"})
    patient_idle_minutes = IntegerField(
        "Patients: minutes without activity before signing out (optional)",
        validators=[Optional()], render_kw={"min": IDLE_MINUTES_MIN, "max": IDLE_MINUTES_MAX,
                                            "inputmode": "numeric"})
    staff_mfa_required = BooleanField(
        "Clinicians and admins sign in with a second factor (an authenticator app's code or "
        "a passkey)")


class NotificationSettingsForm(FlaskForm):
    """The clinic's notification settings."""

    reminder_limit = IntegerField(
        "Reminders per questionnaire", validators=[
            InputRequired("Give the number of reminders, from 0 to 10 (0 sends none).")],
        render_kw={"min": 0, "max": 10, "inputmode": "numeric"})
    quiet_from = TimeField("Quiet hours from", validators=[
        InputRequired("Give the time quiet hours start, such as 21:00.")])
    quiet_until = TimeField("Quiet hours until", validators=[
        InputRequired("Give the time quiet hours end, such as 09:00.")])
    on_call_email = EmailField("On-call email (optional)", validators=[Optional()],
                               render_kw={"autocomplete": "off"})
    escalation_minutes = IntegerField(
        "Minutes before an unacknowledged crisis alert goes to the admins", validators=[
            InputRequired("Give a number of minutes from 1 to 1440.")],
        render_kw={"min": 1, "max": 1440, "inputmode": "numeric"})
    message_sender_name = StringField("Name messages are sent under", validators=[
        InputRequired("Give the name messages are sent under.")],
        render_kw={"maxlength": SENDER_NAME_MAX})


STAFF_ROLE_CHOICES = [SelectChoice("clinician", "Clinician"), SelectChoice("admin", "Admin")]


class InviteStaffForm(FlaskForm):
    """An admin invites a colleague by email (``services.staff`` checks the address)."""

    email = EmailField("Their email address", validators=[
        DataRequired("Give the email address to invite."), Length(max=254)],
        render_kw={"autocomplete": "off"})
    role = SelectField("Role", choices=STAFF_ROLE_CHOICES, default="clinician")


class StaffMemberForm(FlaskForm):
    """A change to one colleague's account, named by their id (the view loads it from the
    admin's own clinic, or answers 404)."""

    user_id = IntegerField(widget=HiddenInput(), validators=[InputRequired()])


class StaffRoleForm(StaffMemberForm):
    role = SelectField("Role", choices=STAFF_ROLE_CHOICES)


class StaffActiveForm(StaffMemberForm):
    #: What the button asks for: "off" deactivates the account, "on" reactivates it.
    active = SelectField(choices=[SelectChoice("off", "Deactivate"),
                                  SelectChoice("on", "Reactivate")])


class RevokeStaffInvitationForm(FlaskForm):
    invitation_id = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
