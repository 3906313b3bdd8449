"""A patient's own reminder settings (issue 11 item 3): reminders on or off, the channels
they come by, and the browsers that show web-push notifications. The addresses reminders go
to (email, mobile number) change through a confirmed link (``contact_changes``).

The channels offered are those the settings carry (``deliveries.carrier``: the channel's own
server, or development's outbox standing in for it), web push only where the clinic has its
VAPID keys, since a browser subscribes with the clinic's public key. Each writer checks what
it is given, raises ``SettingsError`` with a message for the patient and changes nothing when
it cannot be used, audits what changed (the phone number masked, no health data), and never
commits.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..channels import CHANNELS, Channel, ContactError
from ..channels.contacts import push_subscription
from ..channels.webpush import vapid_public_key
from ..models import Patient, PushSubscription
from . import audit
from .audit import Actor
from .deliveries import carrier

PUSH = "push"
SMS = "sms"
#: Host names that never leave the machine or the local network (RFC 6761, RFC 6762, RFC
#: 8375) and the suffixes of private DNS zones in common use.
LOCAL_NAMES = ("localhost",)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan", ".intranet")
#: The longest endpoint the push_subscription table holds.
ENDPOINT_MAX_LENGTH = PushSubscription.endpoint.type.length


class SettingsError(ValueError):
    """A setting that cannot be saved, with a message for the patient and, when it is about
    one field, that field's name."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def offered_channels(config: Mapping[str, Any]) -> list[Channel]:
    """The channels a patient may choose, in ``CHANNELS`` order: those the settings carry,
    and web push only with the clinic's VAPID keys (the outbox cannot stand in for a
    browser's subscription, which needs the public key)."""
    return [channel for channel in CHANNELS.values()
            if carrier(channel.name, config) is not None
            and (channel.name != PUSH or channel.configured(config))]


def push_public_key(config: Mapping[str, Any]) -> str | None:
    """The key browsers subscribe with (VAPID_PUBLIC_KEY, or derived from the private key),
    or None where web push is off."""
    if not CHANNELS[PUSH].configured(config):
        return None
    return config.get("VAPID_PUBLIC_KEY") or vapid_public_key(config)


def mask_phone(phone: str | None) -> str | None:
    """A stored number as the audit trail keeps it: its last two digits only."""
    return None if not phone else "…" + phone[-2:]


def _subscription_count(session: Session, patient: Patient) -> int:
    if patient.user_id is None:
        return 0
    return session.scalar(select(func.count(PushSubscription.id))
                          .where(PushSubscription.user_id == patient.user_id)) or 0


def _settings_of(patient: Patient) -> dict[str, Any]:
    return {"reminders_enabled": patient.reminders_enabled,
            "channels": list(patient.reminder_channels),
            "phone": mask_phone(patient.contact_phone)}


def _record_change(session: Session, actor: Actor, patient: Patient,
                   old: dict[str, Any]) -> None:
    audit.record(session, actor, "patient.reminder_settings", patient=patient,
                 object_type="patient", object_id=patient.id, old=old,
                 new=_settings_of(patient))


def update_reminder_settings(session: Session, actor: Actor, patient: Patient, *,
                             enabled: bool, channels: Sequence[str],
                             config: Mapping[str, Any]) -> bool:
    """Set the patient's reminders on or off and the channels they come by (text messages
    only to a mobile number they confirmed). True when anything changed (then audited)."""
    offered = {channel.name: channel for channel in offered_channels(config)}
    for name in channels:
        if name not in offered:
            label = CHANNELS[name].label if name in CHANNELS else "That way of reminding"
            raise SettingsError(f"{label} is not available at your clinic: choose one of "
                                "the ways listed.", "channels")
    chosen = [name for name in offered if name in channels]
    if enabled and not chosen:
        raise SettingsError("Choose at least one way to be reminded, or turn reminders off.",
                            "channels")
    if SMS in chosen and patient.contact_phone is None:
        raise SettingsError("Text messages need your mobile number: add it under Contact "
                            "details and follow the link we text to it, or untick text "
                            "messages.", "channels")
    if PUSH in chosen and not _subscription_count(session, patient):
        raise SettingsError("Turn on notifications on this phone first (below); then they "
                            "can remind you.", "channels")
    old = _settings_of(patient)
    if (patient.reminders_enabled, list(patient.reminder_channels)) == (enabled, chosen):
        return False
    patient.reminders_enabled = enabled
    patient.reminder_channels = chosen
    session.flush()
    _record_change(session, actor, patient, old)
    return True


def private_host(hostname: str) -> bool:
    """Whether ``hostname`` names this machine or a private network: a loopback, private,
    link-local or otherwise non-public address, or a name that only resolves locally."""
    address = ip_address(hostname)
    if address is None:
        name = hostname.lower().rstrip(".")
        return "." not in name or name in LOCAL_NAMES or name.endswith(LOCAL_SUFFIXES)
    return not address.is_global


def ip_address(hostname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``hostname`` spells, or None for a name. Besides the usual forms, the
    short and hexadecimal ones (``127.1``, ``0x7f.1``) that the system's resolver, and so the
    worker's HTTP client, reads as addresses too."""
    try:
        return ipaddress.ip_address(hostname)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(hostname))
    except OSError:
        return None


def checked_subscription(text: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A browser's subscription (``PushSubscription.toJSON()``) as endpoint and keys, refused
    unless the push channel's check passes and, in production, unless its endpoint is on a
    public host: the worker posts to it, and must not be sent into the clinic's network."""
    try:
        subscription: dict[str, Any] = json.loads(push_subscription(text))
    except ContactError as error:
        raise SettingsError(str(error)) from None
    if len(subscription["endpoint"]) > ENDPOINT_MAX_LENGTH:
        raise SettingsError("This browser's push subscription cannot be used: its endpoint "
                            "is too long.")
    host = urlsplit(subscription["endpoint"]).hostname or ""
    if config.get("OUTCOMES_ENV") == "production" and private_host(host):
        raise SettingsError("This browser's push subscription cannot be used: its endpoint "
                            "is not a public push service.")
    return subscription


def save_push_subscription(session: Session, actor: Actor, patient: Patient, text: str,
                           config: Mapping[str, Any]) -> PushSubscription:
    """Store this browser's subscription for the patient's account and add web push to their
    reminder channels. The same endpoint again (a browser subscribing anew, or another
    account signing in on it) updates the one row: a browser reaches whoever subscribed it
    last."""
    if patient.user_id is None or not CHANNELS[PUSH].configured(config):
        raise SettingsError("Your clinic does not send notifications to phones.")
    subscription = checked_subscription(text, config)
    keys = subscription["keys"]
    stored = session.scalar(select(PushSubscription).where(
        PushSubscription.endpoint == subscription["endpoint"]))
    if stored is None:
        stored = PushSubscription(user_id=patient.user_id, endpoint=subscription["endpoint"],
                                  p256dh=keys["p256dh"], auth=keys["auth"])
        session.add(stored)
    else:
        stored.user_id = patient.user_id
        stored.p256dh, stored.auth = keys["p256dh"], keys["auth"]
    session.flush()
    audit.record(session, actor, "push_subscription.save", patient=patient,
                 object_type="push_subscription", object_id=stored.id)
    if PUSH not in patient.reminder_channels:
        old = _settings_of(patient)
        patient.reminder_channels = [name for name in CHANNELS
                                     if name in patient.reminder_channels or name == PUSH]
        session.flush()
        _record_change(session, actor, patient, old)
    return stored


def remove_push_subscription(session: Session, actor: Actor, patient: Patient,
                             endpoint: str) -> bool:
    """Remove this browser's subscription (its endpoint) from the patient's account; web
    push leaves their reminder channels with the account's last one. False when the account
    had no such subscription (removed already, or never this account's)."""
    removed = session.scalar(delete(PushSubscription).where(
        PushSubscription.user_id == patient.user_id, PushSubscription.endpoint == endpoint)
        .returning(PushSubscription.id))
    if removed is None:
        return False
    audit.record(session, actor, "push_subscription.remove", patient=patient,
                 object_type="push_subscription", object_id=removed)
    if PUSH in patient.reminder_channels and not _subscription_count(session, patient):
        old = _settings_of(patient)
        patient.reminder_channels = [name for name in patient.reminder_channels
                                     if name != PUSH]
        session.flush()
        _record_change(session, actor, patient, old)
    return True
