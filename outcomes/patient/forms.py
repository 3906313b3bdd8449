"""The patient's own forms besides the questionnaires (outcomes/forms.py builds those): their
reminder settings, their contact details, and a browser's push subscription."""
from __future__ import annotations

from collections.abc import Sequence

from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    HiddenField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    TelField,
)
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ..channels import Channel
from ..models import CONTACT_KINDS

#: The channels as patients read them (the channels' own labels are the staff's words).
CHANNEL_WORDS = {"email": "Email", "sms": "Text message", "push": "Notification on my phone"}
REMINDERS_ON, REMINDERS_OFF = "on", "off"


class ReminderSettingsForm(FlaskForm):
    reminders = RadioField("Reminders", choices=[
        SelectChoice(REMINDERS_ON, "Yes, remind me when a questionnaire is ready"),
        SelectChoice(REMINDERS_OFF, "No reminders")],
        validators=[InputRequired("Choose whether you want reminders.")])
    # Any name is taken here; the service refuses, with a message, one the clinic does not
    # offer (WTForms' own message would only say it is "not a valid choice").
    channels = SelectMultipleField("How to remind me", widget=ListWidget(prefix_label=False),
                                   option_widget=CheckboxInput(), validate_choice=False)

    def __init__(self, offered: Sequence[Channel], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.channels.choices = [SelectChoice(channel.name,
                                              CHANNEL_WORDS.get(channel.name, channel.label))
                                 for channel in offered]

    @property
    def enabled(self) -> bool:
        return self.reminders.data == REMINDERS_ON


class ContactDetailsForm(FlaskForm):
    """The addresses reminders go to. The service checks each (``contact_changes``): a new
    one is used once the patient follows the link sent to it; a blank removes it."""

    email = EmailField("Email address for reminders", validators=[
        Optional(), Length(max=254, message="That is too long for an email address.")])
    phone = TelField("Mobile number for text messages", validators=[
        Optional(), Length(max=32, message="That is too long for a phone number.")])


class WaitingChangeForm(FlaskForm):
    """Which waiting change to resend or cancel (a hidden field of its button)."""

    kind = HiddenField(validators=[AnyOf(CONTACT_KINDS, message=(
        "That change is not known: reload the page and try again."))])


class PushSubscriptionForm(FlaskForm):
    """This browser's subscription, ``PushSubscription.toJSON()``, filled in by push.js."""

    subscription = HiddenField(validators=[DataRequired(
        "This browser sent no push subscription: reload the page and try again.")])


class PushRemovalForm(FlaskForm):
    """This browser's subscription endpoint, filled in by push.js."""

    endpoint = HiddenField(validators=[DataRequired(
        "This browser sent no push subscription: reload the page and try again.")])
