"""Issue 11 item 5: every notification about an alert is shown on it — on the patient's
record and in the inbox — with whom it went to, the channel, when, and how it went (sent,
failed, waiting for retry after attempt n). A failed one is said plainly, in the open alert.
The notifications load in one statement for all the alerts of a page."""
from __future__ import annotations

import html
import re

import pytest

from .channel_servers import Mailbox
from .conftest import sign_in, statements
from .notification_world import (  # noqa: F401  (fixtures)
    crisis_alert,
    deliveries,
    mailbox,
    pinned,
    tick,
)

ON_CALL = "on-call@clinic.example"


@pytest.fixture
def notified(app, session, factory, world, mailbox: Mailbox, pinned):
    """A crisis alert whose on-call address the mail server refuses for good (550), whose
    clinician's it puts off (451, twice), and that escalated after its clinic's 30 minutes to
    the admin, whose mail went through."""
    admin = factory.staff(world.clinic, "admin")
    world.clinic.on_call_email = ON_CALL
    session.commit()
    mailbox.replies[ON_CALL] = "550 5.1.1 No such user"
    mailbox.replies[world.clinician.email] = "451 4.3.0 Try again later"
    alert = crisis_alert(factory, world.patient)
    tick(app)
    pinned.advance(minutes=31)
    tick(app)
    return alert, admin


def alert_box(page: str, alert_id: int) -> str:
    """The alert's own part of a page (its box on the record, its item in the inbox)."""
    start = page.index(f'id="alert-{alert_id}"')
    end = page.find('id="alert-', start + 1)
    return page[start:end if end != -1 else len(page)]


def notification_lines(box: str) -> list[str]:
    block = box[box.index('class="alert-notifications"'):]
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).split())
            for item in re.findall(r"<li>(.*?)</li>", block.split("</ul>")[0], flags=re.S)]


def test_the_record_shows_each_notification_failed_waiting_and_sent(
        client, session, world, notified):
    alert, admin = notified
    rows = {d.user_id or "on-call": d for d in deliveries(session, alert_id=alert.id)}
    assert rows["on-call"].status == "failed"
    assert rows[world.clinician.id].status == "pending" and rows[world.clinician.id].attempts == 2
    assert rows[admin.id].status == "sent" and rows[admin.id].purpose == "escalation"
    sign_in(client, world.clinician)
    page = client.get(f"/clinic/patients/{world.patient.id}").get_data(as_text=True)
    box = alert_box(page, alert.id)
    assert "Open</span>" in box  # the open alert's box: nothing folded away
    assert "1 failed" in box
    lines = notification_lines(box)
    assert lines == [
        "To the clinician by Email: waiting for retry (attempt 2 of 10 failed) next try "
        "2 Mar 2026, 10:33 — the server could not be reached or could not take it",
        "To the on-call by Email: failed at 2 Mar 2026, 10:00 — refused: it can never reach "
        "this address",
        "To the admin by Email: sent at 2 Mar 2026, 10:31",
    ]
    assert '<span class="tag alert">failed</span>' in box


def test_the_inbox_shows_them_too(client, world, notified):
    alert, _ = notified
    sign_in(client, world.clinician)
    page = client.get("/clinic/alerts").get_data(as_text=True)
    lines = notification_lines(alert_box(page, alert.id))
    assert [line.split(":")[0] for line in lines] == [
        "To the clinician by Email", "To the on-call by Email", "To the admin by Email"]
    assert "failed" in lines[1] and "sent" in lines[2]


def test_an_acknowledged_alert_keeps_its_notifications(client, world, notified):
    alert, _ = notified
    sign_in(client, world.clinician)
    client.post(f"/clinic/alerts/{alert.id}/acknowledge", data={"note": "Called; safe."})
    page = client.get(f"/clinic/patients/{world.patient.id}").get_data(as_text=True)
    acknowledged = page[page.index("Acknowledged alerts"):]
    assert "To the on-call by Email" in html.unescape(acknowledged)
    assert "1 failed" in acknowledged


def test_a_crisis_alert_not_yet_notified_says_so(client, factory, world):
    alert = crisis_alert(factory, world.patient)
    sign_in(client, world.clinician)
    page = client.get("/clinic/alerts").get_data(as_text=True)
    assert "No notification has been sent about this alert yet." in alert_box(page, alert.id)


def test_the_notifications_load_in_one_statement_for_all_alerts(
        app, client, factory, world, mailbox, pinned):
    """The inbox and the record make as many statements with notifications as without."""
    world.clinic.on_call_email = ON_CALL
    factory.session.commit()
    crisis_alert(factory, world.patient)
    crisis_alert(factory, factory.patient(world.clinic, world.clinician))
    sign_in(client, world.clinician)
    paths = ["/clinic/alerts", f"/clinic/patients/{world.patient.id}"]
    for path in paths:
        client.get(path)  # warm: the first request may load things once
    before = [count(app, client, path) for path in paths]
    tick(app)
    assert len(mailbox.received) == 4  # each alert to the clinician and the on-call address
    assert [count(app, client, path) for path in paths] == before


def count(app, client, path: str) -> int:
    with statements(app) as seen:
        assert client.get(path).status_code == 200
    return len(seen)
