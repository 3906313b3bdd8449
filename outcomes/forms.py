"""What forms share: the submission key of every form that stores a record, the clinic's
date bounds, and the questionnaire forms, built from instrument definitions (one builder
serves every instrument, for patients and for clinicians transcribing paper forms)."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import DateField, Field, HiddenField, RadioField, SelectChoice, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, StopValidation

import instruments
from instruments import Instrument

from .clock import clinic_today

UNANSWERED = "Choose an answer for this question."


class KeyedForm(FlaskForm):
    """A form that stores a record. It carries a key made when it is shown: a repeat of the
    same POST (double tap, retry, two at once) carries the same key and stores nothing new
    (``services.submissions``; ``services.assessments`` for questionnaires). On a POST only
    what was sent counts."""

    submission_key = HiddenField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_submitted():
            self.submission_key.data = uuid.uuid4().hex

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        key = self.submission_key.data
        if not key or len(key) > 64:
            self.form_errors.append("The form is missing its submission key; reload the page "
                                    "and enter it again.")
            valid = False
        return valid


def date_problem(day: dt.date, what: str, timezone: str, *, ahead: bool = False) -> str | None:
    """Why ``day`` cannot be the date of ``what`` ("The infusion"), or None when it can.

    Nothing dates from before EARLIEST_RECORD_DATE; nothing that happened dates from after
    today in the clinic's ``timezone``; a booking (``ahead``) is at most BOOKING_HORIZON_DAYS
    ahead. Both numbers are local policy, in the settings."""
    earliest: dt.date = current_app.config["EARLIEST_RECORD_DATE"]
    today = clinic_today(timezone)
    if day < earliest:
        return f"{what} cannot be before {earliest:%-d %B %Y}. Check the year."
    if not ahead and day > today:
        return f"{what} cannot be after today ({today:%-d %B %Y} at the clinic)."
    horizon = current_app.config["BOOKING_HORIZON_DAYS"]
    if ahead and day > today + dt.timedelta(days=horizon):
        return (f"{what} can be at most {horizon} days ahead, until "
                f"{today + dt.timedelta(days=horizon):%-d %B %Y}. Check the year.")
    return None


class ClinicDate:
    """A field validator: the date (or date and time) must be one the clinic's calendar
    allows (``date_problem``). The form is built with ``meta={"timezone": ...}``, the
    clinic's zone, whose today counts."""

    def __init__(self, what: str, *, ahead: bool = False) -> None:
        self.what = what
        self.ahead = ahead

    def __call__(self, form: FlaskForm, field: Field) -> None:
        if field.data is None:
            return
        day = field.data.date() if isinstance(field.data, dt.datetime) else field.data
        problem = date_problem(day, self.what, form.meta.timezone, ahead=self.ahead)
        if problem:
            raise StopValidation(problem)


class QuestionnaireForm(KeyedForm):
    """Base class; ``questionnaire_form`` adds one radio field per item."""

    instrument: Instrument

    def item_fields(self) -> list[RadioField]:
        return [self[f"item_{item.number}"] for item in self.instrument.items]

    def answers(self) -> list[int | None]:
        """The answers in item order; None where an item was left unanswered."""
        return [field.data for field in self.item_fields()]

    def valid_answers(self) -> list[int | None]:
        """The answers in item order, None where unanswered or not a valid answer."""
        return [None if field.errors else field.data for field in self.item_fields()]

    def unanswered(self) -> list[int]:
        """The numbers of the items sent without a valid answer."""
        return [item.number for item, field in zip(self.instrument.items, self.item_fields())
                if field.errors]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if valid and all(answer is None for answer in self.answers()):
            self.form_errors.append("No question has an answer. Enter at least one.")
            valid = False
        return valid


class TranscriptionFields:
    administered_on = DateField(
        "Date the patient completed the paper form",
        validators=[DataRequired("Give the date written on the form.")],
    )


class CorrectionFields:
    amendment_reason = TextAreaField(
        "Reason for the correction",
        validators=[DataRequired("Say why the record is being corrected."), Length(max=2000)],
    )


def questionnaire_form(
    instrument: Instrument,
    *,
    transcription: bool = False,
    correction: bool = False,
    prefill: Sequence[int | None] | None = None,
) -> QuestionnaireForm:
    """A form for ``instrument``.

    Patients must answer every required item. A transcription accepts blanks, because paper
    forms come back with blanks and the scoring rules say what a blank means.
    """
    bases: list[type] = [QuestionnaireForm]
    if correction:
        bases.insert(0, CorrectionFields)
    if transcription:
        bases.insert(0, TranscriptionFields)
    attributes: dict[str, object] = {"instrument": instrument}
    # An item whose blank is itself a risk signal (PHQ-9 item 9) never blocks a patient's
    # submission: a blank there is stored, scored as risk unknown, and alerts the clinic.
    blank_is_risk = instruments.crisis_items(instrument.key)
    for item in instrument.items:
        required = item.required and not transcription and item.number not in blank_is_risk
        attributes[f"item_{item.number}"] = RadioField(
            item.text,
            choices=[SelectChoice(option.value, option.label) for option in item.options],
            coerce=int,
            validators=[InputRequired(UNANSWERED)] if required else [Optional()],
            invalid_choice_message=UNANSWERED,
        )
    form = type(f"{instrument.key}_form", tuple(bases), attributes)()
    if not form.is_submitted():
        for number, value in enumerate(prefill or (), start=1):
            form[f"item_{number}"].data = value
    return form
