"""Web push (RFC 8030) with VAPID (RFC 8292), through ``pywebpush``: the message is
encrypted for the subscription's keys (RFC 8291, aes128gcm), so the push service carries
what it cannot read. The address is the browser's subscription JSON."""
from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid

from .. import clock
from .base import (
    Channel,
    Config,
    Message,
    PermanentFailure,
    Receipt,
    SubscriptionGone,
    TemporaryFailure,
)
from .contacts import base64url_encode, push_subscription

#: How long a push service keeps a message for a device that is offline (its TTL header):
#: a day, after which the next reminder, or the next look at Outcomes, takes its place.
TIME_TO_LIVE_SECONDS = 24 * 3600
#: How long a VAPID token stays valid; RFC 8292 allows at most 24 hours.
VAPID_TOKEN_SECONDS = 12 * 3600


def vapid_key(private_key: str) -> Vapid:
    """The VAPID signing key from VAPID_PRIVATE_KEY: base64url of the raw 32-byte P-256 key
    (as `npx web-push generate-vapid-keys` prints it) or of its DER; ``ValueError`` for
    anything else (the message never repeats the key)."""
    try:
        key = Vapid.from_string(private_key.strip())
    except Exception:  # py_vapid raises whatever its decoder met: the key is what's wrong
        key = None
    if key is None or not isinstance(key.private_key, ec.EllipticCurvePrivateKey) \
            or not isinstance(key.private_key.curve, ec.SECP256R1):
        raise ValueError("VAPID_PRIVATE_KEY is not a base64url P-256 private key")
    return key


def vapid_public_key(config: Config) -> str:
    """The public key browsers subscribe with (``applicationServerKey``): base64url of the
    uncompressed P-256 point of VAPID_PRIVATE_KEY."""
    public = vapid_key(config["VAPID_PRIVATE_KEY"]).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return base64url_encode(public)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        wait = parsedate_to_datetime(value) - clock.utcnow()
    except (TypeError, ValueError):  # not a date, or one without its zone
        return None
    return max(0.0, wait.total_seconds())


class PushChannel(Channel):
    name = "push"
    label = "Web push"
    address_label = "push subscription"

    def configured(self, config: Config) -> bool:
        return bool(config.get("VAPID_PRIVATE_KEY"))

    def normalise_address(self, address: str, config: Config) -> str:
        return push_subscription(address)

    def deliver(self, message: Message, address: str, config: Config) -> Receipt:
        subscription = json.loads(address)
        endpoint = urlsplit(subscription["endpoint"])
        claims = {
            "sub": config["VAPID_SUBJECT"],
            # The push service checks the token was made for it: its origin.
            "aud": f"{endpoint.scheme}://{endpoint.netloc}",
            "exp": int(clock.utcnow().timestamp()) + VAPID_TOKEN_SECONDS,
        }
        headers = vapid_key(config["VAPID_PRIVATE_KEY"]).sign(claims)
        # What the service worker shows: the notification's title and text, and the page a
        # tap opens.
        payload = json.dumps({"title": message.subject, "body": message.body,
                              "url": message.link, "sender": message.sender_name})
        # Imported at the first push, not with the app: pywebpush brings an HTTP stack of its
        # own (~40 MB) that a web worker, which never sends, need not carry.
        import requests
        from pywebpush import WebPusher

        try:
            response = WebPusher(subscription).send(
                payload, headers, ttl=TIME_TO_LIVE_SECONDS, content_encoding="aes128gcm",
                timeout=config["NOTIFICATION_TIMEOUT"])
        except requests.RequestException as error:
            raise TemporaryFailure(
                f"the push service could not be reached ({type(error).__name__})") from None
        status = response.status_code
        if status in {404, 410}:
            raise SubscriptionGone(f"the push service no longer knows the subscription "
                                   f"({status})")
        if status == 429 or status >= 500:
            raise TemporaryFailure(f"the push service answered {status}",
                                   retry_after_seconds(response.headers.get("Retry-After")))
        if not 200 <= status < 300:
            raise PermanentFailure(f"the push service refused the message ({status})")
        # RFC 8030 §5: the Location of the message the service created.
        return Receipt(self.name, response.headers.get("Location", ""))
