"""One run of a scheduled job: a transaction of its own, committed with its ledger row, as a
request commits once (docs/jobs.md)."""
from __future__ import annotations

import datetime as dt
import logging
import traceback

from flask import Flask
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import clock
from ..database import abandon_transaction
from ..extensions import db
from ..models import JobRun
from .scheduled import ScheduledJob

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A run failed and changed nothing. Its message names the job and the error's type only:
    a database's message can quote the values of a row, which are health data."""


def run_job(app: Flask, job: ScheduledJob, due_at: dt.datetime) -> bool:
    """Run ``job`` for the period scheduled at ``due_at``, in an app context and a transaction
    of its own that also records the run in ``job_run``, and commit both.

    Returns False, having changed nothing, when that period's run has committed already (a
    retry of it, another worker, a restarted loop): the ledger's unique key decides, and on
    PostgreSQL a concurrent run of the same period waits for the first to end. Raises
    ``JobFailed`` when the run fails; its transaction is rolled back, so nothing of it stays
    and the period may be run again."""
    with app.app_context():
        session = db.session
        try:
            ledger_row = JobRun(job=job.name, due_at=due_at)
            session.add(ledger_row)
            session.flush()
        except IntegrityError:
            abandon_transaction(session)
            log.info("job %s: the run due at %s has run already", job.name, due_at.isoformat())
            return False
        except Exception as error:
            raise _failed(session, job, due_at, error) from None
        try:
            job.run(session, clock.utcnow())
            session.commit()
        except Exception as error:
            raise _failed(session, job, due_at, error) from None
    log.info("job %s: the run due at %s committed", job.name, due_at.isoformat())
    return True


def _failed(session: Session, job: ScheduledJob, due_at: dt.datetime, error: Exception) -> JobFailed:
    abandon_transaction(session)
    # The error's type and where it happened, never its message (as web.py logs a request's).
    log.error("job %s: the run due at %s failed: %s\n%s", job.name, due_at.isoformat(),
              type(error).__name__, "".join(traceback.format_tb(error.__traceback__)))
    return JobFailed(f"job {job.name} failed ({type(error).__name__}); nothing of it was kept")
