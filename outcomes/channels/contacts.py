"""Contact details checked and normalised before they are stored or sent to.

Each helper returns the stored form or raises ``ContactError`` with a message fit to show the
person who typed it. No message repeats what was typed: they end up in logs and delivery rows.
"""
from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import urlsplit

import phonenumbers
from cryptography.hazmat.primitives.asymmetric import ec
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType


class ContactError(ValueError):
    """A contact detail that cannot be used, with a one-line reason."""


#: The kinds of number a text message can reach. A number of undecided kind (the North
#: American plan's numbers are all "fixed line or mobile") is tried: its provider says.
TEXTABLE = frozenset({
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.VOIP,
})


def email_address(text: str) -> str:
    """The address normalised (its domain in lower case), refused when malformed. Whether the
    domain receives mail is not looked up: a bounce says so later."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ContactError(f"That is not a valid email address. {error}") from None


def phone_number(text: str, region: str) -> str:
    """The number in E.164 (``+14155550123``), read as dialled in ``region`` (a two-letter
    country code such as ``US``) unless it starts with + and its country code; refused unless
    it is a valid number that can receive text messages."""
    elsewhere = "; a number from another country needs its country code (+44 …)"
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        raise ContactError("That is not a phone number: enter the digits of a mobile "
                           f"number as you would dial it{elsewhere}.") from None
    if not phonenumbers.is_valid_number(number):
        raise ContactError(f"That is not a valid phone number in {region}{elsewhere}.")
    if phonenumbers.number_type(number) not in TEXTABLE:
        raise ContactError("That number cannot receive text messages: enter a mobile number.")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def push_subscription(text: str) -> str:
    """A browser's push subscription (``PushSubscription.toJSON()``) as compact JSON with its
    endpoint and keys only, refused unless the endpoint is an https:// address and the keys
    are a P-256 public key and a 16-byte secret (RFC 8291)."""
    problem = "This browser's push subscription cannot be used"
    try:
        subscription = json.loads(text)
        endpoint = subscription["endpoint"]
        p256dh = subscription["keys"]["p256dh"]
        auth = subscription["keys"]["auth"]
    except (ValueError, TypeError, KeyError):
        raise ContactError(f"{problem}: it is not a subscription's JSON.") from None
    if not all(isinstance(value, str) for value in (endpoint, p256dh, auth)):
        raise ContactError(f"{problem}: its endpoint and keys are not text.")
    url = urlsplit(endpoint)
    if url.scheme != "https" or not url.hostname:
        raise ContactError(f"{problem}: its endpoint is not an https:// address.")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), base64url_decode(p256dh))
    except ValueError:
        raise ContactError(f"{problem}: its p256dh key is not a P-256 public key.") from None
    try:
        secret = base64url_decode(auth)
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise ContactError(f"{problem}: its auth secret is not 16 bytes of base64url.")
    return json.dumps({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
                      separators=(",", ":"))


def base64url_decode(text: str) -> bytes:
    """Bytes from base64url with or without its padding (as browsers and VAPID tools write
    it); ``ValueError`` for anything else."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def base64url_encode(data: bytes) -> str:
    """Base64url without padding, as the Web Push and VAPID standards write keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
