"""``flask worker`` as production runs it: real processes, started and signalled by the tests
(docs/jobs.md). SIGTERM lets the run in progress commit, then stops; on PostgreSQL two
workers run each period once, and a worker killed mid-run loses nothing and duplicates
nothing once another is running. The tests' own job, ``tick``, is in tests/worker_jobs.py."""
from __future__ import annotations

import collections
import datetime as dt
import json
import signal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from outcomes.models import AuditEvent, JobRun

from .worker_jobs import PATIENT_NAME, TICK_ACTION
from .worker_processes import wait_for, workers  # noqa: F401  (fixture)

def tick_periods(database_url: str) -> collections.Counter[str]:
    """How many committed runs of ``tick`` each period has, by their audit rows."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        details = connection.scalars(select(AuditEvent.details)
                                     .where(AuditEvent.action == TICK_ACTION)).all()
    engine.dispose()
    return collections.Counter(row["due_at"] for row in details)


def ticks_once_each(database_url: str) -> collections.Counter[str]:
    """Once the workers have stopped: ``tick_periods``, having checked that each period has
    one run, and that the periods with runs are those of the ledger (a run's changes and
    its ledger row commit together or not at all)."""
    periods = tick_periods(database_url)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        ledger = connection.scalars(select(JobRun.due_at).where(JobRun.job == "tick")).all()
    engine.dispose()
    assert set(periods.values()) == {1}
    assert sorted(periods) == sorted(due_at.isoformat() for due_at in ledger)
    return periods


def test_sigterm_stops_the_worker_once_the_audit_checkpoint_is_written(workers, tmp_path):
    checkpoints = tmp_path / "checkpoints.jsonl"
    worker = workers("wsgi", AUDIT_CHECKPOINT_PATH=str(checkpoints))
    wait_for(lambda: checkpoints.exists() and checkpoints.read_text(), "checkpoint", [worker])
    assert worker.stop() == 0
    assert "worker: running audit_checkpoint" in worker.output()
    assert "worker: stopped" in worker.output()
    assert json.loads(checkpoints.read_text())["chain"] == "audit_event"


def test_sigterm_mid_run_lets_the_run_commit_first(workers, database_url, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    worker = workers(TICK_HOLD=str(hold), TICK_HOLD_SECONDS="2")
    started = Path(f"{hold}.started")
    wait_for(started.exists, "run", [worker])
    assert worker.stop() == 0
    assert started.read_text() in ticks_once_each(database_url)


@pytest.fixture
def postgresql_workers(workers, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("procrastinate's worker runs on PostgreSQL only")
    return workers


def test_two_workers_run_each_period_once(postgresql_workers, database_url):
    # A worker counts as dead only after 10 s without a heartbeat: a loaded machine must
    # not make a slow one look dead, which would retry its run (harmlessly) and fail the
    # check that no period was run twice.
    pair = [postgresql_workers(JOBS_STALLED_SECONDS="10") for _ in range(2)]
    wait_for(lambda: len(tick_periods(database_url)) >= 4, "four periods", pair)
    assert [worker.stop() for worker in pair] == [0, 0]
    ticks_once_each(database_url)
    # Each period was deferred once (procrastinate's periodic defers), so the ledger never
    # had to turn a second run away.
    assert not any("has run already" in worker.output() for worker in pair)


def test_a_failed_run_is_retried_after_a_pause_and_its_message_is_never_logged(
        postgresql_workers, database_url, tmp_path):
    fail = tmp_path / "fail"
    fail.touch()
    worker = postgresql_workers(TICK_FAIL_ONCE=str(fail))
    failed = Path(f"{fail}.failed")
    wait_for(failed.exists, "failed run", [worker])
    failed_period = failed.read_text()
    wait_for(lambda: failed_period in tick_periods(database_url), "retried run", [worker])
    assert worker.stop() == 0
    assert failed_period in ticks_once_each(database_url)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        committed_at = connection.scalar(select(JobRun.finished_at).where(
            JobRun.job == "tick", JobRun.due_at == dt.datetime.fromisoformat(failed_period)))
    engine.dispose()
    # The first retry waits 5 seconds (queue.RETRY).
    assert committed_at - dt.datetime.fromisoformat(failed_period) >= dt.timedelta(seconds=5)
    output = worker.output()
    assert f"the run due at {failed_period} failed: RuntimeError" in output
    assert PATIENT_NAME not in output


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
        postgresql_workers, database_url, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    first = postgresql_workers(TICK_HOLD=str(hold))
    started = Path(f"{hold}.started")
    wait_for(started.exists, "run", [first])
    killed_period = started.read_text()
    wait_for(lambda: queued_ticks(database_url), "later period queued behind the run", [first])
    [waiting_period] = queued_ticks(database_url)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert killed_period not in tick_periods(database_url)  # its transaction died with it
    hold.unlink()

    second = postgresql_workers()
    wait_for(lambda: killed_period in tick_periods(database_url), "retried run", [second])
    wait_for(lambda: len(tick_periods(database_url)) >= 3, "later periods", [second])
    assert second.stop() == 0
    periods = ticks_once_each(database_url)
    assert killed_period in periods
    # The period that waited gave way to the retried run, which did its work (a run does
    # all that is due when it runs).
    assert waiting_period not in periods


def queued_ticks(database_url: str) -> list[str]:
    """The periods of the runs of ``tick`` waiting in procrastinate's queue."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        timestamps = connection.scalars(text(
            "SELECT (args ->> 'timestamp')::bigint FROM procrastinate_jobs"
            " WHERE task_name = 'tick' AND status = 'todo'")).all()
    engine.dispose()
    return [dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat()
            for stamp in timestamps]
