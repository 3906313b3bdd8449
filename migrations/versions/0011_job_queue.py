"""Scheduled jobs: the ledger of committed runs and, on PostgreSQL, procrastinate's queue.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

Issue 11 item 1 (docs/jobs.md). ``job_run`` records each run of a scheduled job that
committed, in that run's transaction, on every database. On PostgreSQL the worker is
procrastinate's: its tables, types, functions and triggers are created from the schema file
of the installed procrastinate package (``SchemaManager.get_schema``), never a copy of it,
in the schema the connection's search_path names first, as the app's own tables are. On
SQLite the worker is a loop of the app's own and needs nothing more.

A later version of procrastinate that changes its schema ships migration files
(``procrastinate/sql/migrations``); a release that raises the requirement adds an Alembic
revision that applies them (docs/jobs.md).
"""
from alembic import op
import sqlalchemy as sa
from procrastinate.schema import SchemaManager

from outcomes.jobs import QUEUE_PREFIX

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_run")),
        sa.UniqueConstraint("job", "due_at", name="uq_job_run_job_due_at"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # The driver reads "%" as a placeholder: escaped, as procrastinate's own apply_schema does.
        bind.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        drop_queue(bind)
    op.drop_table("job_run")


def drop_queue(bind: sa.Connection) -> None:
    """Drop everything of procrastinate's in the current schema, as the catalog lists it:
    its tables (their triggers and row types with them), then its functions and types."""
    listings = {
        "TABLE": "SELECT quote_ident(relname) FROM pg_class"
                 " WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
                 " AND relname LIKE :prefix",
        "FUNCTION": "SELECT quote_ident(proname) || '(' || pg_get_function_identity_arguments(oid)"
                    " || ')' FROM pg_proc"
                    " WHERE pronamespace = current_schema()::regnamespace AND proname LIKE :prefix",
        "TYPE": "SELECT quote_ident(typname) FROM pg_type"
                " WHERE typnamespace = current_schema()::regnamespace AND typtype IN ('c', 'e')"
                " AND typname LIKE :prefix",
    }
    prefix = QUEUE_PREFIX.replace("_", r"\_") + "%"
    for kind, listing in listings.items():
        for name in bind.execute(sa.text(listing), {"prefix": prefix}).scalars().all():
            bind.exec_driver_sql(f"DROP {kind} IF EXISTS {name} CASCADE")
