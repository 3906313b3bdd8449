"""The engine on SQLite, the embedded default: one process runs the jobs itself, each once
per period. Another loop (or a restart) running the same period changes nothing: the
runner's ledger decides (docs/jobs.md)."""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence

from flask import Flask

from .. import clock
from .runner import JobFailed, run_job
from .scheduled import ScheduledJob

log = logging.getLogger(__name__)


def run_due_jobs(app: Flask, jobs: Sequence[ScheduledJob], now: dt.datetime,
                 handled: dict[str, dt.datetime]) -> None:
    """One tick: run each job whose latest scheduled time (at or before ``now``) is not the
    one ``handled`` holds for it, and note it there. A run that fails is not tried again
    until the job's next period (which does whatever is due by then)."""
    for job in jobs:
        due_at = job.due_at(now)
        if handled.get(job.name) == due_at:
            continue
        try:
            run_job(app, job, due_at)
        except JobFailed:
            pass  # logged by the runner, without the error's message
        handled[job.name] = due_at


def run_loop(app: Flask, jobs: Sequence[ScheduledJob], stop: threading.Event) -> None:
    """Run ``jobs`` until ``stop`` is set: a tick, then sleep until the next scheduled time.
    The first tick runs each job's latest period unless it ran already, so a loop started
    after a pause catches up once (as procrastinate's worker does on PostgreSQL)."""
    handled: dict[str, dt.datetime] = {}
    while not stop.is_set():
        now = clock.utcnow()
        run_due_jobs(app, jobs, now, handled)
        wake_at = min((job.next_after(now) for job in jobs), default=None)
        stop.wait(None if wake_at is None
                  else max(0.0, (wake_at - clock.utcnow()).total_seconds()))
