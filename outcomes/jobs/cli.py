"""``flask --app wsgi worker``: runs the scheduled jobs until stopped (docs/jobs.md)."""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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

        with stop_on_signals() as stop:
            run_loop(app, jobs, stop)
    log.info("worker: stopped")


def show_progress() -> None:
    """Log each run (the app's and procrastinate's messages, through Flask's handler on
    standard error): what ran and when, never what it handled."""
    for name in ("outcomes", "procrastinate"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("procrastinate").addHandler(default_handler)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGTERM or SIGINT; a second one acts as it would have."""
    stop = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in signals}

    def handle(number: int, frame: object) -> None:
        for each, handler in previous.items():
            signal.signal(each, handler)
        stop.set()

    for number in signals:
        signal.signal(number, handle)
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
