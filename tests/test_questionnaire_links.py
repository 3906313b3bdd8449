"""Reminders' questionnaire links (issue 11 item 4, docs/notifications.md): a reminder email
carries a fresh single-use link (a retry carries a new one; the unsent one stops working) under
the clinic's sender name; opening the link's page uses nothing, a tap on its button signs the
patient in for that questionnaire alone; a used, expired or unknown link gets one calm page;
the token reaches no log; a disclosure sent through a link's questionnaire shows the crisis
resources and opens one alert."""
from __future__ import annotations

import datetime as dt
import logging
import re
import threading

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outcomes.models import Alert, Assessment, AuditEvent, Patient, QuestionnaireLink
from outcomes.services.deliveries import CLAIM
from outcomes.services.questionnaire_links import LINK_LIFETIME, issue_link, link_sent

from .channel_servers import Mailbox, free_port
from .conftest import PASSWORD, sign_in
from .helpers import answers_for
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    SENDER,
    deliveries,
    mailbox,
    pinned,
    remindable_patient,
    tick,
)

INVALID = b"This link has been used or has expired"
LINK = re.compile(re.escape(BASE_URL) + r"/r#([A-Za-z0-9_-]+)")


def sent_link(app: Flask, session: Session, patient: Patient, key: str = "phq9",
              sent_at: dt.datetime | None = None) -> str:
    """The token of a link to ``key`` for the patient whose message has left (at
    ``sent_at``, or now)."""
    with app.app_context():
        issued = issue_link(session, patient_id=patient.id, instrument_key=key,
                            delivery_id=None, valid_for=CLAIM)
        link_sent(session, issued.link_id, sent_at or issued_at(session, issued.link_id))
        session.commit()
    return issued.token


def issued_at(session: Session, link_id: int) -> dt.datetime:
    return session.get(QuestionnaireLink, link_id).created_at


def follow(client: FlaskClient, token: str):
    """Open the link's page, then tap its button (the page's script puts the token from the
    link's fragment into the form)."""
    page = client.get("/r")
    assert page.status_code == 200 and b"Open the questionnaire" in page.data
    return client.post("/r", data={"token": token})


def phq9_form(item9: int = 0) -> dict[str, str]:
    answers = answers_for("phq9", 6, item9)
    return {"submission_key": "a" * 32,
            **{f"item_{number}": str(value) for number, value in enumerate(answers, 1)}}


def sends_to_sign_in(response) -> bool:
    return response.status_code == 302 and response.location.startswith("/login")


# -- the link ---------------------------------------------------------------------------------

def test_a_link_opens_its_questionnaire_once_and_is_audited(app, session, world, client):
    token = sent_link(app, session, world.patient)
    response = follow(client, token)
    assert response.status_code == 303
    assert response.location == "/me/questionnaires/phq9"
    page = client.get(response.location)
    assert page.status_code == 200 and b'name="item_9"' in page.data

    session.expire_all()
    link = session.scalars(select(QuestionnaireLink)).one()
    assert link.used_at is not None and token not in link.token_hash
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "questionnaire_link.redeemed")).one()
    assert (event.patient_id, event.actor_id, event.object_id) == (
        world.patient.id, world.patient_user.id, str(link.id))
    assert event.details == {"delivery_id": None}

    again = app.test_client().post("/r", data={"token": token})
    assert again.status_code == 404 and INVALID in again.data


def test_opening_the_links_page_uses_nothing(app, session, world, client):
    token = sent_link(app, session, world.patient)
    for _ in range(3):  # a mail scanner, a preview, the patient
        page = client.get("/r")
        assert page.status_code == 200
        assert page.headers["Cache-Control"] == "no-store"
    session.expire_all()
    assert session.scalars(select(QuestionnaireLink)).one().used_at is None
    assert follow(app.test_client(), token).status_code == 303


@pytest.mark.parametrize("token", ["", "an-unknown-token", "x" * 400])
def test_used_expired_and_unknown_links_get_the_same_calm_page(app, session, world, client,
                                                             pinned, token):
    used = sent_link(app, session, world.patient)
    follow(app.test_client(), used)
    expired = sent_link(app, session, world.patient)
    pinned.advance(hours=LINK_LIFETIME.total_seconds() / 3600, seconds=1)
    pages = [client.post("/r", data={"token": candidate}) for candidate in (used, expired,
                                                                           token)]
    assert [page.status_code for page in pages] == [404, 404, 404]
    assert all(INVALID in page.data and b'href="/login"' in page.data for page in pages)
    bodies = {re.sub(rb'value="[^"]*"', b"", page.data) for page in pages}
    assert len(bodies) == 1, "the page must not say which"


def test_a_link_works_until_its_lifetime_from_the_sending(app, session, world, pinned):
    token = sent_link(app, session, world.patient, sent_at=pinned.now)
    pinned.advance(hours=LINK_LIFETIME.total_seconds() / 3600, minutes=-1)
    assert follow(app.test_client(), token).status_code == 303


def test_an_unsent_link_stops_working_when_its_claim_lapses(app, session, world, pinned):
    with app.app_context():
        unsent = issue_link(session, patient_id=world.patient.id, instrument_key="phq9",
                            delivery_id=None, valid_for=CLAIM)
        session.commit()
    pinned.advance(seconds=CLAIM.total_seconds() + 1)
    assert follow(app.test_client(), unsent.token).status_code == 404


def test_two_taps_at_once_use_a_link_once(app, session, world, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one transaction at a time: there is no race to lose")
    token = sent_link(app, session, world.patient)
    statuses: list[int] = []
    start = threading.Barrier(2)

    def tap() -> None:
        client = app.test_client()
        start.wait()
        statuses.append(client.post("/r", data={"token": token}).status_code)

    taps = [threading.Thread(target=tap) for _ in range(2)]
    for thread in taps:
        thread.start()
    for thread in taps:
        thread.join()
    assert sorted(statuses) == [303, 404]
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "questionnaire_link.redeemed")) == 1


def test_a_patient_without_an_active_account_gets_the_calm_page(app, session, world):
    token = sent_link(app, session, world.patient)
    world.patient_user.active = False
    session.commit()
    response = follow(app.test_client(), token)
    assert response.status_code == 404 and INVALID in response.data


def test_a_questionnaire_the_plan_no_longer_offers_is_not_opened(app, session, world):
    token = sent_link(app, session, world.patient, key="not-in-the-plan")
    assert follow(app.test_client(), token).status_code == 404


# -- the session it opens ---------------------------------------------------------------------

def test_the_links_session_reaches_its_questionnaire_and_crisis_help_only(
        app, session, world, client):
    token = sent_link(app, session, world.patient)
    follow(client, token)
    assert client.get("/me/questionnaires/phq9").status_code == 200
    help_page = client.get("/me/help")
    assert help_page.status_code == 200 and world.clinic.crisis_phone.encode() in help_page.data
    assert client.get("/me/questionnaires/phq9").status_code == 200  # still open

    # The home page (the due list and the chart) asks for the password, and ends it.
    home = client.get("/me/")
    assert sends_to_sign_in(home) and home.location == "/login?next=/me/"
    sign_in_page = client.get(home.location)
    assert sign_in_page.status_code == 200 and b"sign in with your password" in sign_in_page.data
    assert sends_to_sign_in(client.get("/me/questionnaires/phq9"))


@pytest.mark.parametrize("elsewhere", [
    "/me/", "/", "/me/questionnaires/gad7", "/me/settings", "/me/results/{earlier}",
    "/clinic/", "/exports/", "/no-such-page"])
def test_any_other_page_asks_for_the_password(app, session, factory, world, elsewhere):
    earlier = factory.assessment(world.patient, "phq9", total=4)
    client = app.test_client()
    follow(client, sent_link(app, session, world.patient))
    response = client.get(elsewhere.format(earlier=earlier.id))
    assert sends_to_sign_in(response), (response.status_code, response.location)
    assert sends_to_sign_in(client.get("/me/questionnaires/phq9")), "the session ended"


def test_a_form_posted_elsewhere_saves_nothing_and_asks_for_the_password(
        app, session, world, client):
    follow(client, sent_link(app, session, world.patient))
    response = client.post("/me/questionnaires/gad7", data={"submission_key": "b" * 32,
                                                           **{f"item_{n}": "1"
                                                              for n in range(1, 8)}})
    assert sends_to_sign_in(response) and response.location == "/login"
    assert session.scalar(select(func.count()).select_from(Assessment)) == 0


def test_after_sending_the_patient_sees_its_result_and_nothing_else(app, session, world,
                                                                     client):
    follow(client, sent_link(app, session, world.patient))
    sent = client.post("/me/questionnaires/phq9", data=phq9_form())
    assert sent.status_code == 302 and sent.location.startswith("/me/results/")
    assert client.get(sent.location).status_code == 200
    assert sends_to_sign_in(client.get("/me/"))
    assert sends_to_sign_in(client.get(sent.location)), "going elsewhere ended it"


def test_signing_in_with_the_password_then_opens_everything(app, session, world, client):
    follow(client, sent_link(app, session, world.patient))
    home = client.get("/me/")
    signed_in = client.post(home.location, data={"email": world.patient_user.email,
                                                  "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in.location == "/me/"
    assert client.get("/me/").status_code == 200
    assert client.get("/me/questionnaires/gad7").status_code == 200


def test_a_patient_already_signed_in_keeps_their_session(app, session, world, client):
    sign_in(client, world.patient_user)
    follow(client, sent_link(app, session, world.patient))
    assert client.get("/me/").status_code == 200


def test_a_disclosure_through_a_links_questionnaire_shows_crisis_help_and_opens_one_alert(
        app, session, world, client):
    follow(client, sent_link(app, session, world.patient))
    sent = client.post("/me/questionnaires/phq9", data=phq9_form(item9=2))
    result = client.get(sent.location)
    assert result.status_code == 200
    assert world.clinic.crisis_phone.encode() in result.data
    page = result.data.decode()
    assert page.index(world.clinic.crisis_phone) < page.index("<h1")
    assert session.scalar(select(func.count()).select_from(Alert)) == 1
    client.post("/me/questionnaires/phq9", data=phq9_form(item9=2))  # a double tap
    assert session.scalar(select(func.count()).select_from(Alert)) == 1


def test_the_token_reaches_no_log_and_no_address(app, session, world, client, caplog):
    token = sent_link(app, session, world.patient)
    caplog.set_level(logging.DEBUG)
    responses = [client.get("/r"), follow(client, token), client.get("/me/questionnaires/phq9"),
                 client.post("/r", data={"token": token})]
    assert token not in caplog.text
    for response in responses:
        assert token not in (response.location or "")
        assert token.encode() not in response.get_data()


# -- reminders carry them ---------------------------------------------------------------------

def test_a_reminder_carries_its_questionnaires_link_under_the_clinics_name(
        app, session, factory, world, mailbox: Mailbox, pinned):
    world.clinic.message_sender_name = "Harbour Wellbeing"
    session.commit()
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    tick(app)
    [mail] = mailbox.received
    [sender] = mail.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Harbour Wellbeing", SENDER)
    [token] = LINK.findall(mail.message.get_content())
    [reminder] = deliveries(session, patient_id=patient.id)
    link = session.scalars(select(QuestionnaireLink)).one()
    assert (link.delivery_id, link.instrument_key, link.patient_id) == (
        reminder.id, "phq9", patient.id)
    assert link.expires_at == reminder.sent_at + LINK_LIFETIME

    client = app.test_client()
    assert follow(client, token).location == "/me/questionnaires/phq9"


def test_a_retried_reminder_carries_a_new_link_and_the_unsent_one_never_works(
        app, session, factory, world, mailbox: Mailbox, pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    working_port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = free_port()  # nothing listens: a temporary failure
    tick(app)
    [reminder] = deliveries(session, patient_id=patient.id)
    assert (reminder.status, reminder.last_error) == ("pending", "TemporaryFailure")
    assert session.scalar(select(func.count()).select_from(QuestionnaireLink)) == 0

    app.config["SMTP_PORT"] = working_port
    pinned.advance(minutes=1)
    tick(app)
    [mail] = mailbox.received
    [token] = LINK.findall(mail.message.get_content())
    assert session.scalar(select(func.count()).select_from(QuestionnaireLink)) == 1
    assert follow(app.test_client(), token).status_code == 303

    pinned.advance(days=1)
    tick(app)  # the second reminder: a link of its own
    tokens = [LINK.findall(received.message.get_content())[0]
              for received in mailbox.received]
    assert len(tokens) == 2 and len(set(tokens)) == 2
