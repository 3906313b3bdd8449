"""The channels' registry and interface, the contact checks a person sees the messages of,
and the channels' settings as checked at start (clear, naming the setting, never a secret)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from outcomes.channels import (
    CHANNELS,
    Channel,
    ContactError,
    Message,
    configured_channels,
)
from outcomes.channels.contacts import (
    base64url_encode,
    email_address,
    phone_number,
    push_subscription,
)
from outcomes.config import (
    ConfigurationError,
    check_notification_settings,
    check_production_settings,
    settings_from_environment,
)

from .channel_servers import settings

LINK = "https://outcomes.example/q/1"
VAPID_PRIVATE = base64url_encode(
    ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big"))
P256DH = base64url_encode(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    Encoding.X962, PublicFormat.UncompressedPoint))
AUTH = base64url_encode(b"sixteen byte key")
ALL_CHANNELS = dict(
    SMTP_HOST="smtp.example", SMTP_FROM="reminders@clinic.example",
    VAPID_PRIVATE_KEY=VAPID_PRIVATE, VAPID_SUBJECT="mailto:it@clinic.example",
    TWILIO_ACCOUNT_SID="AC" + "a" * 32, TWILIO_AUTH_TOKEN="token",
    TWILIO_FROM_NUMBER="+14155550100")


def test_the_registry_names_each_channel_by_its_own_name():
    assert list(CHANNELS) == ["email", "push", "sms"]
    for name, channel in CHANNELS.items():
        assert isinstance(channel, Channel) and channel.name == name
        assert channel.label and channel.address_label


def test_a_channel_is_on_when_its_settings_are_there():
    assert configured_channels(settings()) == []
    assert [c.name for c in configured_channels(settings(**ALL_CHANNELS))] == [
        "email", "push", "sms"]
    assert [c.name for c in configured_channels(settings(
        SMTP_HOST="smtp.example", SMTP_FROM="reminders@clinic.example"))] == ["email"]


@pytest.mark.parametrize(("fields", "problem"), [
    (dict(subject="Two\nlines"), "one line"),
    (dict(subject="  "), "one line"),
    (dict(body=""), "has a body"),
    (dict(sender_name="Riverside\r\nBcc: everyone@example.org"), "sender name is one line"),
    (dict(link="/q/1"), "absolute"),
    (dict(link="javascript:alert(1)"), "absolute"),
])
def test_a_message_is_a_subject_line_a_body_and_an_absolute_link(fields, problem):
    with pytest.raises(ValueError, match=problem):
        Message(**{"subject": "A questionnaire is ready", "body": "Open it.", "link": LINK,
                   **fields})


# --- Contact details -------------------------------------------------------------------------

def test_an_email_address_is_normalised_or_refused_with_a_reason():
    assert email_address("  Someone@Example.ORG ") == "Someone@example.org"
    for text, reason in [("someone.example.org", "must have an @-sign"),
                         ("someone@example", "should have a period"),
                         ("some one@example.org", "invalid characters")]:
        with pytest.raises(ContactError, match=f"That is not a valid email address. .*{reason}"):
            email_address(text)


@pytest.mark.parametrize(("text", "region", "e164"), [
    ("(202) 555-0143", "US", "+12025550143"),
    ("202.555.0143", "US", "+12025550143"),
    ("+44 7911 123456", "US", "+447911123456"),
    ("07911 123456", "GB", "+447911123456"),
    ("0412 345 678", "AU", "+61412345678"),
])
def test_a_phone_number_is_read_in_the_clinics_region_and_kept_in_e164(text, region, e164):
    assert phone_number(text, region) == e164


@pytest.mark.parametrize(("text", "region", "message"), [
    ("call me", "US", "That is not a phone number: enter the digits of a mobile number as "
                      "you would dial it; a number from another country needs its country "
                      "code (+44 …)."),
    ("202 555 014", "US", "That is not a valid phone number in US; a number from another "
                          "country needs its country code (+44 …)."),
    ("07911 123456", "US", "That is not a valid phone number in US; a number from another "
                           "country needs its country code (+44 …)."),
    ("020 7946 0958", "GB", "That number cannot receive text messages: enter a mobile number."),
])
def test_a_bad_phone_number_is_refused_with_a_clear_message(text, region, message):
    with pytest.raises(ContactError) as refused:
        phone_number(text, region)
    assert str(refused.value) == message


def subscription(**changes) -> str:
    value = {"endpoint": "https://push.example/send/abc", "expirationTime": None,
             "keys": {"p256dh": P256DH, "auth": AUTH}}
    return json.dumps({**value, **changes})


def test_a_push_subscription_keeps_its_endpoint_and_keys_only():
    assert json.loads(push_subscription(subscription())) == {
        "endpoint": "https://push.example/send/abc", "keys": {"p256dh": P256DH, "auth": AUTH}}


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "not a subscription's JSON"),
    (json.dumps({"endpoint": "https://push.example/x"}), "not a subscription's JSON"),
    (subscription(endpoint=7), "not text"),
    (subscription(endpoint="http://push.example/x"), "not an https:// address"),
    (subscription(keys={"p256dh": "AAAA", "auth": AUTH}), "not a P-256 public key"),
    (subscription(keys={"p256dh": P256DH, "auth": "c2hvcnQ"}), "not 16 bytes"),
])
def test_an_unusable_push_subscription_is_refused(text, reason):
    with pytest.raises(ContactError, match=f"This browser's push subscription cannot be "
                                           f"used: .*{reason}"):
        push_subscription(text)


# --- Settings --------------------------------------------------------------------------------

def test_no_channel_settings_and_every_channel_set_both_start():
    defaults = settings()
    assert (defaults["SMTP_SECURITY"], defaults["SMTP_PORT"]) == ("starttls", 587)
    assert defaults["TWILIO_API_BASE_URL"] == "https://api.twilio.com"
    assert (defaults["PHONE_REGION"], defaults["NOTIFICATION_TIMEOUT"]) == ("US", 10)
    assert settings(SMTP_SECURITY="TLS")["SMTP_PORT"] == 465
    assert settings(SMTP_SECURITY="none", SMTP_PORT="2525")["SMTP_PORT"] == 2525
    check_production_settings(settings(**ALL_CHANNELS))


@pytest.mark.parametrize(("environ", "message"), [
    (dict(SMTP_HOST="smtp.example"), "SMTP_HOST is set but SMTP_FROM is not: set it too, or "
                                     "unset it to leave the channel off"),
    (dict(SMTP_PASSWORD="hunter2-secret"),
     "SMTP_PASSWORD is set but SMTP_HOST and SMTP_FROM are not: set them too, or unset it "
     "to leave the channel off"),
    (dict(SMTP_SECURITY="ssl"), "SMTP_SECURITY must be one of none, starttls, tls, not 'ssl'"),
    (dict(SMTP_PORT="0"), "SMTP_PORT must be a whole number above 0, not '0'"),
    (dict(SMTP_PORT="70000"), "SMTP_PORT must be a port number (1 to 65535)"),
    (dict(SMTP_HOST="smtp.example", SMTP_FROM="reminders"),
     "SMTP_FROM: That is not a valid email address. An email address must have an @-sign."),
    (dict(SMTP_HOST="smtp.example", SMTP_FROM="r@clinic.example", SMTP_USERNAME="outcomes"),
     "SMTP_USERNAME and SMTP_PASSWORD are set together or not at all"),
    (dict(SMTP_HOST="smtp.example", SMTP_FROM="r@clinic.example", SMTP_SECURITY="none",
          SMTP_USERNAME="outcomes", SMTP_PASSWORD="hunter2-secret"),
     "SMTP_SECURITY=none would send SMTP_PASSWORD unencrypted: use starttls or tls"),
    (dict(NOTIFICATION_TIMEOUT="soon"),
     "NOTIFICATION_TIMEOUT must be a whole number above 0, not 'soon'"),
    (dict(VAPID_SUBJECT="mailto:it@clinic.example"),
     "VAPID_SUBJECT is set but VAPID_PRIVATE_KEY is not"),
    (dict(VAPID_PRIVATE_KEY="hunter2-secret", VAPID_SUBJECT="mailto:it@clinic.example"),
     "VAPID_PRIVATE_KEY is not a base64url P-256 private key (docs/notifications.md says how "
     "to make a key pair)"),
    (dict(VAPID_PRIVATE_KEY=VAPID_PRIVATE, VAPID_SUBJECT="mailto:it@clinic.example",
          VAPID_PUBLIC_KEY=P256DH),
     "VAPID_PUBLIC_KEY is not VAPID_PRIVATE_KEY's public key"),
    (dict(VAPID_PRIVATE_KEY=VAPID_PRIVATE, VAPID_SUBJECT="it@clinic.example"),
     "VAPID_SUBJECT must say how push services can reach the clinic: a mailto: address or an "
     "https:// page, not 'it@clinic.example'"),
    (dict(VAPID_PRIVATE_KEY=VAPID_PRIVATE, VAPID_SUBJECT="http://clinic.example"),
     "VAPID_SUBJECT must say how"),
    (dict(SMS_PROVIDER="carrier-pigeon"), "SMS_PROVIDER must be one of twilio, not "
                                          "'carrier-pigeon'"),
    (dict(TWILIO_AUTH_TOKEN="hunter2-secret"),
     "TWILIO_AUTH_TOKEN is set but TWILIO_ACCOUNT_SID and TWILIO_FROM_NUMBER are not"),
    ({**ALL_CHANNELS, "TWILIO_ACCOUNT_SID": "SK" + "a" * 32},
     "TWILIO_ACCOUNT_SID must be AC followed by 32 hexadecimal digits"),
    ({**ALL_CHANNELS, "TWILIO_FROM_NUMBER": "4155550100"},
     "TWILIO_FROM_NUMBER must be the account's number in E.164 (+14155550123), not "
     "'4155550100'"),
    ({**ALL_CHANNELS, "TWILIO_API_BASE_URL": "http://127.0.0.1:8080"},
     "TWILIO_API_BASE_URL must be an https:// address"),
    (dict(PHONE_REGION="Narnia"), "PHONE_REGION must be a two-letter country code such as US "
                                  "or GB, not 'NARNIA'"),
])
def test_channel_settings_are_refused_at_start_with_a_clear_message(environ, message):
    with pytest.raises(ConfigurationError) as refused:
        check_production_settings(settings_from_environment(
            {"OUTCOMES_ENV": "development", **environ}))
    assert str(refused.value).startswith(message)
    assert "hunter2" not in str(refused.value)


def test_the_check_runs_on_the_settings_as_finally_given():
    """create_app lays its ``config`` over the environment's settings, then checks."""
    config = {**settings(), "SMTP_HOST": "smtp.example"}
    with pytest.raises(ConfigurationError, match="SMTP_FROM is not"):
        check_notification_settings(config)


def test_a_web_worker_does_not_carry_the_senders_http_clients():
    """pywebpush and Twilio's client (with requests) load at the first push or text, in the
    worker that sends: a web worker, which never sends, stays ~40 MB lighter (exports run in
    web workers under a memory target, bench/exports.py)."""
    script = ("import sys; from outcomes import create_app; "
              "create_app({'OUTCOMES_ENV': 'development', 'DATABASE_URL': 'sqlite://'}); "
              "print(sorted(m for m in ('pywebpush', 'twilio', 'requests') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert loaded.stdout.strip().splitlines()[-1] == "[]"
