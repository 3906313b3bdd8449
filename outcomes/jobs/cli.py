"""``flask --app wsgi worker``: runs the scheduled jobs until stopped (docs/jobs.md)."""
from __future__ import annotations

import logging
import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext
from flask.logging import default_handler

from ..extensions import db
from .scheduled import enabled_jobs

log = logging.getLogger(__name__)


@click.command("worker")
@with_appcontext
def worker() -> None:
    """Run the scheduled jobs until SIGTERM or Ctrl-C (the run in progress finishes first):
    procrastinate's worker on PostgreSQL, where one or more run on each host; a loop of its
    own on SQLite, one process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    show_progress()
    jobs = enabled_jobs(app.config)
    log.info("worker: running %s", ", ".join(job.name for job in jobs) or "no job (none enabled)")
    if db.engine.dialect.name == "postgresql":
        from .queue import run_worker  # procrastinate: loaded by the PostgreSQL worker only

        run_worker(app, jobs)
    else:
        from .loop import run_loop

        run_loop(app, jobs, stop_on_signals())
    log.info("worker: stopped")


def show_progress() -> None:
    """Log each run (the app's and procrastinate's messages, through Flask's handler on
    standard error): what ran and when, never what it handled."""
    for name in ("outcomes", "procrastinate"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("procrastinate").addHandler(default_handler)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for the rest of the process. Signals after the first
    change nothing: the run in progress finishes, and the process ends (``make demo`` sends
    SIGTERM after Ctrl-C's SIGINT)."""
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda number, frame: stop.set())
    return stop
