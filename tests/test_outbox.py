"""Issue 11 item 2: development's outbox page. It exists only where NOTIFICATION_OUTBOX is on
(404 elsewhere); it lists the clinic's deliveries newest first, 50 a page, each with whom it
was for (never a patient's name), its channel, status, tries and times, and the message as it
was sent, rebuilt from the fixed wording; another clinic's deliveries never appear."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from outcomes.channels import OUTBOX_RECEIPT_PREFIX
from outcomes.extensions import db
from outcomes.models import AuditEvent
from outcomes.services.delivery_view import OUTBOX_PAGE_SIZE
from outcomes.services.deliveries import write_delivery

from .conftest import sign_in
from .notification_world import (  # noqa: F401  (fixtures)
    BASE_URL,
    crisis_alert,
    deliveries,
    pinned,
    remindable_patient,
    tick,
)

ON_CALL = "on-call@clinic.example"


@pytest.fixture
def development(app):
    """Development's settings: the outbox on, no channel configured, messages linking to
    BASE_URL (so the notification jobs run)."""
    app.config.update(NOTIFICATION_OUTBOX=True, PUBLIC_BASE_URL=BASE_URL)
    return app


@pytest.fixture
def sent_through_the_outbox(development, session, factory, world, pinned):
    """One tick of the worker: a reminder to a patient who chose email, and each clinic's crisis
    alert to its clinician and on-call address, all carried by the outbox."""
    reminded = remindable_patient(factory, session, world.clinic, world.clinician)
    for clinic in (world.clinic, world.other_clinic):
        clinic.on_call_email = ON_CALL
    world.clinic.message_sender_name = "Harbour Care"
    session.commit()
    alert = crisis_alert(factory, world.patient)
    crisis_alert(factory, world.other_patient)
    tick(development)
    return reminded, alert


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def entries(page: str) -> list[str]:
    """The outbox's entries, in the page's order."""
    return re.findall(r'<li id="delivery-\d+">.*?</li>', page, flags=re.S)


def test_there_is_no_outbox_outside_development(app, client, world):
    app.config.update(NOTIFICATION_OUTBOX=False)
    sign_in(client, world.clinician)
    assert client.get("/clinic/outbox").status_code == 404
    assert "/clinic/outbox" not in client.get("/clinic/settings").get_data(as_text=True)


def test_the_outbox_lists_the_messages_that_would_have_gone_out(
        client, session, world, sent_through_the_outbox):
    reminded, alert = sent_through_the_outbox
    sign_in(client, world.clinician)
    response = client.get("/clinic/outbox")
    assert response.status_code == 200
    page = text_of(response)
    own = deliveries(session, clinic_id=world.clinic.id)
    assert own and all(d.status == "sent" and d.receipt.startswith(OUTBOX_RECEIPT_PREFIX)
                       for d in own)
    assert f"{len(own)} messages." in page
    listed = entries(page)
    assert len(listed) == len(own)
    reminder = next(entry for entry in listed
                    if f"/clinic/patients/{reminded.id}\"" in entry)
    assert "Reminder</strong> to the patient" in reminder and "by Email" in reminder
    assert '<span class="tag good">sent</span>' in reminder
    assert "kept in the outbox (never left)" in reminder and re.search(r"· 1 attempt\s", reminder)
    assert "<dd>Harbour Care</dd>" in reminder
    assert "<dd>A questionnaire is ready for you</dd>" in reminder
    assert "<dd>A questionnaire is ready for you — open Outcomes to fill it in.</dd>" in reminder
    assert f"<dd>{BASE_URL}/r</dd>" in reminder
    assert "single-use token" in reminder
    to_clinician = next(entry for entry in listed if "Alert</strong> to the clinician" in entry)
    assert "<dd>A patient needs attention — open Outcomes.</dd>" in to_clinician
    assert f"<dd>{BASE_URL}/clinic/alerts</dd>" in to_clinician
    assert "/clinic/patients/" not in to_clinician  # only reminders link to their patient
    assert any("Alert</strong> to the on-call" in entry for entry in listed)
    # Whom a message was for, never their name or identifier.
    for patient in (reminded, world.patient):
        assert patient.display_name not in page and patient.identifier not in page


def test_another_clinics_deliveries_are_never_shown(client, session, world,
                                                    sent_through_the_outbox):
    theirs = deliveries(session, clinic_id=world.other_clinic.id)
    assert theirs, "the other clinic's alert was notified too"
    sign_in(client, world.clinician)
    page = client.get("/clinic/outbox").get_data(as_text=True)
    shown = {int(number) for number in re.findall(r'id="delivery-(\d+)"', page)}
    assert shown == {d.id for d in deliveries(session, clinic_id=world.clinic.id)}
    assert f"/clinic/patients/{world.other_patient.id}" not in page


def test_the_outbox_is_newest_first_fifty_a_page(app, client, session, factory, world,
                                                  development):
    alert = crisis_alert(factory, world.patient)
    with app.app_context():
        for number in range(OUTBOX_PAGE_SIZE + 1):
            write_delivery(db.session, f"test:{number}", clinic_id=world.clinic.id,
                           purpose="alert", channel="email", alert_id=alert.id)
        db.session.commit()
    ids = [d.id for d in deliveries(session, clinic_id=world.clinic.id)]
    sign_in(client, world.clinician)
    first = client.get("/clinic/outbox").get_data(as_text=True)
    shown = [int(number) for number in re.findall(r'id="delivery-(\d+)"', first)]
    assert shown == sorted(ids, reverse=True)[:OUTBOX_PAGE_SIZE]
    assert "51 messages, page 1 of 2." in first and 'rel="next"' in first
    assert "waiting to be sent" in first
    second = client.get("/clinic/outbox?page=2").get_data(as_text=True)
    assert re.findall(r'id="delivery-(\d+)"', second) == [str(min(ids))]
    assert 'rel="prev"' in second and 'rel="next"' not in second
    # A page past the last, or not a number, shows the nearest page rather than failing.
    assert re.findall(r'id="delivery-(\d+)"', client.get("/clinic/outbox?page=9").get_data(
        as_text=True)) == [str(min(ids))]
    assert client.get("/clinic/outbox?page=x").status_code == 200


def test_reading_the_outbox_is_audited(client, session, world, sent_through_the_outbox):
    reminded, _ = sent_through_the_outbox
    sign_in(client, world.clinician)
    client.get("/clinic/outbox")
    session.expire_all()
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox.view")).one()
    assert event.actor_id == world.clinician.id and event.clinic_id == world.clinic.id
    assert reminded.id in event.details["patients"]
