"""Issue 11 items 5 and 7: the clinic's notification settings page. Admins change each
setting (stored, audited old → new, answered 303); clinicians see them and cannot change
them; bad values are refused with a clear message and change nothing; the page states the
defaults as local policy and which channels the deployment has, or plainly that none is."""
from __future__ import annotations

import datetime as dt
import html

import pytest
from sqlalchemy import select

from outcomes.models import AuditEvent, Clinic

from .conftest import sign_in

GOOD = {"reminder_limit": "3", "quiet_from": "21:00", "quiet_until": "09:00",
        "on_call_email": "", "escalation_minutes": "30", "message_sender_name": "Outcomes"}


@pytest.fixture
def admin(factory, world):
    return factory.staff(world.clinic, "admin")


def post(client, **changes):
    return client.post("/clinic/settings", data={**GOOD, **changes})


def clinic_now(session, clinic_id: int) -> Clinic:
    session.expire_all()
    return session.get(Clinic, clinic_id)


def updates(session, clinic_id: int) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).where(
        AuditEvent.action == "clinic.update", AuditEvent.clinic_id == clinic_id)
        .order_by(AuditEvent.id)))


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.mark.parametrize("name, sent, stored, audited", [
    ("reminder_limit", "0", 0, 0),
    ("reminder_limit", "10", 10, 10),
    ("quiet_from", "22:30", dt.time(22, 30), "22:30"),
    ("quiet_until", "07:15", dt.time(7, 15), "07:15"),
    ("on_call_email", "  On-Call@Clinic.Example ", "On-Call@clinic.example",
     "On-Call@clinic.example"),
    ("escalation_minutes", "1440", 1440, 1440),
    ("escalation_minutes", "1", 1, 1),
    ("message_sender_name", "  Harbour Care  ", "Harbour Care", "Harbour Care"),
    ("message_sender_name", "x" * 60, "x" * 60, "x" * 60),
])
def test_an_admin_changes_each_setting(client, session, world, admin, name, sent, stored,
                                       audited):
    sign_in(client, admin)
    before = getattr(clinic_now(session, world.clinic.id), name)
    response = post(client, **{name: sent})
    assert response.status_code == 303
    assert response.location.endswith("/clinic/settings")
    assert getattr(clinic_now(session, world.clinic.id), name) == stored
    [event] = updates(session, world.clinic.id)
    assert event.actor_id == admin.id and event.patient_id is None
    old = before.strftime("%H:%M") if isinstance(before, dt.time) else before
    assert event.old_values == {name: old} and event.new_values == {name: audited}
    assert "Saved:" in page_text(client.get("/clinic/settings"))


def test_unchanged_settings_store_and_audit_nothing(client, session, world, admin):
    sign_in(client, admin)
    response = post(client)
    assert response.status_code == 303
    assert "Nothing was changed." in page_text(client.get(response.location))
    assert updates(session, world.clinic.id) == []


def test_clearing_the_on_call_address_stores_none(client, session, world, admin):
    world.clinic.on_call_email = "pager@clinic.example"
    session.commit()
    sign_in(client, admin)
    assert post(client, on_call_email="   ").status_code == 303
    assert clinic_now(session, world.clinic.id).on_call_email is None
    [event] = updates(session, world.clinic.id)
    assert event.old_values == {"on_call_email": "pager@clinic.example"}
    assert event.new_values == {"on_call_email": None}


@pytest.mark.parametrize("name, sent, message", [
    ("reminder_limit", "11", "Give a number of reminders from 0 to 10 (0 sends none)."),
    ("reminder_limit", "-1", "Give a number of reminders from 0 to 10 (0 sends none)."),
    ("reminder_limit", "three", "Not a valid integer value."),
    ("reminder_limit", "", "Give the number of reminders, from 0 to 10 (0 sends none)."),
    ("escalation_minutes", "0", "Give a number of minutes from 1 to 1440 (a day)."),
    ("escalation_minutes", "1441", "Give a number of minutes from 1 to 1440 (a day)."),
    ("quiet_from", "25:00", "Not a valid time value."),
    ("quiet_until", "", "Give the time quiet hours end, such as 09:00."),
    ("on_call_email", "pager at clinic", "That is not a valid email address."),
    ("on_call_email", "a@b@clinic.example", "That is not a valid email address."),
    ("on_call_email", "a" * 250 + "@clinic.example", "The email address is too long"),
    ("message_sender_name", "   ", "Give the name messages are sent under."),
    ("message_sender_name", "x" * 61, "The sender name is 61 characters long; keep it to 60."),
    ("message_sender_name", "Harbour\nKetamine", "Keep the sender name to one line."),
])
def test_bad_values_are_refused_with_a_clear_message_and_nothing_changes(
        client, session, world, admin, name, sent, message):
    sign_in(client, admin)
    before = {column: getattr(clinic_now(session, world.clinic.id), column) for column in GOOD}
    # With a good change beside the bad one: that is not stored either.
    response = post(client, **{"reminder_limit": "5", name: sent})
    assert response.status_code == 422
    text = page_text(response)
    assert "The settings could not be saved" in text and "Nothing was changed." in text
    assert message in text
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    after = clinic_now(session, world.clinic.id)
    assert {column: getattr(after, column) for column in GOOD} == before
    assert updates(session, world.clinic.id) == []


def test_every_problem_is_named_at_once(client, session, world, admin):
    sign_in(client, admin)
    response = post(client, reminder_limit="12", escalation_minutes="0",
                    on_call_email="nobody", message_sender_name=" ")
    text = page_text(response)
    assert response.status_code == 422
    for message in ("from 0 to 10", "from 1 to 1440", "not a valid email address",
                    "Give the name messages are sent under."):
        assert message in text
    assert clinic_now(session, world.clinic.id).reminder_limit == 3


def test_a_clinician_sees_the_settings_but_cannot_change_them(client, session, world):
    world.clinic.on_call_email = "pager@clinic.example"
    session.commit()
    sign_in(client, world.clinician)
    page = client.get("/clinic/settings")
    assert page.status_code == 200
    text = page_text(page)
    assert "pager@clinic.example" in text and "21:00 to 09:00" in text
    assert "Only the clinic's admins can change these." in text
    assert "<form method=\"post\" novalidate>" not in page.get_data(as_text=True)
    # The role check answers 404, as every route for another audience does.
    assert post(client, reminder_limit="0").status_code == 404
    assert clinic_now(session, world.clinic.id).reminder_limit == 3
    assert updates(session, world.clinic.id) == []


def test_an_admin_changes_only_their_own_clinic(client, session, world, admin):
    sign_in(client, admin)
    assert post(client, reminder_limit="1").status_code == 303
    assert clinic_now(session, world.other_clinic.id).reminder_limit == 3


def test_the_defaults_are_stated_as_local_policy(client, world, admin):
    sign_in(client, admin)
    text = page_text(client.get("/clinic/settings"))
    assert "The defaults are this clinic's local policy, not taken from any guideline" in text
    assert "3 reminders per questionnaire" in text and "quiet hours 21:00 to 09:00" in text
    assert "after 30 minutes" in text and "“Outcomes”" in text


def test_the_page_says_plainly_that_no_channel_is_configured(app, client, world, admin):
    app.config.update(NOTIFICATION_OUTBOX=False)
    sign_in(client, admin)
    text = page_text(client.get("/clinic/settings"))
    assert "No channel is set up: no reminder or alert can leave Outcomes until one is." in text
    assert "outbox" not in text.lower()


def test_in_development_the_page_points_to_the_outbox(app, client, world, admin):
    app.config.update(NOTIFICATION_OUTBOX=True)
    sign_in(client, admin)
    page = client.get("/clinic/settings").get_data(as_text=True)
    assert "No channel is set up" in page
    assert 'the <a href="/clinic/outbox">outbox</a> shows what would have gone out' in page


def test_the_page_names_the_channels_configured(app, client, world, admin):
    app.config.update(SMTP_HOST="smtp.example", SMTP_FROM="reminders@clinic.example",
                      NOTIFICATION_OUTBOX=False)
    sign_in(client, admin)
    text = page_text(client.get("/clinic/settings"))
    assert "This deployment sends by Email." in text
    assert "No channel is set up" not in text
