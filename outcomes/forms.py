"""Questionnaire forms, built from instrument definitions (one builder serves every
instrument, for patients and for clinicians transcribing paper forms)."""
from __future__ import annotations

import uuid
from collections.abc import Sequence

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, RadioField, SelectChoice, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

import instruments
from instruments import Instrument

UNANSWERED = "Choose an answer for this question."


class QuestionnaireForm(FlaskForm):
    """Base class; ``questionnaire_form`` adds one radio field per item."""

    submission_key = HiddenField()
    instrument: Instrument

    def item_fields(self) -> list[RadioField]:
        return [self[f"item_{item.number}"] for item in self.instrument.items]

    def answers(self) -> list[int | None]:
        """The answers in item order; None where an item was left unanswered."""
        return [field.data for field in self.item_fields()]

    def valid_answers(self) -> list[int | None]:
        """The answers in item order, None where unanswered or not a valid answer."""
        return [None if field.errors else field.data for field in self.item_fields()]

    def unanswered(self) -> list[RadioField]:
        return [field for field in self.item_fields() if field.errors]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not self.submission_key.data:
            self.form_errors.append("The form is missing its submission key; reload the page "
                                    "and enter the answers again.")
            valid = False
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
        # A fresh key per page load: a repeat of the same POST (double tap, retry) carries the
        # same key and stores nothing new. On a POST only what was sent counts.
        form.submission_key.data = uuid.uuid4().hex
        for number, value in enumerate(prefill or (), start=1):
            form[f"item_{number}"].data = value
    return form
