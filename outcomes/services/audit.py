"""The audit trail: who did what to which record, when and from where.

``record`` queues an event on the session; when the session commits, the queued events are
written in the same transaction, each chained to the one before by a hash keyed with the
newest audit key (``audit_chain``). The chain is extended under a lock (a PostgreSQL
advisory lock; on SQLite every transaction already holds the write lock), so concurrent
requests cannot fork it. A rollback drops the queue with everything else.

``verify_chain`` walks the chain and compares its head with the signed checkpoints that
``write_checkpoint`` appends to a file outside the database (docs/audit.md).
"""
from __future__ import annotations

import fcntl
import hmac
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from flask import current_app, has_app_context
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.orm import Session, SessionTransaction

from ..audit_chain import (GENESIS, MAIN_CHAIN, UNKEYED, AuditKeys, Checkpoint,
                           CheckpointError, checkpoint_line, keyed_row_hash,
                           keys_from_settings, read_checkpoint_line, row_hash, sign_checkpoint)
from ..models import AuditEvent, Patient, User, utcnow

#: Key of the PostgreSQL advisory lock that serialises appends to the chain.
CHAIN_LOCK = 0x0A0D17
_QUEUE = "audit_queue"
_SAVEPOINT_MARKS = "audit_queue_savepoint_marks"
_KEYS = "audit_keys"


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


def audit_keys() -> AuditKeys:
    """The audit keys of the running app's settings."""
    if not has_app_context():
        raise RuntimeError("audit rows are signed with the app's AUDIT_KEYS: commit audited "
                           "changes inside an app context, or set the session's own keys "
                           "(sign_with)")
    return keys_from_settings(current_app.config)


def sign_with(session: Session, keys: AuditKeys) -> None:
    """Have ``session`` sign the audit rows it commits with ``keys``, whether or not an app
    context is active (the tests' own sessions do)."""
    session.info[_KEYS] = keys


@event.listens_for(Session, "before_commit")
def _write_queued_events(session: Session) -> None:
    # A savepoint's release fires this too: only the outer commit writes, so a savepoint
    # rolled back later can never take rows queued before it with it.
    if session.in_nested_transaction():
        return
    session.info.pop(_SAVEPOINT_MARKS, None)
    queued = session.info.pop(_QUEUE, None)
    if not queued:
        return
    keys = session.info.get(_KEYS) or audit_keys()
    key_id = keys.signing_id
    secret = keys.secret(key_id)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    last = session.execute(select(AuditEvent.id, AuditEvent.row_hash)
                           .order_by(AuditEvent.id.desc()).limit(1)).first()
    next_id, previous = (last.id + 1, last.row_hash) if last else (1, GENESIS)
    rows = []
    for values in queued:
        row = {**values, "id": next_id, "prev_hash": previous, "key_id": key_id}
        row["row_hash"] = previous = keyed_row_hash(row, secret)
        rows.append(row)
        next_id += 1
    session.execute(insert(AuditEvent), rows)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # Where the queue stood when a savepoint began: rolling it back drops only what was
    # queued inside it, with the changes it described.
    if transaction.nested:
        session.info.setdefault(_SAVEPOINT_MARKS, {})[id(transaction)] = len(
            session.info.get(_QUEUE, ()))


@event.listens_for(Session, "after_rollback")
def _drop_queued_events(session: Session) -> None:
    # Fired for a savepoint too, while it is still the session's innermost transaction.
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        session.info.pop(_QUEUE, None)
        session.info.pop(_SAVEPOINT_MARKS, None)
    else:
        mark = session.info.get(_SAVEPOINT_MARKS, {}).pop(id(savepoint), 0)
        del session.info.get(_QUEUE, [])[mark:]


@event.listens_for(Session, "after_transaction_end")
def _forget_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.get(_SAVEPOINT_MARKS, {}).pop(id(transaction), None)


@dataclass(frozen=True)
class Finding:
    """One break in the trail: the first row it concerns (None for a checkpoint line that
    cannot be trusted) and what is wrong."""

    row_id: int | None
    problem: str

    def describe(self) -> str:
        where = "its checkpoints" if self.row_id is None else f"row {self.row_id}"
        return f"Audit trail BROKEN at {where}: {self.problem}."


@dataclass(frozen=True)
class Verification:
    """What a walk of the chain found: the rows that fit, in order from the first (their
    number, the last one's id and hash, the last unkeyed row's id), the newest checkpoint
    they matched, and every break."""

    rows: int
    last_id: int
    head: str
    legacy_until: int
    checkpoint: Checkpoint | None
    findings: tuple[Finding, ...]


def verify_chain(session: Session, keys: AuditKeys, checkpoints: Iterable[Checkpoint] = (),
                 since: Checkpoint | None = None, batch: int = 5000) -> Verification:
    """Walk the chain in id order, from the first row or from the row after ``since`` (a
    checkpoint already trusted), and compare it with ``checkpoints``.

    Names the first row that does not fit (edited, forged without the key, or missing in
    the middle), the first row of a stretch that no longer matches a checkpoint (rewritten),
    and the first of the rows a checkpoint recorded that are gone from the end (deleted or
    truncated)."""
    checkpoints = [*checkpoints, *([since] if since else [])]
    at_row: dict[int, list[Checkpoint]] = defaultdict(list)
    for checkpoint in checkpoints:
        at_row[checkpoint.last_id].append(checkpoint)
    # Once a checkpoint has seen keyed rows, no row after its last unkeyed one may be unkeyed.
    unkeyed_limit = min((c.legacy_until for c in checkpoints if c.last_id > c.legacy_until),
                        default=None)
    walk = _Walk(keys, unkeyed_limit, since)
    findings: list[Finding] = []
    anchor = _anchor_problem(session, since)
    if anchor is not None:
        findings.append(anchor)
    else:
        for row in _rows_in_order(session, batch, after=walk.last_id):
            problem = walk.step(row) or _checkpoint_problem(walk, at_row.get(row["id"], ()))
            if problem is not None:
                findings.append(problem)
                break
    newest = max(checkpoints, key=lambda c: c.last_id, default=None)
    trail_end = session.scalar(select(func.max(AuditEvent.id))) or 0
    if newest is not None and newest.last_id > trail_end:
        findings.append(_missing_tail(newest, trail_end))
    return Verification(walk.rows, walk.last_id, walk.previous, walk.legacy_until,
                        walk.matched, tuple(findings))


class _Walk:
    """The state of a walk along the chain, one row at a time."""

    def __init__(self, keys: AuditKeys, unkeyed_limit: int | None,
                 since: Checkpoint | None) -> None:
        self.keys = keys
        self.unkeyed_limit = unkeyed_limit
        self.matched = since
        self.rows = since.count if since else 0
        self.last_id = since.last_id if since else 0
        self.previous = since.head if since else GENESIS
        self.legacy_until = since.legacy_until if since else 0

    @property
    def keyed(self) -> bool:
        return self.last_id > self.legacy_until

    def step(self, row: dict[str, Any]) -> Finding | None:
        """Check one row against the one before it; None when it fits."""
        problem = self._problem(row)
        if problem is not None:
            return problem
        if row["key_id"] == UNKEYED:
            self.legacy_until = row["id"]
        self.rows, self.last_id, self.previous = self.rows + 1, row["id"], row["row_hash"]
        return None

    def _problem(self, row: dict[str, Any]) -> Finding | None:
        expected = self.last_id + 1
        if row["id"] != expected:
            missing = (f"row {expected} is" if row["id"] == expected + 1
                       else f"rows {expected}-{row['id'] - 1} are")
            after = f"follows row {self.last_id}" if self.last_id else "is the first"
            return Finding(expected, f"{missing} missing (row {row['id']} {after})")
        if row["key_id"] == UNKEYED:
            if self.keyed:
                return Finding(row["id"], "it claims the public, unkeyed hash of the rows "
                                          "written before keys, after keyed rows (a row "
                                          "forged without the key)")
            if self.unkeyed_limit is not None and row["id"] > self.unkeyed_limit:
                recorded = (f"unkeyed rows only up to row {self.unkeyed_limit}"
                            if self.unkeyed_limit else "no unkeyed rows")
                return Finding(row["id"], "it claims the public, unkeyed hash, but a "
                                          f"checkpoint recorded {recorded} (rewritten "
                                          "without the key)")
            expected_hash = row_hash(row)
        else:
            secret = self.keys.secret(row["key_id"])
            if secret is None:
                return Finding(row["id"], f"it is signed with key id {row['key_id']!r}, which "
                                          "AUDIT_KEYS does not hold (a forged row, or a key "
                                          "missing from the settings)")
            expected_hash = keyed_row_hash(row, secret)
        if row["prev_hash"] != self.previous:
            return Finding(row["id"], "it does not follow the row before it (its link was "
                                      "changed, or the row before it was replaced)")
        if not hmac.compare_digest(expected_hash, row["row_hash"]):
            return Finding(row["id"], "its content does not match its hash (the row was "
                                      "edited, or written without the key)")
        return None


def _checkpoint_problem(walk: _Walk, checkpoints: Iterable[Checkpoint]) -> Finding | None:
    for checkpoint in checkpoints:
        if checkpoint.head != walk.previous or checkpoint.count != walk.rows:
            first = walk.matched.last_id + 1 if walk.matched else 1
            return Finding(first, f"rows {first}-{checkpoint.last_id} do not match the "
                                  f"checkpoint of {checkpoint.written_at} (a row among them "
                                  "was rewritten and the rows after it re-hashed)")
        walk.matched = checkpoint
    return None


def _anchor_problem(session: Session, since: Checkpoint | None) -> Finding | None:
    """The row a trusted checkpoint ends at must still be there, unchanged (a walk that
    starts after it would not notice)."""
    if since is None or since.last_id == 0:
        return None
    head = session.scalar(select(AuditEvent.row_hash).where(AuditEvent.id == since.last_id))
    if head is None and session.scalar(select(func.max(AuditEvent.id))
                                       .where(AuditEvent.id > since.last_id)) is None:
        return None  # gone from the end: the missing tail says so
    if head == since.head:
        return None
    return Finding(since.last_id, "it is missing" if head is None else
                   f"it does not match the checkpoint of {since.written_at} (rewritten)")


def _missing_tail(checkpoint: Checkpoint, trail_end: int) -> Finding:
    first = trail_end + 1
    rows = f"row {first} is" if first == checkpoint.last_id else \
        f"rows {first}-{checkpoint.last_id} are"
    now = f"ends at row {trail_end}" if trail_end else "is empty"
    return Finding(first, f"{rows} missing from the end: the checkpoint of "
                          f"{checkpoint.written_at} recorded {checkpoint.count} rows ending at "
                          f"row {checkpoint.last_id}, and the trail now {now}")


def _rows_in_order(session: Session, batch: int, after: int = 0) -> Iterator[dict[str, Any]]:
    columns = AuditEvent.__table__.columns
    while True:
        # Core rows (session.connection()), not ORM results: a third quicker to fetch.
        rows = session.connection().execute(
            select(columns).where(AuditEvent.id > after).order_by(AuditEvent.id)
            .limit(batch)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        after = rows[-1]["id"]


def read_checkpoints(lines: Iterable[str], keys: AuditKeys,
                     chain: str = MAIN_CHAIN) -> tuple[list[Checkpoint], list[Finding]]:
    """The checkpoints of ``chain`` in a checkpoint file's lines whose signature holds, and
    a finding for each line that cannot be trusted."""
    checkpoints, findings = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            checkpoint = read_checkpoint_line(line, keys)
        except CheckpointError as error:
            findings.append(Finding(None, f"line {number} of the checkpoint file: {error}"))
            continue
        if checkpoint.chain == chain:
            checkpoints.append(checkpoint)
    return checkpoints, findings


def read_checkpoint_file(path: str, keys: AuditKeys) -> tuple[list[Checkpoint], list[Finding]]:
    """``read_checkpoints`` of the file at ``path``; none when it does not exist yet."""
    try:
        with open(path, encoding="utf-8") as file:
            return read_checkpoints(file, keys)
    except FileNotFoundError:
        return [], []


class ChainBroken(Exception):
    """The chain, or the checkpoint file, does not verify: no checkpoint was written."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__("; ".join(finding.describe() for finding in self.findings))


def write_checkpoint(session: Session, keys: AuditKeys, path: str) -> tuple[Checkpoint, bool]:
    """Check the rows written since the newest checkpoint in the file at ``path``, then
    append a checkpoint of the chain's head, signed with the newest key.

    The file is locked while it is read and appended to, so runs that overlap cannot
    interleave lines. Returns the newest checkpoint and whether it was written now (not when
    no row was added since the last one). Raises ``ChainBroken`` (writing nothing) when the
    file or the new rows do not verify, and ``OSError`` when the file cannot be written."""
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "r+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # released when the file is closed
        checkpoints, bad_lines = read_checkpoints(file.read().splitlines(), keys)
        if bad_lines:
            raise ChainBroken(bad_lines)
        newest = max(checkpoints, key=lambda c: c.last_id, default=None)
        walked = verify_chain(session, keys, since=newest)
        if walked.findings:
            raise ChainBroken(walked.findings)
        if newest is not None and newest.last_id == walked.last_id:
            return newest, False
        checkpoint = sign_checkpoint(Checkpoint(
            chain=MAIN_CHAIN, last_id=walked.last_id, count=walked.rows, head=walked.head,
            legacy_until=walked.legacy_until, key_id=keys.signing_id,
            written_at=utcnow().isoformat(timespec="seconds")),
            keys)
        _append_line(file, checkpoint_line(checkpoint))
    return checkpoint, True


def _append_line(file: IO[str], line: str) -> None:
    file.write(line + "\n")
    file.flush()
    os.fsync(file.fileno())
