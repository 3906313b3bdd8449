"""Audit trail: object version, old and new values, reason, and the hash chain.

Rows written before this revision are chained here, in id order, with the same function the
app uses (outcomes.audit_chain), so `flask audit verify` covers the whole trail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa

from outcomes.audit_chain import GENESIS, row_hash

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.add_column(sa.Column("object_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("old_values", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("new_values", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("row_hash", sa.String(length=64), nullable=True))
    chain_existing_rows()
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("row_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_audit_event_row_hash", ["row_hash"])
    if op.get_bind().dialect.name == "sqlite":
        # Batch mode rebuilt the table, and SQLite dropped its triggers with the old one.
        create_sqlite_append_only_triggers()


def chain_existing_rows() -> None:
    bind = op.get_bind()
    table = sa.table(
        "audit_event", sa.column("id"), sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("actor_id"), sa.column("actor_role"), sa.column("clinic_id"),
        sa.column("patient_id"), sa.column("action"), sa.column("object_type"),
        sa.column("object_id"), sa.column("object_version"), sa.column("old_values", sa.JSON()),
        sa.column("new_values", sa.JSON()), sa.column("reason"), sa.column("ip_address"),
        sa.column("request_id"), sa.column("details", sa.JSON()), sa.column("prev_hash"),
        sa.column("row_hash"),
    )
    rows = bind.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    if not rows:
        return
    postgresql = bind.dialect.name == "postgresql"
    # The append-only triggers stand aside while the hashes are written.
    if postgresql:
        op.execute("ALTER TABLE audit_event DISABLE TRIGGER USER")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    previous = GENESIS
    for row in rows:
        values = {**row, "prev_hash": previous}
        previous = row_hash(values)
        bind.execute(table.update().where(table.c.id == row["id"])
                     .values(prev_hash=values["prev_hash"], row_hash=previous))
    if postgresql:
        op.execute("ALTER TABLE audit_event ENABLE TRIGGER USER")


def create_sqlite_append_only_triggers() -> None:
    for operation in ("UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS audit_event_no_{operation.lower()}")
        op.execute(f"CREATE TRIGGER audit_event_no_{operation.lower()} BEFORE {operation} "
                   f"ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event rows are "
                   f"append-only: {operation} refused'); END")


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.drop_constraint("uq_audit_event_row_hash", type_="unique")
        for column in ("row_hash", "prev_hash", "reason", "new_values", "old_values",
                       "object_version"):
            batch_op.drop_column(column)
    if op.get_bind().dialect.name == "sqlite":
        create_sqlite_append_only_triggers()
