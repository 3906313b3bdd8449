"""A clinic's settings, changed by its admins in the browser (issues 11 and 12), in three groups:

- ``ClinicDetails``: the clinic's name, the crisis phone patients see, its time zone and what
  patients are told about response times after a disclosure;
- ``NotificationSettings``: how many reminders an occurrence gets, the quiet hours, the on-call
  address, when an unacknowledged crisis alert escalates, and the name messages are sent under;
- ``SignInPolicy``: the idle timeouts of staff and patients, and whether staff need a second
  factor where the server does not require one.

Every group goes through one path, ``update_settings``: checked as a whole (``SettingsRefused``
names each problem, and nothing is changed), stored, and audited old → new in one row (settings
only: nothing of any patient).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..channels.contacts import ContactError, email_address
from .. import clock
from ..clock import is_zone_name
from ..config import staff_mfa_required
from ..models import (
    DEFAULT_ESCALATION_MINUTES,
    DEFAULT_QUIET_FROM,
    DEFAULT_QUIET_UNTIL,
    DEFAULT_REMINDER_LIMIT,
    DEFAULT_SENDER_NAME,
    IDLE_MINUTES_MAX,
    IDLE_MINUTES_MIN,
    Clinic,
)
from . import audit
from .audit import Actor

REMINDER_LIMIT_MAX = 10
ESCALATION_MINUTES_MAX = 24 * 60
#: Bounds of the clinic's columns, which the forms repeat as the inputs' maxlength.
NAME_MAX = Clinic.__table__.c.name.type.length
SENDER_NAME_MAX = Clinic.__table__.c.message_sender_name.type.length
RESPONSE_WORDING_MAX = Clinic.__table__.c.alert_response_wording.type.length


class SettingsRefused(ValueError):
    """Settings that cannot be stored: a message per field (by its name). Nothing was
    changed."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


@dataclass(frozen=True)
class Context:
    """What some checks read besides the values sent: the clinic changed (a name must be no
    other clinic's), the session to look with, and the server's settings (its phone region, its
    default idle timeouts, whether it requires staff MFA itself)."""

    session: Session
    clinic: Clinic
    config: Mapping[str, Any]


@dataclass(frozen=True)
class ClinicDetails:
    """Who the clinic is to its patients, as the clinic's columns hold it."""

    name: str
    #: As patients dial it in the server's PHONE_REGION, or with + and a country code.
    crisis_phone: str
    #: An IANA zone name: the clinic's dates, its 'today' and its quiet hours follow it.
    timezone: str
    #: None: patients are promised nothing about when the care team responds.
    alert_response_wording: str | None

    def checked(self, context: Context) -> ClinicDetails:
        """The details in their stored form (trimmed; the phone written as patients read
        it; the zone's name as the tz database spells it; blank wording none), or
        ``SettingsRefused`` naming every problem."""
        problems: dict[str, str] = {}
        name = _one_line(self.name, "name", "the clinic's name", "Give the clinic's name.",
                         problems)
        if "name" not in problems and _name_taken(context, name):
            problems["name"] = NAME_TAKEN
        crisis_phone = self.crisis_phone.strip()
        # A number stored before numbers were checked (by `flask create-clinic`) is kept as it
        # is until it is changed, so that it does not block saving the rest.
        if crisis_phone != context.clinic.crisis_phone:
            try:
                crisis_phone = crisis_phone_number(crisis_phone, context.config["PHONE_REGION"])
            except ContactError as error:
                problems["crisis_phone"] = str(error)
        try:
            timezone = zone_name(self.timezone)
        except ValueError as error:
            problems["timezone"] = str(error)
            timezone = self.timezone
        # One short paragraph: line breaks and runs of spaces become single spaces.
        wording = " ".join((self.alert_response_wording or "").split()) or None
        if wording is not None and len(wording) > RESPONSE_WORDING_MAX:
            problems["alert_response_wording"] = (
                f"The wording is {len(wording)} characters long; keep it to "
                f"{RESPONSE_WORDING_MAX} (one or two short sentences).")
        if problems:
            raise SettingsRefused(problems)
        return ClinicDetails(name, crisis_phone, timezone, wording)


@dataclass(frozen=True)
class NotificationSettings:
    """The clinic's notification settings as its columns hold them."""

    reminder_limit: int
    #: Quiet hours, clinic wall time; equal times mean none.
    quiet_from: dt.time
    quiet_until: dt.time
    on_call_email: str | None
    escalation_minutes: int
    message_sender_name: str

    def checked(self, context: Context) -> NotificationSettings:
        """The settings in their stored form (the sender name trimmed, the on-call address
        normalised, a blank one none), or ``SettingsRefused`` naming every problem."""
        problems: dict[str, str] = {}
        if not 0 <= self.reminder_limit <= REMINDER_LIMIT_MAX:
            problems["reminder_limit"] = (f"Give a number of reminders from 0 to "
                                          f"{REMINDER_LIMIT_MAX} (0 sends none).")
        if not 1 <= self.escalation_minutes <= ESCALATION_MINUTES_MAX:
            problems["escalation_minutes"] = (f"Give a number of minutes from 1 to "
                                              f"{ESCALATION_MINUTES_MAX} (a day).")
        sender = _one_line(self.message_sender_name, "message_sender_name", "the sender name",
                           "Give the name messages are sent under.", problems)
        on_call = (self.on_call_email or "").strip() or None
        if on_call is not None:
            try:
                on_call = email_address(on_call)  # refuses one longer than an address can be
            except ContactError as error:
                problems["on_call_email"] = str(error)
        if problems:
            raise SettingsRefused(problems)
        return dataclasses.replace(self, message_sender_name=sender, on_call_email=on_call)


@dataclass(frozen=True)
class SignInPolicy:
    """How long sessions last without activity, and the clinic's own staff MFA rule."""

    #: Minutes; None: the server's STAFF_IDLE_MINUTES / PATIENT_IDLE_MINUTES.
    staff_idle_minutes: int | None
    patient_idle_minutes: int | None
    staff_mfa_required: bool

    def checked(self, context: Context) -> SignInPolicy:
        """The policy as it is stored, or ``SettingsRefused`` naming every problem."""
        problems: dict[str, str] = {}
        for name, default in (("staff_idle_minutes", "STAFF_IDLE_MINUTES"),
                              ("patient_idle_minutes", "PATIENT_IDLE_MINUTES")):
            minutes = getattr(self, name)
            if minutes is not None and not IDLE_MINUTES_MIN <= minutes <= IDLE_MINUTES_MAX:
                problems[name] = (f"Give a number of minutes from {IDLE_MINUTES_MIN} to "
                                  f"{IDLE_MINUTES_MAX}, or leave it empty for this server's "
                                  f"default ({context.config[default]} minutes).")
        if not self.staff_mfa_required and staff_mfa_required(context.config):
            problems["staff_mfa_required"] = MFA_REQUIRED_BY_SERVER
        if problems:
            raise SettingsRefused(problems)
        return self


Settings = TypeVar("Settings", ClinicDetails, NotificationSettings, SignInPolicy)

NAME_TAKEN = "Another clinic on this server already has that name: choose another."
MFA_REQUIRED_BY_SERVER = ("This server requires a second factor of every clinician and admin "
                          "(production always does), so it cannot be turned off here.")

#: What a new clinic starts with: local policy, not taken from any source (the issue's three
#: reminders a day apart, quiet from 21:00 to 09:00, escalation after half an hour).
DEFAULTS = NotificationSettings(DEFAULT_REMINDER_LIMIT, DEFAULT_QUIET_FROM, DEFAULT_QUIET_UNTIL,
                                None, DEFAULT_ESCALATION_MINUTES, DEFAULT_SENDER_NAME)


def settings_of(clinic: Clinic, group: type[Settings]) -> Settings:
    """The clinic's settings of ``group`` as they stand."""
    return group(**{field.name: getattr(clinic, field.name)
                    for field in dataclasses.fields(group)})


def update_settings(session: Session, actor: Actor, clinic: Clinic, settings: Settings,
                    config: Mapping[str, Any]) -> list[str]:
    """Store one group of the clinic's settings, once checked (``SettingsRefused``: nothing
    changed), and audit what changed, old → new; the names of the settings changed (none:
    nothing stored, nothing audited)."""
    wanted = settings.checked(Context(session, clinic, config))
    before = settings_of(clinic, type(settings))
    changed = [field.name for field in dataclasses.fields(wanted)
               if getattr(wanted, field.name) != getattr(before, field.name)]
    if not changed:
        return []
    try:
        with session.begin_nested():
            for name in changed:
                setattr(clinic, name, getattr(wanted, name))
            session.flush()
    except IntegrityError:
        if "name" not in changed:
            raise
        # The check above found the name free; another clinic took it at the same moment.
        raise SettingsRefused({"name": NAME_TAKEN}) from None
    audit.record(session, actor, "clinic.update", clinic_id=clinic.id, object_type="clinic",
                 object_id=clinic.id,
                 old={name: _stored(getattr(before, name)) for name in changed},
                 new={name: _stored(getattr(wanted, name)) for name in changed})
    return changed


def set_alert_response_wording(session: Session, actor: Actor, clinic: Clinic,
                               wording: str | None) -> list[str]:
    """Set (None or blank: clear) what the clinic tells a patient after an alert about when
    its care team responds (the app never words a promise of its own), as ``update_settings``
    does from the settings page, the clinic's other details as they stand:
    ``SettingsRefused`` when too long."""
    details = dataclasses.replace(settings_of(clinic, ClinicDetails),
                                  alert_response_wording=wording)
    # Only a changed crisis phone reads the server's settings (its phone region).
    return update_settings(session, actor, clinic, details, config={})


def crisis_phone_number(text: str, region: str) -> str:
    """A crisis line as patients read and dial it: any valid number (a landline too), written
    the region's national way (``(415) 555-0123``) or, for a number in another country,
    internationally (``+44 20 7946 0958``); or a short number valid in ``region`` (such as a
    national helpline's), as its digits. ``ContactError`` says what is wrong, without
    repeating what was typed."""
    expected = (f"give it as patients in {region} dial it, such as {phone_example(region)}, "
                f"or with + and the country code for a number abroad")
    if not text:
        raise ContactError(f"Give the number patients in crisis can call: {expected}.")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        raise ContactError(f"That is not a phone number: {expected}.") from None
    if phonenumbers.is_emergency_number(phonenumbers.national_significant_number(number),
                                        region):
        raise ContactError("That is the emergency number, which the crisis screen shows "
                           "already: give the clinic's own number.")
    if number.extension:
        raise ContactError("Give a number patients can call straight through, without an "
                           "extension.")
    if phonenumbers.is_valid_number(number):
        local = phonenumbers.region_code_for_number(number) == region
        return phonenumbers.format_number(
            number, PhoneNumberFormat.NATIONAL if local else PhoneNumberFormat.INTERNATIONAL)
    if phonenumbers.is_valid_short_number_for_region(number, region):
        return phonenumbers.national_significant_number(number)
    raise ContactError(f"That is not a valid phone number in {region}: {expected}.")


def phone_example(region: str) -> str:
    """A number of ``region`` written its national way, to show the format expected."""
    return phonenumbers.format_number(phonenumbers.example_number(region),
                                      PhoneNumberFormat.NATIONAL)


def zone_name(text: str) -> str:
    """The IANA zone named by ``text`` (its case need not match), or ``ValueError`` naming it
    and the closest known name."""
    name = text.strip()
    if is_zone_name(name):
        return name
    by_lower_case = {known.lower(): known for known in clock.zone_names()}
    if name.lower() in by_lower_case:
        return by_lower_case[name.lower()]
    if not name:
        raise ValueError("Give the clinic's time zone, such as America/New_York.")
    close = difflib.get_close_matches(name, clock.zone_names(), n=1, cutoff=0.75)
    hint = f"Did you mean {close[0]}?" if close else \
        "Give an IANA name, such as America/New_York or Europe/London."
    # The zone is named back (it is no one's data), cut short: it goes on the page.
    raise ValueError(f"“{name[:64]}” is not a time zone this server knows. {hint}")


def _one_line(text: str, field: str, label: str, missing: str,
              problems: dict[str, str]) -> str:
    """``text`` trimmed, or a problem noted under ``field`` (``label`` names it in the
    message): blank (``missing`` says so), on several lines, or longer than its column."""
    text = text.strip()
    limit = Clinic.__table__.c[field].type.length
    if not text:
        problems[field] = missing
    elif "\n" in text or "\r" in text:
        problems[field] = f"Keep {label} to one line."
    elif len(text) > limit:
        problems[field] = (f"{label[0].upper()}{label[1:]} is {len(text)} characters long; "
                           f"keep it to {limit}.")
    return text


def _name_taken(context: Context, name: str) -> bool:
    """Whether another clinic has ``name``, compared without case (as `find_clinic` does)."""
    return context.session.scalar(select(Clinic.id).where(
        func.lower(Clinic.name) == name.lower(), Clinic.id != context.clinic.id)) is not None


def _stored(value: object) -> object:
    """A setting as the audit row's JSON holds it (a time as "21:00")."""
    return value.strftime("%H:%M") if isinstance(value, dt.time) else value
