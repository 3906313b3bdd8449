"""The audit trail: who did what to which record, when and from where.

``record`` queues an event on the session; when the session commits, the queued events are
written in the same transaction, each chained to the one before by hash (``audit_chain``).
The chain is extended under a lock (a PostgreSQL advisory lock; on SQLite every transaction
already holds the write lock), so concurrent requests cannot fork it. A rollback drops the
queue with everything else.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.orm import Session

from ..audit_chain import GENESIS, row_hash
from ..models import AuditEvent, Patient, User, utcnow

#: Key of the PostgreSQL advisory lock that serialises appends to the chain.
CHAIN_LOCK = 0x0A0D17
_QUEUE = "audit_queue"


@dataclass(frozen=True)
class Actor:
    """Whoever causes a change: a signed-in user, or the system (a CLI command, the seeder)."""

    user: User | None
    ip_address: str | None = None
    request_id: str | None = None

    @property
    def role(self) -> str:
        return self.user.role if self.user is not None else "system"


SYSTEM = Actor(user=None, request_id="cli")


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    clinic_id: int | None = None,
    patient: Patient | None = None,
    object_type: str | None = None,
    object_id: int | str | None = None,
    object_version: int | None = None,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Queue one audit event, written when the session commits (with the change it
    describes). Returns the queued values."""
    if clinic_id is None:
        clinic_id = patient.clinic_id if patient is not None else (
            actor.user.clinic_id if actor.user is not None else None)
    values = {
        "occurred_at": utcnow(),
        "actor_id": actor.user.id if actor.user is not None else None,
        "actor_role": actor.role,
        "clinic_id": clinic_id,
        "patient_id": patient.id if patient is not None else None,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id) if object_id is not None else None,
        "object_version": object_version,
        "old_values": old,
        "new_values": new,
        "reason": reason,
        "ip_address": actor.ip_address,
        "request_id": actor.request_id,
        "details": details or {},
    }
    session.info.setdefault(_QUEUE, []).append(values)
    return values


@event.listens_for(Session, "before_commit")
def _write_queued_events(session: Session) -> None:
    queued = session.info.pop(_QUEUE, None)
    if not queued:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    last = session.execute(select(AuditEvent.id, AuditEvent.row_hash)
                           .order_by(AuditEvent.id.desc()).limit(1)).first()
    next_id, previous = (last.id + 1, last.row_hash) if last else (1, GENESIS)
    rows = []
    for values in queued:
        row = {**values, "id": next_id, "prev_hash": previous}
        row["row_hash"] = previous = row_hash(row)
        rows.append(row)
        next_id += 1
    session.execute(insert(AuditEvent), rows)


@event.listens_for(Session, "after_rollback")
def _drop_queued_events(session: Session) -> None:
    session.info.pop(_QUEUE, None)


@dataclass(frozen=True)
class ChainBreak:
    row_id: int
    problem: str


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, ChainBreak | None]:
    """Walk the whole trail in id order; the number of rows checked and the first row that
    does not fit (its content was changed, or a row before it was removed or inserted)."""
    checked = 0
    previous = GENESIS
    expected_id: int | None = None
    for row in _rows_in_order(session, batch):
        if row["prev_hash"] != previous:
            return checked, ChainBreak(row["id"], "it does not follow the row before it "
                                                   "(a row was removed, inserted or changed)")
        if row_hash(row) != row["row_hash"]:
            return checked, ChainBreak(row["id"], "its content does not match its hash "
                                                   "(the row was edited)")
        if expected_id is not None and row["id"] != expected_id:
            return checked, ChainBreak(row["id"], f"row {expected_id} is missing before it")
        previous, expected_id = row["row_hash"], row["id"] + 1
        checked += 1
    return checked, None


def _rows_in_order(session: Session, batch: int) -> Iterator[dict[str, Any]]:
    after = 0
    columns = AuditEvent.__table__.columns
    while True:
        rows = session.execute(select(columns).where(AuditEvent.id > after)
                               .order_by(AuditEvent.id).limit(batch)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        after = rows[-1]["id"]
