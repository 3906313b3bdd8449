"""Keyed audit chain: the key id of each row.

Rows written before this revision keep their plain SHA-256 hashes and are marked with the
key id ``sha256`` (outcomes.audit_chain.UNKEYED), so `flask audit verify` checks them the
way they were written; rows written after are signed with an audit key (HMAC-SHA256).
They are marked rather than re-chained: re-chaining would need the secret key inside the
migration, and it would sign whatever the table holds at upgrade time, turning any earlier
tampering into a valid chain. The first keyed row's hash covers the last unkeyed row's hash,
so the unkeyed rows are fixed from then on (docs/audit.md).

Adding a column with a default marks the existing rows without updating them (the
append-only triggers refuse updates); the default is then dropped, so every new row must
name its key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

from outcomes.audit_chain import UNKEYED

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE ADD COLUMN on both databases: no copy of the table.
    op.add_column("audit_event", sa.Column("key_id", sa.String(length=32), nullable=False,
                                           server_default=UNKEYED))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("audit_event", "key_id", server_default=None)
        return
    # SQLite can drop a default only by copying the table, which drops its triggers.
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=32),
                              existing_nullable=False, server_default=None)
    create_sqlite_append_only_triggers()


def create_sqlite_append_only_triggers() -> None:
    for operation in ("UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS audit_event_no_{operation.lower()}")
        op.execute(f"CREATE TRIGGER audit_event_no_{operation.lower()} BEFORE {operation} "
                   f"ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event rows are "
                   f"append-only: {operation} refused'); END")


def downgrade() -> None:
    # Rows signed with a key cannot be verified by revision 0003's plain SHA-256 verifier.
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.drop_column("key_id")
    if op.get_bind().dialect.name == "sqlite":
        create_sqlite_append_only_triggers()
