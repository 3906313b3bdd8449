"""Notification channels (issue 11): email, web push and SMS behind one interface.

``CHANNELS`` holds one ``Channel`` per way of reaching a person, by name. A caller builds a
``Message`` from fixed wording (never health data), picks a channel and calls
``send(message, address, config)``: a ``Receipt``, or a ``TemporaryFailure`` (retry later),
a ``PermanentFailure`` (do not), or a ``SubscriptionGone`` (remove the push subscription).
``normalise_address`` checks a contact detail before it is stored, with a message for its
owner. Channels hold no state and touch no database: the caller records what happened.

This package sits beside the services and imports nothing of the app but the clock: no
model, service, view or blueprint. docs/notifications.md has the details.
"""
from __future__ import annotations

from .base import (
    Channel,
    Config,
    DeliveryError,
    Message,
    PermanentFailure,
    Receipt,
    SubscriptionGone,
    TemporaryFailure,
)
from .contacts import ContactError
from .outbox import RECEIPT_PREFIX as OUTBOX_RECEIPT_PREFIX
from .outbox import OutboxChannel
from .sms import SmsChannel
from .smtp import EmailChannel
from .webpush import PushChannel

#: Every channel by its name (the name is what delivery rows and patients' choices store).
CHANNELS: dict[str, Channel] = {
    channel.name: channel for channel in (EmailChannel(), PushChannel(), SmsChannel())
}
#: Development's stand-in for every channel the settings leave off (outbox.py): not one of
#: ``CHANNELS``, since patients choose, and deliveries name, the channel it stands in for.
OUTBOX = OutboxChannel()


def configured_channels(config: Config) -> list[Channel]:
    """The channels the settings switch on, in ``CHANNELS`` order (none: the clinic's settings
    page says that nothing can be sent)."""
    return [channel for channel in CHANNELS.values() if channel.configured(config)]


__all__ = [
    "CHANNELS", "OUTBOX", "OUTBOX_RECEIPT_PREFIX", "Channel", "Config", "ContactError",
    "DeliveryError", "Message",
    "PermanentFailure", "Receipt", "SubscriptionGone", "TemporaryFailure",
    "configured_channels",
]
