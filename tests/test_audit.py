"""The audit trail is complete and tamper-evident: hash-chained, verified, append-only."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from outcomes.models import AuditEvent

from .conftest import sign_in


def chain(session):
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()


def test_every_row_is_chained_to_the_one_before(client, world, session):
    sign_in(client, world.clinician)
    client.get(f"/clinic/patients/{world.patient.id}")
    rows = chain(session)
    assert len(rows) > 5
    assert rows[0].prev_hash == "0" * 64
    for before, after in zip(rows, rows[1:]):
        assert after.prev_hash == before.row_hash and after.id == before.id + 1


def test_verify_passes_on_an_untouched_trail(runner, world, client):
    sign_in(client, world.clinician)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "Audit trail intact" in result.output


def edit_by_hand(session, statement):
    """What someone with database access would do: step round the append-only triggers."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
        session.execute(text(statement))
        session.commit()
    else:
        session.execute(text("DROP TRIGGER audit_event_no_update"))
        session.execute(text("DROP TRIGGER audit_event_no_delete"))
        session.execute(text(statement))
        session.commit()


@pytest.mark.parametrize("statement, problem", [
    ("UPDATE audit_event SET action = 'patient.list' WHERE id = {target}",
     "its content does not match its hash"),
    ("UPDATE audit_event SET ip_address = '10.9.9.9' WHERE id = {target}",
     "its content does not match its hash"),
    ("DELETE FROM audit_event WHERE id = {target}", "does not follow the row before it"),
], ids=["action", "ip-address", "deleted-row"])
def test_editing_a_row_by_hand_makes_verify_fail_and_name_it(
        runner, world, client, session, statement, problem):
    sign_in(client, world.clinician)
    client.get(f"/clinic/patients/{world.patient.id}")
    target = chain(session)[4].id
    edit_by_hand(session, statement.format(target=target))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    named = target if "DELETE" not in statement else target + 1
    assert f"BROKEN at row {named}" in result.output and problem in result.output


def test_a_failed_request_writes_no_audit_row(client, world, session):
    sign_in(client, world.clinician)
    before = len(chain(session))
    client.post("/clinic/patients/new", data={"identifier": "", "display_name": "x",
                                               "assigned_clinician": str(world.clinician.id)})
    assert len(chain(session)) == before


def test_changes_record_old_and_new_values_and_reasons(client, world, session):
    sign_in(client, world.clinician)
    base = f"/clinic/patients/{world.patient.id}"
    client.post(f"{base}/paper/gad7", data={"submission_key": "p", "administered_on": "2026-11-01",
                                            **{f"item_{n}": "1" for n in range(1, 8)}})
    original = session.scalar(select(AuditEvent).where(AuditEvent.action == "assessment.submit"))
    client.post(f"{base}/assessments/{original.object_id}/correct", data={
        "submission_key": "c", "administered_on": "2026-11-01", "amendment_reason": "Misread",
        **{f"item_{n}": "2" for n in range(1, 8)}})
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "assessment.correct"))
    assert event.old_values["total"] == 7 and event.new_values["total"] == 14
    assert event.old_values["answers"] == [1] * 7 and event.reason == "Misread"
    assert (event.actor_id, event.actor_role, event.clinic_id, event.patient_id) == \
        (world.clinician.id, "clinician", world.clinic.id, world.patient.id)
    assert event.ip_address == "127.0.0.1" and len(event.request_id) == 32
