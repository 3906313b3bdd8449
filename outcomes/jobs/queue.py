"""The engine on PostgreSQL: procrastinate (a job queue in the app's own database, over
psycopg 3), one periodic task per scheduled job (docs/jobs.md).

Every worker defers each period of each of its jobs; procrastinate's table of periodic
defers keeps one job per period however many workers try. Each job has a queue, a lock and a
queueing lock of its own name: a worker listens only to the queues of the jobs it runs (a
job that needs a setting runs where that setting is given), two runs of one job never
overlap, and at most one waits. A failed run is retried with back-off; a run whose worker
died (its heartbeat stopped) is retried by the recovery task. Either way the runner's ledger
keeps a committed period from running twice.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import procrastinate
from flask import Flask
from sqlalchemy import make_url

from .runner import run_job
from .scheduled import ScheduledJob

log = logging.getLogger(__name__)

#: A failed run is tried again after 5, 25, 125 and 625 seconds, then given up (the job's
#: next period runs as usual). While it waits, later periods of the job wait behind it.
RETRY = procrastinate.RetryStrategy(max_attempts=4, exponential_wait=5)
#: A worker that starts after a pause defers each job's latest period if it is at most this
#: old (and no worker deferred it), as the SQLite loop runs it: a daily job missed by a
#: restart still runs.
CATCH_UP_SECONDS = 24 * 3600
#: The name and queue of the recovery task, which every worker listens to.
RECOVERY_QUEUE = "retry_stalled_runs"
#: Seconds without a heartbeat after which a worker counts as dead and the run it held is
#: tried again; a setting (JOBS_STALLED_SECONDS) may change it.
STALLED_SECONDS = 30


def stalled_seconds(config: Mapping[str, Any]) -> int:
    """``JOBS_STALLED_SECONDS`` of ``config``, or the default."""
    return int(config.get("JOBS_STALLED_SECONDS", STALLED_SECONDS))


def connection_string(config: Mapping[str, Any]) -> str:
    """libpq's form of the app's ``DATABASE_URL`` (its options, a search_path say, kept)."""
    url = make_url(config["DATABASE_URL"]).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def build_queue(app: Flask, jobs: Sequence[ScheduledJob]) -> procrastinate.App:
    """A procrastinate app with a periodic task for each of ``jobs`` and the recovery task."""
    config = app.config
    queue = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=connection_string(config),
            kwargs={"connect_timeout": config["DATABASE_CONNECT_TIMEOUT"]}),
        periodic_defaults={"max_delay": CATCH_UP_SECONDS})
    for job in jobs:
        _add_periodic_task(queue, app, job)
    _add_recovery_task(queue, stalled_seconds(config))
    return queue


def _add_periodic_task(queue: procrastinate.App, app: Flask, job: ScheduledJob) -> None:
    def run_period(timestamp: int) -> None:
        run_job(app, job, dt.datetime.fromtimestamp(timestamp, dt.timezone.utc))

    task = queue.task(name=job.name, queue=job.name, lock=job.name, queueing_lock=job.name,
                      retry=RETRY)(run_period)
    queue.periodic(cron=job.schedule, periodic_id=job.name)(task)


def _add_recovery_task(queue: procrastinate.App, stalled: int) -> None:
    """Every ``stalled`` seconds (at most a minute), one worker puts the runs held by dead
    workers back in their queues: procrastinate leaves them "doing" for ever, and their lock
    would hold back every later period of their job."""

    async def retry_stalled_runs(timestamp: int) -> None:
        manager = queue.job_manager
        for stalled_job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled):
            # The later period waiting behind the run holds the job's queueing lock, which
            # the retried run needs: it gives way, since a run does all that is due when it
            # runs, and the retried period's work is then done once, not lost.
            if stalled_job.queueing_lock is not None:
                for waiting in await manager.list_jobs_async(
                        queueing_lock=stalled_job.queueing_lock, status="todo"):
                    await manager.cancel_job_by_id_async(waiting.id, delete_job=True)
            try:
                await manager.retry_job(stalled_job)
            except procrastinate.exceptions.UniqueViolation:
                log.info("job %s: a later period was queued meanwhile; the run of a dead "
                         "worker is retried at the next round", stalled_job.task_name)

    every = f"* * * * * */{stalled}" if stalled < 60 else "* * * * *"
    task = queue.task(name=RECOVERY_QUEUE, queue=RECOVERY_QUEUE, lock=RECOVERY_QUEUE,
                      queueing_lock=RECOVERY_QUEUE)(retry_stalled_runs)
    queue.periodic(cron=every, periodic_id=RECOVERY_QUEUE)(task)


def run_worker(app: Flask, jobs: Sequence[ScheduledJob]) -> None:
    """Run a procrastinate worker for ``jobs`` until SIGTERM or SIGINT, which lets the run in
    progress finish first."""
    stalled = stalled_seconds(app.config)
    queue = build_queue(app, jobs)
    queue.run_worker(
        queues=[RECOVERY_QUEUE, *(job.name for job in jobs)],
        # Jobs are synchronous (each runs in a thread of its own): one at a time per worker;
        # run more workers for more.
        concurrency=1,
        delete_jobs="successful",
        update_heartbeat_interval=max(1.0, stalled / 3),
        stalled_worker_timeout=stalled,
        install_signal_handlers=True)
