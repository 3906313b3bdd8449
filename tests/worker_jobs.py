"""The app of the worker processes tests/test_worker.py starts, through the real command:
``python -m flask --app tests.worker_jobs:worker_app worker``.

It is the tests' app (DATABASE_URL from the environment) with one more job, ``tick``, every
second: its run writes an audit row naming its period. While the file named by TICK_FAIL_ONCE
exists, a run removes it, writes its period to ``<TICK_FAIL_ONCE>.failed`` and fails, with a
patient's name in its error's message. While the file named by TICK_HOLD
exists, a run writes its period to ``<TICK_HOLD>.started`` and then waits TICK_HOLD_SECONDS
before committing, so a test can stop or kill the worker mid-run.
"""
from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session

from outcomes import create_app
from outcomes.jobs.scheduled import JOBS, ScheduledJob
from outcomes.models import JobRun
from outcomes.services import audit
from outcomes.services.audit import Actor

from .conftest import base_config

#: The audit action of a tick's run, whose details name its period ("due_at").
TICK_ACTION = "test.tick"
#: Health data in the message of a run's error, which no log may show.
PATIENT_NAME = "Quinlan Marsh-Okafor"


def tick(session: Session, now: dt.datetime) -> None:
    # The run's own ledger row (flushed, not committed) names the period it runs for.
    period = next(row for row in session.identity_map.values() if isinstance(row, JobRun))
    due_at = period.due_at.isoformat()
    audit.record(session, Actor(user=None, request_id=f"worker-{os.getpid()}"), TICK_ACTION,
                 details={"due_at": due_at})
    fail = os.environ.get("TICK_FAIL_ONCE")
    if fail and os.path.exists(fail):
        os.remove(fail)
        Path(f"{fail}.failed").write_text(due_at)
        raise RuntimeError(f"a row of {PATIENT_NAME} was refused")
    hold = os.environ.get("TICK_HOLD")
    if hold and os.path.exists(hold):
        Path(f"{hold}.started").write_text(due_at)
        time.sleep(float(os.environ.get("TICK_HOLD_SECONDS", "60")))


def worker_app() -> Flask:
    JOBS["tick"] = ScheduledJob("tick", "* * * * * *", tick)
    return create_app({**base_config(os.environ["DATABASE_URL"]),
                       "JOBS_STALLED_SECONDS": int(os.environ.get("JOBS_STALLED_SECONDS", "2"))})
