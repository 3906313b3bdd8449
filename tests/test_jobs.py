"""The scheduled jobs' runner and the SQLite loop (outcomes/jobs, docs/jobs.md): a run commits
its work with its ledger row or keeps nothing, a period commits once, the loop runs each job
once per period, and the audit checkpoint job writes the signed checkpoint. The worker
processes themselves are tested in test_worker.py."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outcomes.jobs.loop import run_due_jobs, run_loop
from outcomes.jobs.queue import connection_string
from outcomes.jobs.runner import JobFailed, run_job
from outcomes.jobs.scheduled import JOBS, ScheduledJob, enabled_jobs
from outcomes.models import AuditEvent, JobRun
from outcomes.services import audit
from outcomes.services.audit import Actor

UTC = dt.timezone.utc
WORKER = Actor(user=None, request_id="test-job")
#: Health data a failing job's error might quote: never logged.
NAME = "Quinlan Marsh-Okafor"


def at(hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 6, 1, hour, minute, second, tzinfo=UTC)


def record_a_run(session: Session, now: dt.datetime) -> None:
    """A job's work: one audit row, written at the run's commit."""
    audit.record(session, WORKER, "test.job_ran", details={"now": now.isoformat()})


def fail_after_writing(session: Session, now: dt.datetime) -> None:
    record_a_run(session, now)
    raise ValueError(f"row for {NAME} refused")


RECORDING = ScheduledJob("recording", "* * * * *", record_a_run)


def job_rows(session: Session) -> tuple[int, list[tuple[str, dt.datetime]]]:
    """How many runs left their audit row, and the ledger's (job, due_at) rows."""
    effects = session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "test.job_ran"))
    ledger = session.execute(select(JobRun.job, JobRun.due_at).order_by(JobRun.id)).all()
    return effects, [tuple(row) for row in ledger]


def test_a_run_commits_its_work_with_its_ledger_row(app: Flask, session: Session):
    assert run_job(app, RECORDING, at(10, 5)) is True
    assert job_rows(session) == (1, [("recording", at(10, 5))])


def test_a_period_that_committed_is_not_run_again(app: Flask, session: Session, caplog):
    caplog.set_level(logging.INFO, "outcomes.jobs")
    run_job(app, RECORDING, at(10, 5))
    assert run_job(app, RECORDING, at(10, 5)) is False
    assert run_job(app, RECORDING, at(10, 6)) is True
    assert job_rows(session) == (2, [("recording", at(10, 5)), ("recording", at(10, 6))])
    assert "the run due at 2026-06-01T10:05:00+00:00 has run already" in caplog.text


def test_a_failed_run_keeps_nothing_logs_no_message_and_can_run_again(
        app: Flask, session: Session, caplog):
    failing = ScheduledJob("recording", "* * * * *", fail_after_writing)
    with pytest.raises(JobFailed, match=r"^job recording failed \(ValueError\)") as raised:
        run_job(app, failing, at(10, 5))
    assert job_rows(session) == (0, [])
    assert NAME not in str(raised.value) and raised.value.__cause__ is None
    assert "job recording: the run due at 2026-06-01T10:05:00+00:00 failed: ValueError" \
        in caplog.text
    assert "fail_after_writing" in caplog.text  # where it happened
    assert NAME not in caplog.text
    assert run_job(app, RECORDING, at(10, 5)) is True
    assert job_rows(session) == (1, [("recording", at(10, 5))])


def test_the_loop_runs_a_due_job_once_per_period(app: Flask, session: Session):
    every_five_minutes = ScheduledJob("recording", "*/5 * * * *", record_a_run)
    handled: dict[str, dt.datetime] = {}
    for now in (at(10, 7, 30), at(10, 9, 59), at(10, 10), at(10, 12), at(10, 26)):
        run_due_jobs(app, [every_five_minutes], now, handled)
    # 10:05 (the latest period when the loop started), 10:10, then 10:25: the periods in
    # between passed while the loop was not looking, and the next run does their work.
    assert job_rows(session)[1] == [("recording", at(10, 5)), ("recording", at(10, 10)),
                                    ("recording", at(10, 25))]
    # A loop started again (handled forgotten) finds the period done.
    run_due_jobs(app, [every_five_minutes], at(10, 27), {})
    assert job_rows(session)[0] == 3


def test_the_loop_runs_each_second_until_stopped(app: Flask, session: Session):
    every_second = ScheduledJob("recording", "* * * * * *", record_a_run)
    stop = threading.Event()
    loop = threading.Thread(target=run_loop, args=(app, [every_second], stop))
    loop.start()
    time.sleep(2.5)
    stop.set()
    loop.join(timeout=5)
    assert not loop.is_alive()
    effects, ledger = job_rows(session)
    seconds = [due_at for _, due_at in ledger]
    assert effects == len(ledger) >= 2
    assert all(later - earlier == dt.timedelta(seconds=1)
               for earlier, later in zip(seconds, seconds[1:]))


def test_a_failing_job_does_not_stop_the_loop(app: Flask, session: Session):
    failing = ScheduledJob("failing", "* * * * *", fail_after_writing)
    handled: dict[str, dt.datetime] = {}
    run_due_jobs(app, [failing, RECORDING], at(10, 5), handled)
    assert job_rows(session) == (1, [("recording", at(10, 5))])
    assert handled == {"failing": at(10, 5), "recording": at(10, 5)}


def test_the_audit_checkpoint_job_appends_a_signed_checkpoint_and_logs_it(
        app: Flask, session: Session, tmp_path, caplog):
    caplog.set_level(logging.INFO, "outcomes.jobs")
    checkpoints = tmp_path / "checkpoints.jsonl"
    job = JOBS["audit_checkpoint"]
    assert job not in enabled_jobs(app.config)
    app.config["AUDIT_CHECKPOINT_PATH"] = str(checkpoints)
    assert enabled_jobs(app.config) == [job]

    run_job(app, RECORDING, at(10, 4))  # an audit row for the chain to cover
    run_job(app, job, at(10, 5))
    run_job(app, job, at(10, 6))  # no row since: nothing more written
    with app.app_context():
        keys = audit.audit_keys()
    written, problems = audit.read_checkpoint_file(str(checkpoints), keys)
    assert problems == [] and [c.last_id for c in written] == [1]
    # The log's copy of the signed line verifies as the file's does.
    logged = [line.split("audit checkpoint: ", 1)[1] for line in caplog.messages
              if line.startswith("audit checkpoint: ")]
    assert audit.read_checkpoints(logged, keys) == (written, [])
    assert [due_at for name, due_at in job_rows(session)[1] if name == job.name] == \
        [at(10, 5), at(10, 6)]


def test_the_audit_checkpoint_job_fails_on_a_broken_chain(app: Flask, tmp_path):
    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoints.write_text("not a checkpoint\n")
    app.config["AUDIT_CHECKPOINT_PATH"] = str(checkpoints)
    with pytest.raises(JobFailed, match=r"\(ChainBroken\)"):
        run_job(app, JOBS["audit_checkpoint"], at(10, 5))
    assert checkpoints.read_text() == "not a checkpoint\n"


@pytest.mark.parametrize(("schedule", "now", "due_at", "next_at"), [
    ("* * * * *", at(10, 5), at(10, 5), at(10, 6)),
    ("* * * * *", dt.datetime(2026, 6, 1, 10, 5, 59, 999999, tzinfo=UTC), at(10, 5), at(10, 6)),
    ("0 3 * * *", at(10, 5), at(3, 0), dt.datetime(2026, 6, 2, 3, 0, tzinfo=UTC)),
    ("* * * * * */2", at(10, 5, 3), at(10, 5, 2), at(10, 5, 4)),
])
def test_a_schedule_names_the_latest_and_the_next_period(schedule, now, due_at, next_at):
    job = ScheduledJob("recording", schedule, record_a_run)
    assert (job.due_at(now), job.next_after(now)) == (due_at, next_at)


def test_a_job_needs_a_cron_schedule_and_a_name_the_ledger_holds():
    with pytest.raises(ValueError, match="not a cron expression"):
        ScheduledJob("recording", "hourly", record_a_run)
    with pytest.raises(ValueError, match="1 to 64 characters"):
        ScheduledJob("x" * 65, "* * * * *", record_a_run)


def test_the_queue_connects_as_the_app_does():
    url = ("postgresql+psycopg://outcomes:p%40ss@db.internal:5432/outcomes"
           "?options=-csearch_path%3Dclinic")
    assert connection_string({"DATABASE_URL": url}) == (
        "postgresql://outcomes:p%40ss@db.internal:5432/outcomes?options=-csearch_path%3Dclinic")
