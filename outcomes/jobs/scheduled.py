"""The scheduled jobs. Each is a name, a schedule and a plain function of a session and the
time that calls services; ``JOBS`` lists them all. Both engines (procrastinate's worker on
PostgreSQL, the loop on SQLite) and the tests read it, so a new job is one entry
(docs/jobs.md)."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from flask import current_app
from sqlalchemy.orm import Session

from ..audit_chain import checkpoint_line
from ..models import JobRun
from ..services import alert_notifications, audit, deliveries, reminders

log = logging.getLogger(__name__)

#: The longest job name the ledger (``job_run.job``) holds.
NAME_LENGTH = JobRun.__table__.c.job.type.length


@dataclass(frozen=True)
class ScheduledJob:
    """One scheduled job.

    ``run(session, now)`` does the work of one period: everything due at ``now``, not only
    what became due since the period before, so that a period skipped (workers down, a
    queue already holding a run) loses nothing. It never commits: the runner commits the run
    and its ledger row together, or neither."""

    #: The job's name: its key in ``JOBS``, in the ledger and in procrastinate's queue.
    name: str
    #: When it runs: a cron expression in UTC (five fields; a sixth gives seconds).
    schedule: str
    run: Callable[[Session, dt.datetime], None]
    #: The setting without which a worker does not run this job (None: every worker runs it).
    requires: str | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= NAME_LENGTH:
            raise ValueError(f"a job's name has 1 to {NAME_LENGTH} characters: {self.name!r}")
        if not croniter.is_valid(self.schedule):
            raise ValueError(f"job {self.name}: {self.schedule!r} is not a cron expression")

    def due_at(self, now: dt.datetime) -> dt.datetime:
        """The latest time the job was scheduled for, at or before ``now`` (aware UTC)."""
        # croniter's previous time is strictly before its start, and its finest unit a second.
        start = now.astimezone(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=1)
        return croniter(self.schedule, start).get_prev(dt.datetime)

    def next_after(self, now: dt.datetime) -> dt.datetime:
        """The first time the job is scheduled for after ``now`` (aware UTC)."""
        return croniter(self.schedule, now.astimezone(dt.timezone.utc)).get_next(dt.datetime)

    def enabled(self, config: Mapping[str, Any]) -> bool:
        """Whether a worker with ``config`` runs this job."""
        return self.requires is None or bool(config.get(self.requires))


def enabled_jobs(config: Mapping[str, Any], jobs: Iterable[ScheduledJob] | None = None
                 ) -> list[ScheduledJob]:
    """The jobs (of ``JOBS`` unless given) that a worker with ``config`` runs."""
    return [job for job in (JOBS.values() if jobs is None else jobs) if job.enabled(config)]


def write_audit_checkpoint(session: Session, now: dt.datetime) -> None:
    """Append a signed checkpoint of the audit chain's head to ``AUDIT_CHECKPOINT_PATH``, as
    ``flask audit checkpoint`` does (nothing when no row was added since the last one), so
    that production needs no cron for it (docs/audit.md). The signed line goes to the log
    too, a second copy kept off that file, as the command prints it. A broken chain or an
    unwritable file fails the run; ``flask audit verify`` names the break."""
    checkpoint, written = audit.write_checkpoint(session, audit.audit_keys(),
                                                 current_app.config["AUDIT_CHECKPOINT_PATH"])
    if written:
        log.info("audit checkpoint: %s", checkpoint_line(checkpoint))


def notify_alerts(session: Session, now: dt.datetime) -> None:
    """Queue the notifications of crisis alerts that opened and the escalations now due, then
    send them: within this one run, however the other jobs are spread over workers."""
    alert_notifications.queue_alert_notifications(session, now)
    deliveries.send_pending(session, current_app.config, purposes=("alert", "escalation"))


def queue_reminders(session: Session, now: dt.datetime) -> None:
    """Queue the reminders due now (services/reminders.py); ``send_deliveries`` sends them."""
    reminders.queue_reminders(session, now)


def send_deliveries(session: Session, now: dt.datetime) -> None:
    """Send every pending delivery that is due: new ones, retries, the ones a sender that died
    had claimed. Unlike other jobs it commits as it goes (services/deliveries.py): a message
    that has left must stay recorded whatever happens to the rest of the run."""
    deliveries.send_pending(session, current_app.config)


JOBS: dict[str, ScheduledJob] = {job.name: job for job in (
    # Every minute, as docs/audit.md asks: the newest rows can be deleted undetected only
    # until the next checkpoint. Only workers given the checkpoint file write it.
    ScheduledJob("audit_checkpoint", "* * * * *", write_audit_checkpoint,
                 requires="AUDIT_CHECKPOINT_PATH"),
    # Every minute, in this order (the SQLite loop runs a tick's jobs in it), so one tick
    # queues and sends. They run where PUBLIC_BASE_URL, the address messages link to, is set.
    ScheduledJob("alert_notifications", "* * * * *", notify_alerts,
                 requires="PUBLIC_BASE_URL"),
    ScheduledJob("reminders", "* * * * *", queue_reminders, requires="PUBLIC_BASE_URL"),
    ScheduledJob("deliveries", "* * * * *", send_deliveries, requires="PUBLIC_BASE_URL"),
)}
