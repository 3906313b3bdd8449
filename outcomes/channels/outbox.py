"""The outbox (development and the demo): it stands in for every channel the settings leave
off, and takes each message as sent with nothing leaving the machine.

A delivery it carries keeps the channel it was for (email, push, SMS) and gets a receipt of
the outbox's own (``outbox:<id>``), so the deliveries show every message that would have gone
out, rebuilt from their fixed wording. NOTIFICATION_OUTBOX switches it on; it is on by
default in development and refused in production, where a message taken as sent must have
left (docs/notifications.md)."""
from __future__ import annotations

import uuid

from .base import Channel, Config, Message, Receipt
from .contacts import ContactError

#: How an outbox receipt begins: a delivery whose receipt starts so never left the machine.
RECEIPT_PREFIX = "outbox:"


class OutboxChannel(Channel):
    name = "outbox"
    label = "Outbox"
    address_label = "address"

    def configured(self, config: Config) -> bool:
        return bool(config.get("NOTIFICATION_OUTBOX"))

    def normalise_address(self, address: str, config: Config) -> str:
        # The channel it stands in for checked the address when it was stored.
        if not address.strip():
            raise ContactError("There is no address.")
        return address

    def deliver(self, message: Message, address: str, config: Config) -> Receipt:
        return Receipt(self.name, RECEIPT_PREFIX + uuid.uuid4().hex)
