"""A clinic's notification settings (issue 11): how many reminders an occurrence gets, the
quiet hours, the on-call address, when an unacknowledged crisis alert escalates, and the
name messages are sent under. Admins change them; the change is checked here, stored and
audited old → new (settings only: nothing of any patient)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..channels.contacts import ContactError, email_address
from ..models import (
    DEFAULT_ESCALATION_MINUTES,
    DEFAULT_QUIET_FROM,
    DEFAULT_QUIET_UNTIL,
    DEFAULT_REMINDER_LIMIT,
    DEFAULT_SENDER_NAME,
    Clinic,
)
from . import audit
from .audit import Actor

REMINDER_LIMIT_MAX = 10
ESCALATION_MINUTES_MAX = 24 * 60
SENDER_NAME_MAX = 60


@dataclass(frozen=True)
class NotificationSettings:
    """The settings as the clinic's columns hold them."""

    reminder_limit: int
    #: Quiet hours, clinic wall time; equal times mean none.
    quiet_from: dt.time
    quiet_until: dt.time
    on_call_email: str | None
    escalation_minutes: int
    message_sender_name: str


_FIELDS = tuple(field.name for field in dataclasses.fields(NotificationSettings))

#: What a new clinic starts with: local policy, not taken from any source (the issue's three
#: reminders a day apart, quiet from 21:00 to 09:00, escalation after half an hour).
DEFAULTS = NotificationSettings(DEFAULT_REMINDER_LIMIT, DEFAULT_QUIET_FROM, DEFAULT_QUIET_UNTIL,
                                None, DEFAULT_ESCALATION_MINUTES, DEFAULT_SENDER_NAME)


class SettingsRefused(ValueError):
    """Settings that cannot be stored: a message per field (by its name). Nothing was
    changed."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


def settings_of(clinic: Clinic) -> NotificationSettings:
    """The clinic's notification settings as they stand."""
    return NotificationSettings(**{name: getattr(clinic, name) for name in _FIELDS})


def checked(settings: NotificationSettings) -> NotificationSettings:
    """``settings`` in their stored form (the sender name's spaces trimmed, the on-call
    address normalised, a blank one none), or ``SettingsRefused`` naming every problem."""
    problems: dict[str, str] = {}
    if not 0 <= settings.reminder_limit <= REMINDER_LIMIT_MAX:
        problems["reminder_limit"] = (f"Give a number of reminders from 0 to "
                                      f"{REMINDER_LIMIT_MAX} (0 sends none).")
    if not 1 <= settings.escalation_minutes <= ESCALATION_MINUTES_MAX:
        problems["escalation_minutes"] = (f"Give a number of minutes from 1 to "
                                          f"{ESCALATION_MINUTES_MAX} (a day).")
    sender = settings.message_sender_name.strip()
    if not sender:
        problems["message_sender_name"] = "Give the name messages are sent under."
    elif "\n" in sender or "\r" in sender:
        problems["message_sender_name"] = "Keep the sender name to one line."
    elif len(sender) > SENDER_NAME_MAX:
        problems["message_sender_name"] = (f"The sender name is {len(sender)} characters long; "
                                           f"keep it to {SENDER_NAME_MAX}.")
    on_call = (settings.on_call_email or "").strip() or None
    if on_call is not None:
        try:
            on_call = email_address(on_call)  # refuses one longer than an address can be
        except ContactError as error:
            problems["on_call_email"] = str(error)
    if problems:
        raise SettingsRefused(problems)
    return dataclasses.replace(settings, message_sender_name=sender, on_call_email=on_call)


def update_notification_settings(session: Session, actor: Actor, clinic: Clinic,
                                 settings: NotificationSettings) -> list[str]:
    """Store the clinic's notification settings, once checked (``SettingsRefused``: nothing
    changed), and audit what changed, old → new; the names of the settings changed (none:
    nothing stored, nothing audited)."""
    wanted = checked(settings)
    before = settings_of(clinic)
    changed = [name for name in _FIELDS if getattr(wanted, name) != getattr(before, name)]
    if not changed:
        return []
    for name in changed:
        setattr(clinic, name, getattr(wanted, name))
    session.flush()
    audit.record(session, actor, "clinic.update", clinic_id=clinic.id, object_type="clinic",
                 object_id=clinic.id,
                 old={name: _stored(getattr(before, name)) for name in changed},
                 new={name: _stored(getattr(wanted, name)) for name in changed})
    return changed


def _stored(value: object) -> object:
    """A setting as the audit row's JSON holds it (a time as "21:00")."""
    return value.strftime("%H:%M") if isinstance(value, dt.time) else value
