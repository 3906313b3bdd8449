"""The audit trail is complete and tamper-evident: chained by keyed hashes, checkpointed
outside the database, verified, append-only (docs/audit.md).

The tampering tests do what someone with superuser access to the database would do: step
round the append-only triggers and edit, delete, insert or re-hash rows. ``audit verify``
must name the first row of each break, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, insert, select, text, update

from outcomes import audit_chain, create_app, migrate
from outcomes.audit_chain import (GENESIS, KEYED_COLUMNS, UNKEYED, canonical_content,
                                  development_keys, keyed_row_hash, row_hash)
from outcomes.config import ConfigurationError
from outcomes.extensions import db
from outcomes.models import AuditEvent
from outcomes.services import audit
from outcomes.services.audit import SYSTEM

from .conftest import base_config, sign_in
from .helpers import write_audit_rows_from_before_the_chain

ROTATED_KEY = "2027-01:" + "n" * 40


def chain(session):
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()


def rows_as_dicts(session) -> list[dict]:
    return [dict(row) for row in session.execute(
        select(AuditEvent.__table__.columns).order_by(AuditEvent.id)).mappings()]


@pytest.fixture
def checkpoints(app, tmp_path):
    """The checkpoint file, outside the database."""
    path = tmp_path / "audit-checkpoints.jsonl"
    app.config["AUDIT_CHECKPOINT_PATH"] = str(path)
    return path


@pytest.fixture
def trail(client, world, session) -> int:
    """A trail of some rows (sign-in, records read); returns the number of rows."""
    sign_in(client, world.clinician)
    for _ in range(3):
        client.get(f"/clinic/patients/{world.patient.id}")
    rows = len(chain(session))
    assert rows >= 10
    return rows


def run(runner, *args):
    return runner.invoke(args=["audit", *args])


def broken_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if "BROKEN" in line]


def bypass_triggers(session) -> None:
    """What someone with superuser access would do first: step round the append-only
    triggers (replica mode for this transaction on PostgreSQL; drop them on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update"))
        session.execute(text("DROP TRIGGER IF EXISTS audit_event_no_delete"))


def by_hand(session, *statements: str) -> None:
    bypass_triggers(session)
    for statement in statements:
        session.execute(text(statement))
    session.commit()


def public_sha256(row: dict) -> str:
    """A keyed row's content hashed with the public function, as a forger without the key
    would hash it."""
    return hashlib.sha256(canonical_content(row, KEYED_COLUMNS)).hexdigest()


def rehash_from(session, first_id: int, sign: Callable[[dict], tuple[str, str]]) -> None:
    """Re-chain every row from ``first_id`` on, each signed by ``sign`` (key id, hash)."""
    rows = rows_as_dicts(session)
    previous = GENESIS if first_id == 1 else rows[first_id - 2]["row_hash"]
    bypass_triggers(session)
    for row in rows[first_id - 1:]:
        row["prev_hash"] = previous
        row["key_id"], row["row_hash"] = sign(row)
        previous = row["row_hash"]
        session.execute(update(AuditEvent).where(AuditEvent.id == row["id"]).values(
            prev_hash=row["prev_hash"], key_id=row["key_id"], row_hash=row["row_hash"]))
    session.commit()


def forge_append(session, key_id: str, sign: Callable[[dict], str]) -> int:
    """Append a row after the last one, claiming ``key_id``, hashed by ``sign``."""
    last = rows_as_dicts(session)[-1]
    row = {**last, "id": last["id"] + 1, "prev_hash": last["row_hash"], "key_id": key_id,
           "action": "patient.view", "occurred_at": dt.datetime.now(dt.timezone.utc)}
    row["row_hash"] = sign(row)
    session.execute(insert(AuditEvent).values(**row))
    session.commit()
    return row["id"]


# Each tampering: what it does (given the trail's length), and the row and words verify
# must name.
def edited(session, n):
    by_hand(session, "UPDATE audit_event SET action = 'patient.list' WHERE id = 5")
    return 5, "its content does not match its hash"


def ip_address_edited(session, n):
    by_hand(session, "UPDATE audit_event SET ip_address = '10.9.9.9' WHERE id = 5")
    return 5, "its content does not match its hash"


def deleted_in_the_middle(session, n):
    by_hand(session, "DELETE FROM audit_event WHERE id = 5")
    return 5, "row 5 is missing (row 6 follows row 4)"


def two_deleted_in_the_middle(session, n):
    by_hand(session, "DELETE FROM audit_event WHERE id IN (5, 6)")
    return 5, "rows 5-6 are missing (row 7 follows row 4)"


def last_deleted(session, n):
    by_hand(session, f"DELETE FROM audit_event WHERE id = {n}")
    return n, f"row {n} is missing from the end"


def last_five_deleted(session, n):
    by_hand(session, f"DELETE FROM audit_event WHERE id > {n - 5}")
    return n - 4, f"rows {n - 4}-{n} are missing from the end"


def truncated(session, n):
    by_hand(session, "DELETE FROM audit_event")
    return 1, f"rows 1-{n} are missing from the end"


def forged_append_with_public_sha256(session, n):
    forge_append(session, "test", public_sha256)
    return n + 1, "its content does not match its hash"


def forged_append_in_the_unkeyed_format(session, n):
    forge_append(session, UNKEYED, row_hash)
    return n + 1, "claims the public, unkeyed hash"


def forged_append_under_an_unknown_key(session, n):
    forge_append(session, "attacker", lambda row: keyed_row_hash(row, b"a" * 40))
    return n + 1, "signed with key id 'attacker', which AUDIT_KEYS does not hold"


def edited_and_rest_rehashed(session, n):
    by_hand(session, "UPDATE audit_event SET action = 'patient.list' WHERE id = 5")
    rehash_from(session, 5, lambda row: (row["key_id"], public_sha256(row)))
    return 5, "its content does not match its hash"


def edited_and_rest_rehashed_unkeyed(session, n):
    by_hand(session, "UPDATE audit_event SET action = 'patient.list' WHERE id = 5")
    rehash_from(session, 5, lambda row: (UNKEYED, row_hash(row)))
    return 5, "claims the public, unkeyed hash of the rows written before keys"


def whole_trail_rehashed_unkeyed(session, n):
    by_hand(session, "UPDATE audit_event SET action = 'patient.list' WHERE id = 5")
    rehash_from(session, 1, lambda row: (UNKEYED, row_hash(row)))
    return 1, "a checkpoint recorded no unkeyed rows"


def rehashed_with_a_guessed_key(session, n):
    by_hand(session, "UPDATE audit_event SET action = 'patient.list' WHERE id = 5")
    guessed = development_keys("test-secret-key-" + "x" * 32).secret("development")
    rehash_from(session, 5, lambda row: ("test", keyed_row_hash(row, guessed)))
    return 5, "its content does not match its hash"


TAMPERINGS = [edited, ip_address_edited, deleted_in_the_middle, two_deleted_in_the_middle,
              last_deleted, last_five_deleted, truncated, forged_append_with_public_sha256,
              forged_append_in_the_unkeyed_format, forged_append_under_an_unknown_key,
              edited_and_rest_rehashed, edited_and_rest_rehashed_unkeyed,
              whole_trail_rehashed_unkeyed, rehashed_with_a_guessed_key]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__ for t in TAMPERINGS])
def test_verify_names_the_first_row_of_each_tampering(runner, trail, checkpoints, session,
                                                       tamper):
    assert run(runner, "checkpoint").exit_code == 0
    named, words = tamper(session, trail)
    result = run(runner, "verify")
    assert result.exit_code == 1, result.output
    line, = broken_lines(result)
    assert line.startswith(f"Audit trail BROKEN at row {named}: "), line
    assert words in line, line
    assert "intact" not in result.output


def test_every_row_is_chained_to_the_one_before(client, world, session):
    sign_in(client, world.clinician)
    client.get(f"/clinic/patients/{world.patient.id}")
    rows = chain(session)
    assert len(rows) > 5
    assert rows[0].prev_hash == GENESIS
    for before, after in zip(rows, rows[1:]):
        assert after.prev_hash == before.row_hash and after.id == before.id + 1
    assert {row.key_id for row in rows} == {"test"}


def test_an_untouched_trail_verifies_with_its_checkpoints(runner, trail, checkpoints, client,
                                                          world):
    written = run(runner, "checkpoint")
    assert written.exit_code == 0, written.output
    client.get(f"/clinic/patients/{world.patient.id}")
    assert run(runner, "checkpoint").exit_code == 0
    result = run(runner, "verify")
    assert result.exit_code == 0, result.output
    assert broken_lines(result) == []
    assert f"Audit trail intact: {trail + 1} rows" in result.output
    assert f"covers rows 1-{trail + 1}: every row" in result.output
    assert len(checkpoints.read_text().splitlines()) == 2


def test_verify_says_which_rows_no_checkpoint_covers_yet(runner, trail, checkpoints, client,
                                                         world, app):
    result = run(runner, "verify")
    assert result.exit_code == 0 and "No checkpoint written yet" in result.output
    run(runner, "checkpoint")
    client.get(f"/clinic/patients/{world.patient.id}")
    result = run(runner, "verify")
    assert result.exit_code == 0
    assert f"rows {trail + 1}-{trail + 1} are newer" in result.output
    app.config["AUDIT_CHECKPOINT_PATH"] = ""
    assert "AUDIT_CHECKPOINT_PATH is not set" in run(runner, "verify").output


def test_checkpoint_prints_the_signed_line_and_skips_when_nothing_changed(runner, trail,
                                                                          checkpoints):
    first = run(runner, "checkpoint")
    line = json.loads(checkpoints.read_text())
    assert line == json.loads(first.stdout)
    assert (line["chain"], line["last_id"], line["count"], line["key_id"],
            line["legacy_until"]) == ("audit_event", trail, trail, "test", 0)
    again = run(runner, "checkpoint")
    assert again.exit_code == 0 and "nothing written" in again.output
    assert len(checkpoints.read_text().splitlines()) == 1


def test_a_key_holder_rewriting_rows_a_checkpoint_covers_is_caught_between_checkpoints(
        runner, trail, checkpoints, client, world, session, app):
    """With the key, rows can be re-signed; the checkpoints still pin the head, and verify
    names the stretch between the last checkpoint that matches and the first that does not."""
    run(runner, "checkpoint")
    for _ in range(3):
        client.get(f"/clinic/patients/{world.patient.id}")
    run(runner, "checkpoint")
    by_hand(session, f"UPDATE audit_event SET action = 'patient.list' WHERE id = {trail + 2}")
    secret = audit_chain.keys_from_settings(app.config).secret("test")
    rehash_from(session, trail + 2, lambda row: ("test", keyed_row_hash(row, secret)))
    result = run(runner, "verify")
    assert result.exit_code == 1
    line, = broken_lines(result)
    assert line.startswith(f"Audit trail BROKEN at row {trail + 1}: rows {trail + 1}-"
                           f"{trail + 3} do not match the checkpoint of "), line


def test_checkpoint_refuses_to_sign_a_tampered_chain(runner, trail, checkpoints, session):
    run(runner, "checkpoint")
    forge_append(session, "test", public_sha256)
    result = run(runner, "checkpoint")
    assert result.exit_code == 1
    assert f"BROKEN at row {trail + 1}" in result.output and "No checkpoint written" in \
        result.output
    assert len(checkpoints.read_text().splitlines()) == 1


def test_checkpoint_refuses_when_the_row_it_starts_from_was_rewritten(runner, trail,
                                                                      checkpoints, session):
    run(runner, "checkpoint")
    rehash_from(session, trail, lambda row: (UNKEYED, "f" * 64))
    result = run(runner, "checkpoint")
    assert result.exit_code == 1 and f"BROKEN at row {trail}" in result.output


@pytest.mark.parametrize("field, value", [("count", 1), ("head", "0" * 64),
                                          ("last_id", 1)])
def test_an_edited_checkpoint_line_is_named(runner, trail, checkpoints, field, value):
    run(runner, "checkpoint")
    line = json.loads(checkpoints.read_text())
    checkpoints.write_text(json.dumps({**line, field: value}) + "\n")
    result = run(runner, "verify")
    assert result.exit_code == 1
    assert broken_lines(result) == [
        "Audit trail BROKEN at its checkpoints: line 1 of the checkpoint file: its signature "
        "does not match (the line was edited or forged)."]
    assert run(runner, "checkpoint").exit_code == 1


def test_a_checkpoint_without_the_key_is_refused(runner, trail, checkpoints):
    checkpoints.write_text("not json\n" + json.dumps({
        "chain": "audit_event", "last_id": 1, "count": 1, "head": "0" * 64,
        "legacy_until": 0, "written_at": "2026-11-30T00:00:00+00:00", "key_id": "other",
        "mac": "0" * 64}) + "\n")
    lines = broken_lines(run(runner, "verify"))
    assert lines == [
        "Audit trail BROKEN at its checkpoints: line 1 of the checkpoint file: it is not a "
        "checkpoint (malformed).",
        "Audit trail BROKEN at its checkpoints: line 2 of the checkpoint file: it is signed "
        "with key id 'other', which AUDIT_KEYS does not hold."]


def test_deleting_in_the_middle_and_at_the_end_names_both(runner, trail, checkpoints,
                                                          session):
    run(runner, "checkpoint")
    by_hand(session, "DELETE FROM audit_event WHERE id = 3",
            f"DELETE FROM audit_event WHERE id = {trail}")
    result = run(runner, "verify")
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in broken_lines(result)] == [
        "Audit trail BROKEN at row 3", f"Audit trail BROKEN at row {trail}"]


def test_key_rotation_keeps_old_rows_verifiable_and_signs_new_rows_with_the_new_key(
        app, runner, trail, checkpoints, client, world, session):
    run(runner, "checkpoint")
    app.config["AUDIT_KEYS"] = f"{app.config['AUDIT_KEYS']},{ROTATED_KEY}"
    client.get(f"/clinic/patients/{world.patient.id}")
    assert [row.key_id for row in chain(session)] == ["test"] * trail + ["2027-01"]
    written = run(runner, "checkpoint")
    assert json.loads(written.stdout)["key_id"] == "2027-01"
    result = run(runner, "verify")
    assert result.exit_code == 0, result.output
    assert f"intact: {trail + 1} rows" in result.output

    # Dropping the old key too early leaves its rows and checkpoint unverifiable, and says so.
    app.config["AUDIT_KEYS"] = ROTATED_KEY
    lines = broken_lines(run(runner, "verify"))
    assert "line 1 of the checkpoint file: it is signed with key id 'test'" in lines[0]
    assert lines[1].startswith("Audit trail BROKEN at row 1: it is signed with key id 'test'")


@pytest.fixture
def development_settings(app):
    app.config["AUDIT_KEYS"] = ""


def test_development_signs_with_a_key_derived_from_the_secret_and_says_so(
        development_settings, runner, client, world, session):
    sign_in(client, world.clinician)
    assert {row.key_id for row in chain(session)} == {"development"}
    result = run(runner, "verify")
    assert result.exit_code == 0
    assert "development audit key derived from SECRET_KEY: not for real records" in \
        result.output


def test_verify_reads_a_copy_of_the_checkpoints_kept_elsewhere(runner, trail, checkpoints,
                                                               session, tmp_path):
    """The lines the command prints (the scheduler's log) serve as well as the file."""
    copy = tmp_path / "scheduler.log"
    copy.write_text(run(runner, "checkpoint").stdout)
    checkpoints.unlink()
    by_hand(session, f"DELETE FROM audit_event WHERE id = {trail}")
    assert "No checkpoint written yet" in run(runner, "verify").output
    result = run(runner, "verify", "--checkpoints", str(copy))
    assert result.exit_code == 1
    assert broken_lines(result)[0].startswith(f"Audit trail BROKEN at row {trail}: row {trail} "
                                              "is missing from the end")
    missing = run(runner, "verify", "--checkpoints", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "No checkpoint file" in missing.output


def test_checkpoint_needs_a_path(runner, app, trail):
    app.config["AUDIT_CHECKPOINT_PATH"] = ""
    result = run(runner, "checkpoint")
    assert result.exit_code == 2 and "AUDIT_CHECKPOINT_PATH is not set" in result.output


def test_checkpoint_says_when_its_file_cannot_be_written(runner, app, trail, tmp_path):
    app.config["AUDIT_CHECKPOINT_PATH"] = str(tmp_path / "no-such-folder" / "checkpoints")
    result = run(runner, "checkpoint")
    assert result.exit_code == 2 and "Cannot write the checkpoint file" in result.output


def test_concurrent_commits_extend_one_unbroken_chain(app, runner, world, session):
    errors = []

    def commit_events(worker: int) -> None:
        try:
            with app.app_context():
                for n in range(5):
                    audit.record(db.session, SYSTEM, "test.concurrent",
                                 details={"worker": worker, "n": n})
                    db.session.commit()
        except Exception as error:  # reported below, with the thread's error
            errors.append(error)

    before = len(chain(session))
    threads = [threading.Thread(target=commit_events, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(chain(session)) == before + 30
    result = run(runner, "verify")
    assert result.exit_code == 0, result.output


def test_checkpoints_written_while_rows_are_added_all_hold(app, runner, trail, checkpoints):
    """Overlapping checkpoint runs (a scheduler that starts one before the last ended) and
    requests adding rows at the same time: every line is whole, signed and true."""
    errors = []

    def work(kind: str) -> None:
        try:
            with app.app_context():
                for n in range(8):
                    if kind == "rows":
                        audit.record(db.session, SYSTEM, "test.concurrent", details={"n": n})
                        db.session.commit()
                    else:
                        audit.write_checkpoint(db.session, audit.audit_keys(), str(checkpoints))
                        db.session.rollback()
        except Exception as error:  # reported below, with the thread's error
            errors.append(error)

    # One checkpoint before the race, so the file holds two heads however the threads are
    # scheduled (a checkpoint of an unchanged head is skipped).
    assert run(runner, "checkpoint").exit_code == 0
    threads = [threading.Thread(target=work, args=(kind,))
               for kind in ("rows", "rows", "checkpoint", "checkpoint", "checkpoint")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert run(runner, "checkpoint").exit_code == 0
    lines = checkpoints.read_text().splitlines()
    assert len(lines) >= 2
    assert [json.loads(line)["last_id"] for line in lines] == \
        sorted({json.loads(line)["last_id"] for line in lines})
    result = run(runner, "verify")
    assert result.exit_code == 0, result.output
    assert f"covers rows 1-{trail + 16}: every row" in result.output


def test_rows_from_before_keys_stay_verifiable_and_no_row_may_claim_that_format_after(
        database_url, app, runner, checkpoints, session):
    """Rows chained by migration 0003 keep their plain SHA-256 hashes, marked as unkeyed by
    migration 0004; the keyed rows continue the same chain."""
    engine = create_engine(database_url)
    write_audit_rows_from_before_the_chain(engine)
    migrate.upgrade(engine, "0003")
    with engine.connect() as connection:
        hashes_before = connection.scalars(
            text("SELECT row_hash FROM audit_event ORDER BY id")).all()
    migrate.upgrade(engine)
    engine.dispose()
    with app.app_context():
        audit.record(db.session, SYSTEM, "test.after-upgrade")
        db.session.commit()
    rows = rows_as_dicts(session)
    assert [row["key_id"] for row in rows] == [UNKEYED] * 3 + ["test"]
    assert [row["row_hash"] for row in rows[:3]] == hashes_before
    assert rows[3]["prev_hash"] == hashes_before[-1]
    checkpointed = run(runner, "checkpoint")
    assert json.loads(checkpointed.stdout)["legacy_until"] == 3
    result = run(runner, "verify")
    assert result.exit_code == 0 and "intact: 4 rows" in result.output, result.output

    forge_append(session, UNKEYED, row_hash)
    line, = broken_lines(run(runner, "verify"))
    assert line.startswith("Audit trail BROKEN at row 5: it claims the public, unkeyed hash")


def test_production_refuses_to_start_without_a_proper_audit_key(monkeypatch, tmp_path):
    monkeypatch.delenv("AUDIT_KEYS", raising=False)
    production = {"SECRET_KEY": "s" * 40, "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite3",
                  "PUBLIC_BASE_URL": "https://outcomes.example.org"}
    with pytest.raises(ConfigurationError, match="AUDIT_KEYS must be set in production"):
        create_app(production)
    with pytest.raises(ConfigurationError, match="reserved"):
        create_app({**production, "AUDIT_KEYS": "development:" + "d" * 40})
    create_app({**production, "AUDIT_KEYS": "2026-11:" + "k" * 40})


@pytest.mark.parametrize("setting, message", [
    ("2026-11", "entry 1 must be keyid:secret"),
    ("2026-11:" + "k" * 40 + ",bad id:" + "k" * 40, "entry 2 must be keyid:secret"),
    ("2026-11:short-secret", "shorter than 32 characters"),
    ("a:" + "k" * 40 + ",a:" + "j" * 40, "names the key id 'a' twice"),
    ("sha256:" + "k" * 40, "the key id 'sha256' is reserved"),
])
def test_a_malformed_audit_key_setting_is_refused_without_showing_the_secret(
        database_url, setting, message):
    with pytest.raises(ConfigurationError, match=message) as refused:
        create_app({**base_config(database_url), "AUDIT_KEYS": setting})
    assert "short-secret" not in str(refused.value) and "k" * 32 not in str(refused.value)


def test_audit_keys_never_show_their_secrets():
    keys = audit_chain.parse_audit_keys("2026-11:" + "k" * 40 + "," + ROTATED_KEY)
    assert repr(keys) == "AuditKeys(2026-11, 2027-01)" and str(keys) == repr(keys)


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
    # The scored items (GAD-7 also has an optional, unscored item 8, not answered here).
    assert event.old_values["answers"][:7] == [1] * 7 and event.reason == "Misread"
    assert (event.actor_id, event.actor_role, event.clinic_id, event.patient_id) == \
        (world.clinician.id, "clinician", world.clinic.id, world.patient.id)
    assert event.ip_address == "127.0.0.1" and len(event.request_id) == 32


def test_a_savepoint_rolled_back_drops_only_what_was_queued_inside_it(app, world, session):
    """Services take savepoints (a submission key claimed, a record raced): one rolled back
    must not take the transaction's earlier audit rows with it, and a savepoint released
    writes nothing until the outer commit."""
    before = len(chain(session))
    with app.app_context():
        audit.record(db.session, SYSTEM, "test.before_savepoint")
        try:
            with db.session.begin_nested():
                audit.record(db.session, SYSTEM, "test.inside_rolled_back_savepoint")
                raise RuntimeError("the savepoint's change is refused")
        except RuntimeError:
            pass
        with db.session.begin_nested():
            audit.record(db.session, SYSTEM, "test.inside_released_savepoint")
        assert db.session.scalar(select(AuditEvent.id).where(
            AuditEvent.action.like("test.%"))) is None  # nothing written before the commit
        db.session.commit()
    assert [row.action for row in chain(session)[before:]] == [
        "test.before_savepoint", "test.inside_released_savepoint"]


def test_a_rolled_back_transaction_writes_none_of_its_audit_rows(app, world, session):
    before = len(chain(session))
    with app.app_context():
        with db.session.begin_nested():
            audit.record(db.session, SYSTEM, "test.in_savepoint")
        audit.record(db.session, SYSTEM, "test.after_savepoint")
        db.session.rollback()
        db.session.commit()
    assert len(chain(session)) == before
