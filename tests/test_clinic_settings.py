"""The clinic's settings page: its notification settings (issue 11 items 5 and 7), and its
details and sign-in policy (issue 12 item 4). Admins change each setting (stored, audited
old → new, answered 303); clinicians see them and cannot change them; bad values are refused
with a clear message and change nothing; the page states the notification defaults as local
policy and which channels the deployment has, or plainly that none is."""
from __future__ import annotations

import datetime as dt
import html

import pytest
from sqlalchemy import select

from outcomes.auth.sessions import idle_limit
from outcomes.models import AuditEvent, Clinic
from outcomes.services import clinic_settings
from outcomes.services.audit import Actor
from outcomes.services.clinic_settings import ClinicDetails, SettingsRefused
from outcomes.services.mfa import second_factor_required

from .conftest import sign_in

GOOD = {"reminder_limit": "3", "quiet_from": "21:00", "quiet_until": "09:00",
        "on_call_email": "", "escalation_minutes": "30", "message_sender_name": "Outcomes"}


@pytest.fixture
def admin(factory, world):
    return factory.staff(world.clinic, "admin")


def post(client, **changes):
    return client.post("/clinic/settings", data={**GOOD, **changes})


def post_details(client, session, clinic_id: int, **changes):
    """The clinic-details form as the page fills it, with ``changes``."""
    clinic = clinic_now(session, clinic_id)
    current = {"name": clinic.name, "crisis_phone": clinic.crisis_phone,
               "timezone": clinic.timezone,
               "alert_response_wording": clinic.alert_response_wording or ""}
    return client.post("/clinic/settings/clinic", data={**current, **changes})


def post_policy(client, **changes):
    """The sign-in form, with the server's defaults and no MFA rule of the clinic's own."""
    return client.post("/clinic/settings/sign-in", data={"staff_idle_minutes": "",
                                                          "patient_idle_minutes": "",
                                                          **changes})


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


def columns(session, clinic_id: int, names) -> dict[str, object]:
    clinic = clinic_now(session, clinic_id)
    return {name: getattr(clinic, name) for name in names}


def assert_refused(response, session, clinic_id: int, message: str,
                   before: dict[str, object]) -> None:
    """The page refused the settings, saying ``message`` and marking the field; the clinic's
    columns are still ``before`` and nothing was audited."""
    assert response.status_code == 422
    text = page_text(response)
    assert "The settings could not be saved" in text and "Nothing was changed." in text
    assert message in text
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert columns(session, clinic_id, before) == before
    assert updates(session, clinic_id) == []


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
    assert response.location.endswith("/clinic/settings#notifications")
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
    before = columns(session, world.clinic.id, GOOD)
    # With a good change beside the bad one: that is not stored either.
    response = post(client, **{"reminder_limit": "5", name: sent})
    assert_refused(response, session, world.clinic.id, message, before)


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
    assert 'action="/clinic/settings' not in page.get_data(as_text=True)
    # The role check answers 404, as every route for another audience does.
    assert post(client, reminder_limit="0").status_code == 404
    assert post_details(client, session, world.clinic.id, name="Renamed").status_code == 404
    assert post_policy(client, staff_mfa_required="y").status_code == 404
    assert clinic_now(session, world.clinic.id).reminder_limit == 3
    assert clinic_now(session, world.clinic.id).name == "Harbour Clinic"
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


# -- the clinic's details (issue 12 item 4) ---------------------------------------------------

@pytest.mark.parametrize("name, sent, stored", [
    ("name", "  Harbour Ketamine Service ", "Harbour Ketamine Service"),
    ("name", "x" * 200, "x" * 200),
    ("name", "HARBOUR CLINIC", "HARBOUR CLINIC"),  # its own name, in capitals
    ("crisis_phone", "415.555.0123", "(415) 555-0123"),
    ("crisis_phone", "+1 800 273 8255", "(800) 273-8255"),
    ("crisis_phone", "+44 20 7946 0958", "+44 20 7946 0958"),  # abroad: international form
    ("crisis_phone", " 988 ", "988"),  # a short number of the region
    ("timezone", "Europe/London", "Europe/London"),
    ("timezone", " america/los_angeles ", "America/Los_Angeles"),
    ("alert_response_wording", "  Someone from the clinic will call you\n by the end of the "
     "next working day. ", "Someone from the clinic will call you by the end of the next "
     "working day."),
    ("alert_response_wording", "y" * 300, "y" * 300),
])
def test_an_admin_changes_each_detail(client, session, world, admin, name, sent, stored):
    sign_in(client, admin)
    before = getattr(clinic_now(session, world.clinic.id), name)
    response = post_details(client, session, world.clinic.id, **{name: sent})
    assert response.status_code == 303
    assert response.location.endswith("/clinic/settings#clinic")
    assert getattr(clinic_now(session, world.clinic.id), name) == stored
    [event] = updates(session, world.clinic.id)
    assert event.actor_id == admin.id and event.patient_id is None
    assert event.old_values == {name: before} and event.new_values == {name: stored}


def test_a_number_stored_before_numbers_were_checked_does_not_block_the_rest(
        client, session, world, admin):
    # The factory's clinics, like the demo's and those `flask create-clinic` made before it
    # checked numbers, have "+1 555 0100", no real number.
    assert clinic_now(session, world.clinic.id).crisis_phone == "+1 555 0100"
    sign_in(client, admin)
    assert post_details(client, session, world.clinic.id,
                        timezone="America/Chicago").status_code == 303
    clinic = clinic_now(session, world.clinic.id)
    assert clinic.crisis_phone == "+1 555 0100" and clinic.timezone == "America/Chicago"


def test_clearing_the_response_wording_promises_nothing(client, session, world, admin):
    world.clinic.alert_response_wording = "We call within a day."
    session.commit()
    sign_in(client, admin)
    assert post_details(client, session, world.clinic.id,
                        alert_response_wording=" \n ").status_code == 303
    assert clinic_now(session, world.clinic.id).alert_response_wording is None
    [event] = updates(session, world.clinic.id)
    assert event.new_values == {"alert_response_wording": None}


@pytest.mark.parametrize("name, sent, message", [
    ("name", "   ", "Give the clinic's name."),
    ("name", "x" * 201, "The clinic's name is 201 characters long; keep it to 200."),
    ("name", "Harbour\nClinic", "Keep the clinic's name to one line."),
    ("name", " hilltop CLINIC ", "Another clinic on this server already has that name"),
    ("crisis_phone", "", "Give the number patients in crisis can call."),
    ("crisis_phone", "call the desk", "That is not a phone number: give it as patients in US "
     "dial it, such as (201) 555-0123, or with + and the country code for a number abroad."),
    ("crisis_phone", "555 0100", "That is not a valid phone number in US"),
    ("crisis_phone", "911", "That is the emergency number, which the crisis screen shows "
     "already: give the clinic's own number."),
    ("crisis_phone", "+1 911", "That is the emergency number"),
    ("crisis_phone", "(415) 555-0123 ext. 12", "without an extension"),
    ("timezone", "", "Give the clinic's time zone, such as America/New_York."),
    ("timezone", "Mars/Olympus_Mons", "“Mars/Olympus_Mons” is not a time zone this server "
     "knows. Give an IANA name, such as America/New_York or Europe/London."),
    ("timezone", "Europe/Lodnon", "“Europe/Lodnon” is not a time zone this server knows. "
     "Did you mean Europe/London?"),
    ("timezone", "EST+5", "is not a time zone this server knows."),
    ("alert_response_wording", "z" * 301, "The wording is 301 characters long; keep it to 300"),
])
def test_bad_details_are_refused_with_a_clear_message_and_nothing_changes(
        client, session, world, admin, name, sent, message):
    before = columns(session, world.clinic.id,
                     ("name", "crisis_phone", "timezone", "alert_response_wording"))
    sign_in(client, admin)
    # With a good change beside the bad one: that is not stored either.
    other = "timezone" if name != "timezone" else "name"
    good = {"timezone": "America/Denver", "name": "Harbour Care"}[other]
    response = post_details(client, session, world.clinic.id, **{other: good, name: sent})
    assert_refused(response, session, world.clinic.id, message, before)


def test_every_detail_problem_is_named_at_once(client, session, world, admin):
    sign_in(client, admin)
    text = page_text(post_details(client, session, world.clinic.id, name="Hilltop Clinic",
                                  crisis_phone="12", timezone="Nowhere/Town",
                                  alert_response_wording="w" * 400))
    for message in ("already has that name", "not a valid phone number",
                    "“Nowhere/Town” is not a time zone", "keep it to 300"):
        assert message in text


def test_a_name_taken_at_the_same_moment_is_refused_not_an_error(app, session, world,
                                                                    monkeypatch):
    """The check finds the name free; another clinic's rename commits first: the unique
    constraint refuses it, and the admin gets the same message."""
    monkeypatch.setattr(clinic_settings, "_name_taken", lambda context, name: False)
    clinic = clinic_now(session, world.clinic.id)
    wanted = ClinicDetails("Hilltop Clinic", clinic.crisis_phone, clinic.timezone, None)
    with app.app_context(), pytest.raises(SettingsRefused) as refused:
        clinic_settings.update_settings(session, Actor(world.clinician), clinic, wanted,
                                        app.config)
    assert refused.value.problems == {"name": clinic_settings.NAME_TAKEN}
    session.rollback()
    assert clinic_now(session, world.clinic.id).name == "Harbour Clinic"


def test_the_patients_crisis_screen_shows_the_new_number(client, session, world, admin):
    sign_in(client, admin)
    assert post_details(client, session, world.clinic.id,
                        crisis_phone="415 555 0123").status_code == 303
    client.post("/logout")
    sign_in(client, world.patient_user)
    page = client.get("/me/help").get_data(as_text=True)
    assert "Call Harbour Clinic: (415) 555-0123" in html.unescape(page)
    assert 'href="tel:(415)555-0123"' in page


def test_the_page_offers_every_zone_and_says_what_a_change_moves(client, world, admin):
    sign_in(client, admin)
    page = client.get("/clinic/settings").get_data(as_text=True)
    assert 'list="time-zones"' in page and '<option value="Europe/London">' in page
    assert page.count("<option value=") >= 400
    text = html.unescape(page)
    assert "Times already recorded do not move" in text
    assert "quiet hours" in text and "'today'" in text
    assert "as patients dial it, such as (201) 555-0123" in text  # the region's (US) format


# -- the sign-in policy (issue 12 item 4) ------------------------------------------------------

@pytest.mark.parametrize("name, sent, stored", [
    ("staff_idle_minutes", "5", 5),
    ("staff_idle_minutes", "30", 30),
    ("patient_idle_minutes", "12", 12),
    ("staff_mfa_required", "y", True),
])
def test_an_admin_changes_the_sign_in_policy(client, session, world, admin, name, sent,
                                             stored):
    sign_in(client, admin)
    response = post_policy(client, **{name: sent})
    assert response.status_code == 303
    assert response.location.endswith("/clinic/settings#sign-in")
    assert getattr(clinic_now(session, world.clinic.id), name) == stored
    [event] = updates(session, world.clinic.id)
    assert event.new_values == {name: stored}


def test_a_blank_timeout_is_the_servers_default_again(app, client, session, world, admin):
    sign_in(client, admin)  # before the clinic requires a second factor
    world.clinic.staff_idle_minutes = 10
    world.clinic.staff_mfa_required = True
    session.commit()
    text = page_text(client.get("/clinic/settings"))
    assert "this server's default: 15 minutes for staff, 30 for patients" in text
    assert post_policy(client).status_code == 303
    clinic = clinic_now(session, world.clinic.id)
    assert clinic.staff_idle_minutes is None and clinic.staff_mfa_required is False
    [event] = updates(session, world.clinic.id)
    assert event.old_values == {"staff_idle_minutes": 10, "staff_mfa_required": True}
    assert event.new_values == {"staff_idle_minutes": None, "staff_mfa_required": False}


def test_the_policy_takes_effect(app, client, session, world, admin):
    sign_in(client, admin)
    assert post_policy(client, staff_idle_minutes="7", patient_idle_minutes="20",
                       staff_mfa_required="y").status_code == 303
    session.expire_all()
    clinician, patient = (session.get(type(user), user.id)
                          for user in (world.clinician, world.patient_user))
    assert idle_limit(app, clinician) == dt.timedelta(minutes=7)
    assert idle_limit(app, patient) == dt.timedelta(minutes=20)
    assert second_factor_required(clinician, app.config)
    assert not second_factor_required(patient, app.config)


@pytest.mark.parametrize("name, sent, message", [
    ("staff_idle_minutes", "4", "Give a number of minutes from 5 to 30, or leave it empty for "
     "this server's default (15 minutes)."),
    ("staff_idle_minutes", "31", "from 5 to 30"),
    ("patient_idle_minutes", "0", "Give a number of minutes from 5 to 30, or leave it empty "
     "for this server's default (30 minutes)."),
    ("patient_idle_minutes", "ten", "Not a valid integer value."),
])
def test_bad_timeouts_are_refused_and_nothing_changes(client, session, world, admin, name,
                                                      sent, message):
    sign_in(client, admin)
    before = columns(session, world.clinic.id,
                     ("staff_idle_minutes", "patient_idle_minutes", "staff_mfa_required"))
    assert before == {"staff_idle_minutes": None, "patient_idle_minutes": None,
                      "staff_mfa_required": False}
    response = post_policy(client, staff_mfa_required="y", **{name: sent})
    assert_refused(response, session, world.clinic.id, message, before)


def test_where_the_server_requires_mfa_it_cannot_be_turned_off(app, client, session, world,
                                                               admin):
    """Production always requires it (config.staff_mfa_required): the page says so, and a
    request that would turn it off is refused."""
    sign_in(client, admin)  # before the requirement: no authenticator needed for this test
    app.config.update(STAFF_MFA_REQUIRED=True)
    page = client.get("/clinic/settings")
    text = page_text(page)
    assert "this server requires a second factor of every clinician and admin" in text
    assert 'type="checkbox"' not in page.get_data(as_text=True)
    response = post_policy(client, staff_idle_minutes="10")
    assert response.status_code == 422
    assert "so it cannot be turned off here." in page_text(response)
    assert clinic_now(session, world.clinic.id).staff_idle_minutes is None
    # The form the page shows carries the requirement.
    assert post_policy(client, staff_idle_minutes="10",
                       staff_mfa_required="y").status_code == 303
    clinic = clinic_now(session, world.clinic.id)
    assert clinic.staff_idle_minutes == 10 and clinic.staff_mfa_required is True


def test_clinicians_read_the_details_and_the_policy(client, session, world):
    world.clinic.alert_response_wording = "We call within a day."
    world.clinic.patient_idle_minutes = 20
    session.commit()
    sign_in(client, world.clinician)
    text = page_text(client.get("/clinic/settings"))
    for shown in ("+1 555 0100", "America/New_York", "We call within a day.",
                  "15 minutes without activity (the server's default)",
                  "20 minutes without activity", "Not required"):
        assert shown in text
