"""The email channel against a real SMTP server on 127.0.0.1 (aiosmtpd): what arrives, over
plain SMTP, STARTTLS with sign-in and implicit TLS; and each fault as temporary or permanent."""
from __future__ import annotations

import datetime as dt
import time
from email.utils import parseaddr, parsedate_to_datetime

import pytest

from outcomes import clock
from outcomes.channels import CHANNELS, Message, PermanentFailure, TemporaryFailure

from .channel_servers import (  # noqa: F401  (fixtures)
    Mailbox,
    certificates,
    free_port,
    password_check,
    settings,
    silent_server,
    smtp_server,
    trusted,
)

EMAIL = CHANNELS["email"]
NOW = dt.datetime(2026, 11, 30, 19, 5, tzinfo=dt.timezone.utc)
MESSAGE = Message(subject="A questionnaire is ready for you — it takes two minutes",
                  body="Your clinic asks you to fill in a short questionnaire.",
                  link="https://outcomes.example/q/one-time-link", sender_name="Clínica Río")
RECIPIENT = "patient@example.org"


def smtp_settings(port: int, security: str = "none", **more: str) -> dict[str, object]:
    return settings(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_SECURITY=security,
                    SMTP_FROM="reminders@clinic.example", NOTIFICATION_TIMEOUT="5", **more)


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


def test_an_email_arrives_with_its_headers_and_body(mailbox, monkeypatch):
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    with smtp_server(mailbox) as port:
        receipt = EMAIL.send(MESSAGE, " Patient@Example.ORG ", smtp_settings(port))
    (mail,) = mailbox.received
    assert mail.sender == "reminders@clinic.example"
    assert mail.recipients == ["Patient@example.org"]  # the domain normalised, not the name
    message = mail.message
    assert message["Subject"] == MESSAGE.subject
    assert parseaddr(message["From"]) == ("Clínica Río", "reminders@clinic.example")
    assert message["To"] == "Patient@example.org"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["Message-ID"] == receipt.reference
    assert receipt.reference.startswith("<") and receipt.reference.endswith("@clinic.example>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == f"{MESSAGE.body}\n\n{MESSAGE.link}\n"
    assert receipt.channel == "email"


def test_starttls_and_sign_in(mailbox, trusted):
    options = dict(tls_context=trusted.server_context(), require_starttls=True,
                   authenticator=password_check("outcomes", "s3cret pass"))
    with smtp_server(mailbox, **options) as port:
        EMAIL.send(MESSAGE, RECIPIENT, smtp_settings(
            port, "starttls", SMTP_USERNAME="outcomes", SMTP_PASSWORD="s3cret pass"))
        with pytest.raises(TemporaryFailure, match="refused SMTP_USERNAME and SMTP_PASSWORD"):
            EMAIL.send(MESSAGE, RECIPIENT, smtp_settings(
                port, "starttls", SMTP_USERNAME="outcomes", SMTP_PASSWORD="wrong"))
    assert [mail.login for mail in mailbox.received] == ["outcomes"]


def test_implicit_tls(mailbox, trusted):
    with smtp_server(mailbox, ssl_context=trusted.server_context()) as port:
        EMAIL.send(MESSAGE, RECIPIENT, smtp_settings(port, "tls"))
    assert [mail.recipients for mail in mailbox.received] == [[RECIPIENT]]


def test_a_certificate_that_does_not_verify_is_a_temporary_failure(mailbox, certificates):
    # The test authority is not trusted here: the client must refuse the server.
    with smtp_server(mailbox, ssl_context=certificates.server_context()) as port:
        with pytest.raises(TemporaryFailure, match="could not be reached"):
            EMAIL.send(MESSAGE, RECIPIENT, smtp_settings(port, "tls"))
    assert not mailbox.received


def test_starttls_asked_of_a_server_without_it_is_a_temporary_failure(mailbox):
    with smtp_server(mailbox) as port:
        with pytest.raises(TemporaryFailure, match="does not offer STARTTLS"):
            EMAIL.send(MESSAGE, RECIPIENT, smtp_settings(port, "starttls"))
    assert not mailbox.received


def test_a_server_that_is_down_is_a_temporary_failure():
    with pytest.raises(TemporaryFailure, match="could not be reached"):
        EMAIL.send(MESSAGE, RECIPIENT, smtp_settings(free_port()))


def test_a_server_that_hangs_is_a_temporary_failure_after_the_timeout():
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="could not be reached"):
            EMAIL.send(MESSAGE, RECIPIENT,
                       {**smtp_settings(port), "NOTIFICATION_TIMEOUT": 1})
    assert time.monotonic() - started < 4


@pytest.mark.parametrize(("reply", "failure"), [
    ("550 5.1.1 <patient@example.org>: user unknown", PermanentFailure),
    ("451 4.3.0 mailbox busy, try later", TemporaryFailure),
])
def test_a_refused_recipient(mailbox, reply, failure):
    mailbox.replies[RECIPIENT] = reply
    with smtp_server(mailbox) as port:
        with pytest.raises(failure, match="refused the recipient") as refused:
            EMAIL.send(MESSAGE, RECIPIENT, smtp_settings(port))
    assert "patient" not in str(refused.value)  # no address in what is logged and stored
    assert not mailbox.received


def test_an_address_that_is_not_one_and_a_channel_not_configured_are_permanent(mailbox):
    with smtp_server(mailbox) as port:
        with pytest.raises(PermanentFailure, match="not a usable email address") as refused:
            EMAIL.send(MESSAGE, "patient.example.org", smtp_settings(port))
    assert "patient" not in str(refused.value)
    with pytest.raises(PermanentFailure, match="Email is not configured"):
        EMAIL.send(MESSAGE, RECIPIENT, settings())
    assert not mailbox.received
