"""Scheduled background work (issue 11): a registry of jobs (``scheduled.JOBS``), one runner
that gives each run a transaction of its own (``runner``), and two engines that call it once
per period: procrastinate's worker on PostgreSQL (``queue``) and a loop of the app's own on
SQLite (``loop``), both started by ``flask worker`` (``cli``). docs/jobs.md explains.

Jobs call services; services never import jobs (.importlinter).
"""
from __future__ import annotations

#: procrastinate names every table, type and function of its queue with this prefix.
QUEUE_PREFIX = "procrastinate_"


def outside_the_queue(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name`` hook: comparing the models with the database leaves out
    procrastinate's tables, which migration 0011 creates from the package and no model
    describes."""
    return not (type_ == "table" and name is not None and name.startswith(QUEUE_PREFIX))
