"""Issue 11's browser test: a patient with a due PHQ-9 gets one reminder through a real SMTP
server, follows its link on a phone against gunicorn in production settings (TLS, CSRF),
completes the PHQ-9, and the next day's run of the jobs sends no further reminder; a patient
with reminders off gets none. The token reaches no line of the server's log.

The jobs run in the test's process, against the server's database, as the worker would (one
tick of the reminders and deliveries jobs), with the server's address as PUBLIC_BASE_URL.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest

import instruments
from outcomes import clock

from ..notification_world import recipients, remindable_patient, tick
from .conftest import check_page, expect, goto
from .pages import RESULT_URL, assessment_count, submit, tap_answers

pytestmark = pytest.mark.browser

#: Few symptoms and item 9 "Not at all": no crisis screen, so the result page comes next.
CALM_PHQ9 = [1, 1, 0, 1, 0, 1, 0, 0, 0, None]


def test_a_reminders_link_leads_to_the_phq9_on_a_phone_and_no_reminder_follows(
        app, session, factory, world, live_server, server_log, mailbox, phone, monkeypatch):
    # No quiet hours (equal times), so the test runs at any hour of the clinic's day.
    world.clinic.quiet_from = world.clinic.quiet_until = dt.time(0, 0)
    world.clinic.message_sender_name = "Harbour Wellbeing"
    session.commit()
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    remindable_patient(factory, session, world.clinic, world.clinician,
                       reminders_enabled=False)
    # A patient who leaves theirs undone: reminded again the next day.
    waiting = remindable_patient(factory, session, world.clinic, world.clinician)

    tick(app)
    assert sorted(recipients(mailbox)) == sorted([patient.user.email, waiting.user.email]), \
        "one reminder each, none with reminders off"
    [mail] = [received for received in mailbox.received
              if received.recipients == [patient.user.email]]
    assert mail.message["From"].addresses[0].display_name == "Harbour Wellbeing"
    [link] = re.findall(re.escape(live_server) + r"/r#[A-Za-z0-9_-]+", mail.message.get_content())
    token = link.partition("#")[2]

    goto(phone, link)
    expect(phone.get_by_role("heading", level=1)).to_have_text("Your questionnaire")
    check_page(phone)
    assert "#" not in phone.url, "the page's script takes the token out of the address bar"
    phone.get_by_role("button", name="Open the questionnaire").click()
    title = instruments.get("phq9").title
    expect(phone.get_by_role("heading", level=1, name=title)).to_be_visible()
    check_page(phone, keyboard=True)

    tap_answers(phone, "phq9", CALM_PHQ9)
    submit(phone, status=302)
    expect(phone).to_have_url(RESULT_URL)
    check_page(phone)
    assert assessment_count(session, patient.id) == 1

    # Anything beyond the result asks for the password.
    phone.get_by_role("link", name="Home", exact=True).click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(phone.get_by_text("sign in with your password")).to_be_visible()
    # The link was used: opening it again shows the calm page.
    goto(phone, link)
    phone.get_by_role("button", name="Open the questionnaire").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text(
        "This link has been used or has expired")
    check_page(phone)

    # The next clinic day, when a second reminder would go for a questionnaire not done.
    tomorrow = clock.utcnow() + dt.timedelta(days=1)
    monkeypatch.setattr(clock, "utcnow", lambda: tomorrow)
    tick(app)
    assert sorted(recipients(mailbox)) == sorted([patient.user.email, waiting.user.email,
                                                  waiting.user.email])

    log = server_log.read_text(errors="replace")
    assert '"POST /r HTTP' in log and '"GET /r HTTP' in log
    assert token not in log
