"""The SMS channel through Twilio's official client, against a local HTTPS server standing in
for Twilio's API (TWILIO_API_BASE_URL): the request it records, and Twilio's answers as
temporary or permanent failures. Numbers are checked and sent in E.164."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest

from outcomes.channels import CHANNELS, Message, PermanentFailure, TemporaryFailure
from outcomes.channels.sms import SMS_PROVIDERS, SmsProvider

from .channel_servers import (  # noqa: F401  (fixtures)
    Answer,
    certificates,
    free_port,
    https_server,
    settings,
    trusted,
)

SMS = CHANNELS["sms"]
ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-for-tests"
MESSAGE = Message(subject="A questionnaire is ready for you",
                  body="Your clinic asks you to fill in a short questionnaire.",
                  link="https://outcomes.example/q/one-time-link", sender_name="Riverside")
SENT = Answer(201, json.dumps({"sid": "SM" + "f" * 32, "status": "queued"}).encode(),
              {"Content-Type": "application/json"})


def twilio_error(status: int, code: int) -> Answer:
    """An error as Twilio's API answers it; its message names the number, as Twilio's do."""
    return Answer(status, json.dumps({
        "code": code, "message": "The 'To' number +12025550143 is not a valid phone number.",
        "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status,
    }).encode(), {"Content-Type": "application/json"})


def twilio_settings(url: str, **more: str) -> dict[str, object]:
    return settings(**{"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN,
                       "TWILIO_FROM_NUMBER": "+14155550100", "TWILIO_API_BASE_URL": url,
                       "PHONE_REGION": "US", "NOTIFICATION_TIMEOUT": "5", **more})


def test_the_text_reaches_twilios_messages_api(trusted):
    with https_server(trusted, SENT) as twilio:
        receipt = SMS.send(MESSAGE, "(202) 555-0143", twilio_settings(twilio.url))
    (request,) = twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(
        f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert parse_qs(request.body.decode()) == {
        "To": ["+12025550143"], "From": ["+14155550100"],
        "Body": [f"Riverside: {MESSAGE.body}\n{MESSAGE.link}"]}
    assert receipt.channel == "sms" and receipt.reference == "SM" + "f" * 32


def test_a_number_is_read_in_the_clinics_region_unless_it_has_its_country_code(trusted):
    with https_server(trusted, SENT) as twilio:
        SMS.send(MESSAGE, "07911 123456", twilio_settings(twilio.url, PHONE_REGION="GB"))
        SMS.send(MESSAGE, "+61 412 345 678", twilio_settings(twilio.url, PHONE_REGION="GB"))
    assert [parse_qs(r.body.decode())["To"] for r in twilio.requests] == [
        ["+447911123456"], ["+61412345678"]]


@pytest.mark.parametrize(("answer", "failure"), [
    (twilio_error(500, 20500), TemporaryFailure),
    (twilio_error(503, 20503), TemporaryFailure),
    (twilio_error(429, 20429), TemporaryFailure),
    (twilio_error(401, 20003), TemporaryFailure),  # credentials: fixable, so retried
    (twilio_error(400, 21211), PermanentFailure),  # not a valid 'To' number
    (twilio_error(400, 21610), PermanentFailure),  # the recipient replied STOP
])
def test_twilios_answers_as_temporary_or_permanent_failures(trusted, answer, failure):
    with https_server(trusted, answer) as twilio:
        with pytest.raises(failure, match=f"Twilio answered {answer.status}") as failed:
            SMS.send(MESSAGE, "+12025550143", twilio_settings(twilio.url))
    assert "555" not in str(failed.value)  # Twilio's own text, with the number, is left out


def test_twilio_unreachable_is_a_temporary_failure(trusted):
    with pytest.raises(TemporaryFailure, match="Twilio could not be reached"):
        SMS.send(MESSAGE, "+12025550143",
                 twilio_settings(f"https://127.0.0.1:{free_port()}"))


def test_a_bad_number_is_refused_before_anything_is_sent(trusted):
    with https_server(trusted, SENT) as twilio:
        for number in ("not a number", "202 555 014", "+44 20 7946 0958"):  # short, landline
            with pytest.raises(PermanentFailure, match="not a usable mobile number") as e:
                SMS.send(MESSAGE, number, twilio_settings(twilio.url))
            assert "555" not in str(e.value) and "7946" not in str(e.value)
    assert not twilio.requests
    with pytest.raises(PermanentFailure, match=r"Text message \(SMS\) is not configured"):
        SMS.send(MESSAGE, "+12025550143", settings())


def test_the_channel_sends_through_the_provider_sms_provider_names(monkeypatch):
    class Outbox(SmsProvider):
        def __init__(self) -> None:
            self.sent: list[tuple[str, str]] = []

        def configured(self, config):
            return True

        def send_text(self, to, text, config):
            self.sent.append((to, text))
            return f"local-{len(self.sent)}"

    outbox = Outbox()
    monkeypatch.setitem(SMS_PROVIDERS, "outbox", outbox)
    receipt = SMS.send(MESSAGE, "+1 202 555 0143", settings(SMS_PROVIDER="outbox"))
    assert outbox.sent == [("+12025550143", f"Riverside: {MESSAGE.body}\n{MESSAGE.link}")]
    assert receipt.reference == "local-1"
