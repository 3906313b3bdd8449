"""Clinical invariants are enforced by the database itself, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from outcomes.models import Assessment, AssessmentAnswer, AuditEvent, utcnow


def assessment_row(world, **changes):
    now = utcnow()
    row = dict(patient_id=world.patient.id, instrument_key="phq9", instrument_version="1",
               administered_at=now, submitted_at=now, entered_by_id=world.patient_user.id,
               source="patient", idempotency_key="k-" + str(id(changes)) + str(len(changes)),
               scorable=True, total=5, prorated=False, subscales={}, flags={}, missing_items=[])
    row.update(changes)
    return row


@pytest.mark.parametrize("changes", [
    {"scorable": True, "total": None},
    {"scorable": False, "total": 7},
    {"total": -1},
    {"source": "fax"},
    {"prorated": True, "scorable": False, "total": None},
    {"amendment_reason": "typo"},
    {"administered_at": utcnow() + dt.timedelta(hours=1)},
], ids=["scorable-without-total", "total-when-not-scorable", "negative-total", "unknown-source",
        "prorated-unscorable", "reason-without-amendment", "administered-after-submission"])
def test_assessment_constraints_refuse_inconsistent_rows(world, session, changes):
    with pytest.raises(IntegrityError):
        session.execute(insert(Assessment), [assessment_row(world, **changes)])
    session.rollback()


def test_answer_item_numbers_and_idempotency_keys_are_constrained(world, session):
    session.execute(insert(Assessment), [assessment_row(world, idempotency_key="same")])
    with pytest.raises(IntegrityError):
        session.execute(insert(Assessment), [assessment_row(world, idempotency_key="same")])
    session.rollback()
    session.execute(insert(Assessment), [assessment_row(world, idempotency_key="one")])
    assessment_id = session.scalar(text("SELECT max(id) FROM assessment"))
    # A value is the definition's to check (the engine refuses any that is not an option), so
    # a wider scale than 0-10 is stored; an item number below 1 is no item at all.
    session.execute(insert(AssessmentAnswer),
                    [{"assessment_id": assessment_id, "item_number": 1, "value": 11}])
    with pytest.raises(IntegrityError):
        session.execute(insert(AssessmentAnswer),
                        [{"assessment_id": assessment_id, "item_number": 0, "value": 1}])
    session.rollback()


@pytest.mark.parametrize("statement", ["update", "delete"])
@pytest.mark.parametrize("model", [Assessment, AssessmentAnswer, AuditEvent])
def test_submitted_records_and_audit_rows_are_append_only(world, factory, session, statement,
                                                          model):
    factory.assessment(world.patient, "phq9", [1] * 9)
    change = (update(model).values(**{_column(model): _value(model)}) if statement == "update"
              else delete(model))
    with pytest.raises((IntegrityError, DBAPIError)) as raised:
        session.execute(change.execution_options(synchronize_session=False))
        session.flush()
    assert "append-only" in str(raised.value)
    session.rollback()


def _column(model):
    return {Assessment: "total", AssessmentAnswer: "value", AuditEvent: "action"}[model]


def _value(model):
    return {Assessment: 0, AssessmentAnswer: 0, AuditEvent: "rewritten"}[model]
