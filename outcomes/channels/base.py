"""The one interface every notification channel implements, and what a send can end in.

A caller (issue 11's delivery writer) builds a ``Message``, picks a channel from ``CHANNELS``
and calls ``channel.send(message, address, config)``. It gets a ``Receipt`` or one of:

- ``TemporaryFailure``: the server was down, slow or busy (SMTP unreachable, a timeout, a
  provider's 5xx or 429, credentials it refused): retry later, with back-off;
- ``PermanentFailure``: this message will never reach this address (a refused recipient, an
  invalid number, an unconfigured channel): record it as failed, do not retry;
- ``SubscriptionGone`` (a permanent failure): the push service forgot the subscription
  (404/410); the caller removes it.

An error's text is a reason fit for a delivery row and a log: it never holds the address or
the message, and never a secret setting.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .contacts import ContactError


@dataclass(frozen=True)
class Message:
    """What is sent: a subject line, a short plain-text body and a link into Outcomes.

    The caller builds every message from fixed wording ("A questionnaire is ready for you",
    "A patient needs attention — open Outcomes") and a link; it never holds health data (no
    score, answer, instrument, condition, drug or patient name), because it leaves the clinic
    through third parties and shows on lock screens. ``sender_name`` is the clinic's chosen
    sender name (a clinic may not want its specialty on a lock screen); empty, the channel
    shows none.
    """

    subject: str
    body: str
    link: str
    sender_name: str = ""

    def __post_init__(self) -> None:
        if not self.subject.strip() or not _one_line(self.subject):
            raise ValueError("a message's subject is one line of text")
        if not _one_line(self.sender_name):
            raise ValueError("a message's sender name is one line of text")
        if not self.body.strip():
            raise ValueError("a message has a body")
        link = urlsplit(self.link)
        if link.scheme not in {"https", "http"} or not link.netloc:
            raise ValueError("a message's link is an absolute http(s) address")


def _one_line(text: str) -> bool:
    return "\n" not in text and "\r" not in text


@dataclass(frozen=True)
class Receipt:
    """A message the server accepted: the channel's name and the server's reference for it
    (the email's Message-ID, the push service's message URL, the SMS provider's id)."""

    channel: str
    reference: str


class DeliveryError(Exception):
    """A message that was not delivered; ``str()`` says why, without address or content."""


class TemporaryFailure(DeliveryError):
    """Worth retrying later; ``retry_after`` is the server's own wait in seconds, if it gave
    one (a push service's Retry-After)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentFailure(DeliveryError):
    """This message will never reach this address: do not retry."""


class SubscriptionGone(PermanentFailure):
    """The push service no longer knows the subscription (404 or 410): remove it."""


Config = Mapping[str, Any]


class Channel(ABC):
    """One way of reaching a person. Subclasses set ``name`` (the registry key, stored on
    delivery rows), ``label`` (shown to people) and ``address_label``, and implement
    ``configured``, ``normalise_address`` and ``deliver``."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: What an address of this channel is called in messages ("email address").
    address_label: ClassVar[str]

    @abstractmethod
    def configured(self, config: Config) -> bool:
        """Whether the settings name a server for this channel (partial settings are refused
        when the app starts, so this looks at the one that switches it on)."""

    @abstractmethod
    def normalise_address(self, address: str, config: Config) -> str:
        """The address as it is stored and sent to, or ``ContactError`` with a message fit
        for the person who typed it (or the browser that made it)."""

    @abstractmethod
    def deliver(self, message: Message, address: str, config: Config) -> Receipt:
        """Send to a normalised address, raising ``TemporaryFailure`` or
        ``PermanentFailure``."""

    def send(self, message: Message, address: str, config: Config) -> Receipt:
        """Send ``message`` to ``address`` with the ``config`` settings (the app's config, or
        any mapping of the same settings): a ``Receipt``, or a ``DeliveryError``."""
        if not self.configured(config):
            raise PermanentFailure(f"{self.label} is not configured")
        try:
            address = self.normalise_address(address, config)
        except ContactError as error:
            raise PermanentFailure(f"not a usable {self.address_label}: {error}") from None
        return self.deliver(message, address, config)
