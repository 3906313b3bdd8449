"""The web push channel against a local HTTPS push service: what reaches it decrypts with the
subscription's own keys (RFC 8291, aes128gcm), its VAPID token verifies with the clinic's
public key and names the push service as its audience (RFC 8292); and the service's answers
come back as gone, temporary or permanent failures."""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from outcomes import clock
from outcomes.channels import (
    CHANNELS,
    Message,
    PermanentFailure,
    SubscriptionGone,
    TemporaryFailure,
)
from outcomes.channels.contacts import base64url_encode
from outcomes.channels.webpush import vapid_public_key

from .channel_servers import (  # noqa: F401  (fixtures)
    Answer,
    certificates,
    free_port,
    https_server,
    settings,
    silent_server,
    trusted,
)

PUSH = CHANNELS["push"]
NOW = dt.datetime(2026, 11, 30, 19, 20, tzinfo=dt.timezone.utc)
MESSAGE = Message(subject="A patient needs attention", body="Open Outcomes to see the alert.",
                  link="https://outcomes.example/alerts/17", sender_name="Riverside")
CREATED = Answer(201, headers={"Location": "https://push.example/m/abc123"})


def public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@dataclass
class Browser:
    """A browser's side of a subscription: its P-256 key pair and auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes

    def subscription(self, endpoint: str) -> str:
        return json.dumps({"endpoint": endpoint, "expirationTime": None, "keys": {
            "p256dh": base64url_encode(public_bytes(self.key)),
            "auth": base64url_encode(self.auth)}})

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                           version="aes128gcm"))


@pytest.fixture
def browser() -> Browser:
    return Browser(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))


@pytest.fixture(scope="module")
def vapid() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def config(vapid) -> dict[str, object]:
    raw = vapid.private_numbers().private_value.to_bytes(32, "big")
    return settings(VAPID_PRIVATE_KEY=base64url_encode(raw),
                    VAPID_PUBLIC_KEY=base64url_encode(public_bytes(vapid)),
                    VAPID_SUBJECT="mailto:it@clinic.example", NOTIFICATION_TIMEOUT="5")


def test_the_push_decrypts_with_the_subscriptions_keys_and_carries_a_vapid_token(
        browser, vapid, config, trusted, monkeypatch):
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    with https_server(trusted, CREATED) as service:
        receipt = PUSH.send(MESSAGE, browser.subscription(f"{service.url}/push/v1/device-1"),
                            config)
    (request,) = service.requests
    assert request.path == "/push/v1/device-1"
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["ttl"] == str(24 * 3600)
    assert browser.decrypt(request.body) == {
        "title": MESSAGE.subject, "body": MESSAGE.body, "url": MESSAGE.link,
        "sender": "Riverside"}

    scheme, parameters = request.headers["authorization"].split(" ", 1)
    fields = dict(part.strip().split("=", 1) for part in parameters.split(","))
    assert scheme == "vapid"
    assert fields["k"] == base64url_encode(public_bytes(vapid)) == vapid_public_key(config)
    claims = jwt.decode(fields["t"], vapid.public_key(), algorithms=["ES256"],
                        audience=service.url, options={"verify_exp": False})
    assert claims == {"aud": service.url, "sub": "mailto:it@clinic.example",
                      "exp": int(NOW.timestamp()) + 12 * 3600}
    assert receipt.channel == "push" and receipt.reference == "https://push.example/m/abc123"


def test_another_key_does_not_verify_the_token(browser, config, trusted):
    with https_server(trusted, CREATED) as service:
        PUSH.send(MESSAGE, browser.subscription(f"{service.url}/p"), config)
    token = service.requests[0].headers["authorization"].split("t=", 1)[1].split(",")[0]
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, stranger, algorithms=["ES256"], audience=service.url,
                   options={"verify_exp": False})
    with pytest.raises(http_ece.ECEException):  # and another subscription's keys do not decrypt it
        Browser(ec.generate_private_key(ec.SECP256R1()), browser.auth).decrypt(
            service.requests[0].body)


@pytest.mark.parametrize("status", [404, 410])
def test_a_subscription_the_service_forgot_is_gone(browser, config, trusted, status):
    with https_server(trusted, Answer(status)) as service:
        with pytest.raises(SubscriptionGone, match=f"no longer knows the subscription "
                                                   rf"\({status}\)"):
            PUSH.send(MESSAGE, browser.subscription(f"{service.url}/p"), config)


@pytest.mark.parametrize(("answer", "retry_after"), [
    (Answer(500), None),
    (Answer(503, headers={"Retry-After": "120"}), 120),
    (Answer(429, headers={"Retry-After": "Mon, 30 Nov 2026 19:25:00 GMT"}), 300),
])
def test_a_busy_or_failing_service_is_a_temporary_failure(browser, config, trusted,
                                                         monkeypatch, answer, retry_after):
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    with https_server(trusted, answer) as service:
        with pytest.raises(TemporaryFailure, match=f"answered {answer.status}") as failed:
            PUSH.send(MESSAGE, browser.subscription(f"{service.url}/p"), config)
    assert failed.value.retry_after == retry_after


@pytest.mark.parametrize("status", [400, 403, 413])
def test_a_refused_message_is_a_permanent_failure_but_not_gone(browser, config, trusted,
                                                               status):
    with https_server(trusted, Answer(status)) as service:
        with pytest.raises(PermanentFailure, match=f"refused the message \\({status}\\)") as e:
            PUSH.send(MESSAGE, browser.subscription(f"{service.url}/p"), config)
    assert not isinstance(e.value, SubscriptionGone)


def test_a_service_that_is_down_or_hangs_is_a_temporary_failure(browser, config, trusted):
    with pytest.raises(TemporaryFailure, match="could not be reached"):
        PUSH.send(MESSAGE, browser.subscription(f"https://127.0.0.1:{free_port()}/p"), config)
    with silent_server() as port:
        with pytest.raises(TemporaryFailure, match="could not be reached"):
            PUSH.send(MESSAGE, browser.subscription(f"https://127.0.0.1:{port}/p"),
                      {**config, "NOTIFICATION_TIMEOUT": 1})


def test_an_unusable_subscription_and_no_vapid_key_are_permanent(browser, config):
    with pytest.raises(PermanentFailure, match="not an https:// address"):
        PUSH.send(MESSAGE, browser.subscription("http://127.0.0.1/p"), config)
    with pytest.raises(PermanentFailure, match="Web push is not configured"):
        PUSH.send(MESSAGE, browser.subscription("https://127.0.0.1/p"), settings())
