"""The ``deliveries`` CSV export: one row per message queued (reminders, alert notifications,
escalations), its columns as docs/exports.md defines them, the clinic's own only, no message
text, de-identified like the other kinds, and audited like them."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from outcomes.models import Alert, AuditEvent
from outcomes.services import exports
from outcomes.services.deliveries import WORDING, write_delivery

from .conftest import sign_in
from .helpers import as_dicts, parse, post_export

UTC = dt.timezone.utc
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "exports.md"
#: Tuesday 10 March 2026, 10:00 in New York (EDT).
QUEUED = dt.datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
OPENS = dt.datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # midnight starting 10 March there
MINUTE = dt.timedelta(minutes=1)


def delivery(session, key: str, clinic, **values) -> None:
    status = values.setdefault("status", "sent")
    queued = values.setdefault("created_at", QUEUED)
    values.setdefault("attempts", 1)
    values.setdefault("next_attempt_at", queued if status == "pending" else None)
    if status == "sent":
        values.setdefault("sent_at", queued + MINUTE)
    if status == "failed":
        values.setdefault("failed_at", queued + 5 * MINUTE)
    write_delivery(session, key, clinic_id=clinic.id, **values)


def reminder(patient, number: int = 1, channel: str = "email") -> dict[str, object]:
    return {"purpose": "reminder", "channel": channel, "patient_id": patient.id,
            "instrument_key": "phq9", "schedule": "recurring", "occurrence_opens_at": OPENS,
            "reminder_number": number}


@pytest.fixture
def messages(session, world, factory):
    """At Harbour Clinic: a first reminder sent by email, a second by text that failed for
    good, an alert's notification to the clinician (sent) and to the on-call address
    (pending), its escalation to an admin (withdrawn once acknowledged), and account notices
    to the patient's login and to the clinician. At Hilltop Clinic: a reminder of its own
    patient."""
    admin = factory.staff(world.clinic, "admin")
    factory.assessment(world.patient, "phq9", [1] * 9)  # item 9 above 0: an alert
    alert = session.scalars(select(Alert).where(Alert.patient_id == world.patient.id)).one()
    clinic, patient = world.clinic, world.patient
    delivery(session, "r1", clinic, **reminder(patient))
    delivery(session, "r2", clinic, **reminder(patient, 2, "sms"), status="failed",
             attempts=1, last_error="PermanentFailure", created_at=QUEUED + dt.timedelta(days=1))
    delivery(session, "a1", clinic, purpose="alert", channel="email", user_id=world.clinician.id,
             alert_id=alert.id, created_at=QUEUED + 2 * MINUTE)
    delivery(session, "a2", clinic, purpose="alert", channel="email", alert_id=alert.id,
             status="pending", attempts=3, last_error="TemporaryFailure",
             created_at=QUEUED + 2 * MINUTE)
    delivery(session, "e1", clinic, purpose="escalation", channel="push", user_id=admin.id,
             alert_id=alert.id, status="failed", attempts=0, last_error="AlertAcknowledged",
             created_at=QUEUED + 40 * MINUTE)
    delivery(session, "n1", clinic, purpose="account", channel="email",
             user_id=world.patient_user.id, account_notice="password_reset",
             created_at=QUEUED + 50 * MINUTE)
    delivery(session, "n2", clinic, purpose="account", channel="email",
             user_id=world.clinician.id, account_notice="factors_reset",
             created_at=QUEUED + 55 * MINUTE)
    delivery(session, "other", world.other_clinic, **reminder(world.other_patient))
    session.commit()
    return alert, admin


def test_the_guide_defines_each_column_in_order_with_its_de_identified_name():
    section = GUIDE.read_text().split("## `deliveries`")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `(\w+)` \| (?:`(\w+)`|same) \|", section, re.MULTILINE)
    assert [(name, deidentified or name) for name, deidentified in documented] == [
        (column.name, column.heading(True)) for column in exports.KINDS["deliveries"].columns]


def test_one_row_per_message_with_who_it_went_to_and_what_became_of_it(
        client, world, messages):
    alert, _admin = messages
    sign_in(client, world.clinician)
    response = post_export(client, kind="deliveries")
    assert response.status_code == 200
    rows = as_dicts(response.data)
    assert [(r["purpose"], r["channel"], r["recipient_kind"], r["status"]) for r in rows] == [
        ("reminder", "email", "patient", "sent"), ("reminder", "sms", "patient", "failed"),
        ("alert", "email", "staff", "sent"), ("alert", "email", "on_call", "pending"),
        ("escalation", "push", "staff", "failed"), ("account", "email", "patient", "sent"),
        ("account", "email", "staff", "sent")]
    first = rows[0]
    assert first == {
        "delivery_id": first["delivery_id"], "purpose": "reminder", "channel": "email",
        "recipient_kind": "patient", "patient_identifier": world.patient.identifier,
        "alert_id": "", "account_notice": "", "instrument_key": "phq9", "schedule": "recurring",
        "occurrence_opens_at": "2026-03-10T04:00:00Z", "reminder_number": "1",
        "status": "sent", "attempts": "1", "created_at": "2026-03-10T14:00:00Z",
        "sent_at": "2026-03-10T14:01:00Z", "failed_at": "", "last_error": ""}
    assert (rows[1]["reminder_number"], rows[1]["failed_at"], rows[1]["last_error"]) == (
        "2", "2026-03-11T14:05:00Z", "PermanentFailure")
    # An alert's messages name the alert, and the patient it is about.
    for row in rows[2:5]:
        assert (row["alert_id"], row["patient_identifier"], row["instrument_key"],
                row["reminder_number"]) == (str(alert.id), world.patient.identifier, "", "")
    assert (rows[3]["attempts"], rows[3]["last_error"]) == ("3", "TemporaryFailure")
    assert rows[4]["last_error"] == "AlertAcknowledged"
    # An account notice says which, and about whose account: the patient's, or no patient's.
    assert [(r["account_notice"], r["patient_identifier"], r["alert_id"]) for r in rows[5:]] == [
        ("password_reset", world.patient.identifier, ""), ("factors_reset", "", "")]
    # No message text: none of the fixed wording's subjects or bodies.
    text = response.data.decode("utf-8-sig")
    for wording in WORDING.values():
        assert wording.subject not in text and wording.body not in text


def test_only_the_clinics_own_messages_and_the_filters_apply(client, world, messages):
    sign_in(client, world.clinician)
    rows = as_dicts(post_export(client, kind="deliveries").data)
    assert len(rows) == 7
    assert world.other_patient.identifier not in {row["patient_identifier"] for row in rows}
    later = as_dicts(post_export(client, kind="deliveries", date_from="2026-03-11").data)
    assert [row["channel"] for row in later] == ["sms"]  # queued on 11 March
    before = as_dicts(post_export(client, kind="deliveries", date_to="2026-03-09").data)
    assert before == []
    theirs = as_dicts(post_export(client, kind="deliveries",
                                  patient=world.patient.identifier).data)
    assert len(theirs) == 6  # all but the clinician's own account notice
    refused = post_export(client, kind="deliveries", instrument="phq9")
    assert refused.status_code == 422 and b"cannot be filtered by questionnaire" in refused.data


def test_de_identified_rows_hold_pseudonyms_and_days(client, world, factory, messages):
    factory.course(world.patient, started_on=dt.date(2026, 3, 8),
                   infusions=[dt.datetime(2026, 3, 8, 15, 0, tzinfo=UTC)])
    sign_in(client, world.clinician)
    body = post_export(client, kind="deliveries", deidentified=True).data
    header, *rows = parse(body)
    assert header == [column.heading(True) for column in exports.KINDS["deliveries"].columns]
    first = dict(zip(header, rows[0]))
    assert re.fullmatch(r"D-[0-9a-f]{12}", first["delivery_pseudonym"])
    assert re.fullmatch(r"P-[0-9a-f]{12}", first["patient_pseudonym"])
    # Days since the first infusion (8 March), at the clinic.
    assert (first["occurrence_opens_day"], first["created_day"], first["sent_day"]) == (
        "2", "2", "2")
    text = body.decode("utf-8-sig")
    assert world.patient.identifier not in text and not re.search(r"\d{4}-\d{2}-\d{2}", text)


def test_the_export_is_audited_like_the_others(client, runner, world, messages, session):
    sign_in(client, world.clinician)
    response = post_export(client, kind="deliveries", patient=world.patient.identifier)
    assert response.status_code == 200 and len(as_dicts(response.data)) == 6
    result = runner.invoke(args=["export", "deliveries", "--clinic", world.clinic.name])
    assert result.exit_code == 0, result.stderr
    assert len(as_dicts(result.stdout_bytes)) == 7
    web, command = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "export.csv").order_by(AuditEvent.id)).all()
    assert (web.actor_id, web.patient_id, web.details["kind"], web.details["rows"]) == (
        world.clinician.id, world.patient.id, "deliveries", None)
    assert (command.actor_role, command.details["kind"], command.details["rows"]) == (
        "system", "deliveries", 7)
