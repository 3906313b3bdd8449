"""Questionnaire forms, built from instrument definitions (one builder serves every
instrument, for patients and for clinicians transcribing paper forms)."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, RadioField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

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

    def unanswered(self) -> list[RadioField]:
        return [field for field in self.item_fields() if field.errors]


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
    formdata: object = None,
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
    for item in instrument.items:
        required = item.required and not transcription
        attributes[f"item_{item.number}"] = RadioField(
            item.text,
            choices=[(option.value, option.label) for option in item.options],
            coerce=int,
            validators=[InputRequired(UNANSWERED)] if required else [Optional()],
            invalid_choice_message=UNANSWERED,
        )
    form_class = type(f"{instrument.key}_form", tuple(bases), attributes)
    data: dict[str, object] = {"submission_key": uuid.uuid4().hex}
    if prefill is not None:
        data.update({f"item_{number}": value for number, value in enumerate(prefill, start=1)})
    if transcription:
        data["administered_on"] = dt.date.today()
    kwargs = {} if formdata is None else {"formdata": formdata}
    return form_class(data=data, **kwargs)
