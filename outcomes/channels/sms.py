"""Text messages through an SMS provider, chosen by SMS_PROVIDER from ``SMS_PROVIDERS``.

A provider sends one text to one E.164 number and answers with its id for the message, or
raises ``TemporaryFailure`` / ``PermanentFailure``. Twilio's is the one there is; another
provider is one more class here and one line in ``SMS_PROVIDERS``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from .base import Channel, Config, Message, PermanentFailure, Receipt, TemporaryFailure
from .contacts import phone_number


class SmsProvider(ABC):
    """One SMS provider's API."""

    @abstractmethod
    def configured(self, config: Config) -> bool:
        """Whether the provider's account settings are there."""

    @abstractmethod
    def send_text(self, to: str, text: str, config: Config) -> str:
        """Send ``text`` to the E.164 number ``to``; the provider's id for the message."""


class Twilio(SmsProvider):
    """Twilio's Messages API through its official client, at TWILIO_API_BASE_URL (tests point
    it at a local server), from TWILIO_FROM_NUMBER."""

    def configured(self, config: Config) -> bool:
        return bool(config.get("TWILIO_ACCOUNT_SID"))

    def send_text(self, to: str, text: str, config: Config) -> str:
        # Imported at the first text, not with the app: Twilio's client (~20 MB) is for the
        # worker that sends, not for every web worker.
        from twilio.base.exceptions import TwilioRestException
        from twilio.http.http_client import TwilioHttpClient
        import requests
        from twilio.rest import Client

        client = Client(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"],
                        http_client=TwilioHttpClient(timeout=config["NOTIFICATION_TIMEOUT"]))
        client.api.base_url = config["TWILIO_API_BASE_URL"]
        try:
            sent = client.messages.create(to=to, from_=config["TWILIO_FROM_NUMBER"], body=text)
        except TwilioRestException as error:
            # Twilio's own text names the number: only its status and error code are kept.
            reason = f"Twilio answered {error.status} (error {error.code})"
            if error.status == 429 or error.status >= 500:
                raise TemporaryFailure(reason) from None
            if error.status in {401, 403}:
                raise TemporaryFailure(f"{reason}: check TWILIO_ACCOUNT_SID and "
                                       "TWILIO_AUTH_TOKEN") from None
            # Any other 4xx is about this message (https://www.twilio.com/docs/api/errors):
            # not a valid number (21211), not a mobile (21614), the recipient replied STOP
            # (21610)... Sending it again would meet the same answer.
            raise PermanentFailure(reason) from None
        except requests.RequestException as error:
            raise TemporaryFailure(
                f"Twilio could not be reached ({type(error).__name__})") from None
        return sent.sid or ""


#: The SMS providers by SMS_PROVIDER's value.
SMS_PROVIDERS: dict[str, SmsProvider] = {"twilio": Twilio()}


def text_of(message: Message) -> str:
    """The SMS: the clinic's sender name, the body and the link (texts have no subject)."""
    body = f"{message.sender_name}: {message.body}" if message.sender_name else message.body
    return f"{body}\n{message.link}"


class SmsChannel(Channel):
    name = "sms"
    label = "Text message (SMS)"
    address_label = "mobile number"

    def configured(self, config: Config) -> bool:
        return SMS_PROVIDERS[config["SMS_PROVIDER"]].configured(config)

    def normalise_address(self, address: str, config: Config) -> str:
        return phone_number(address, config["PHONE_REGION"])

    def deliver(self, message: Message, address: str, config: Config) -> Receipt:
        provider = SMS_PROVIDERS[config["SMS_PROVIDER"]]
        return Receipt(self.name, provider.send_text(address, text_of(message), config))
