"""One record per staff form: submission keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Issue 8 item 3: every staff form that stores a record carries a key; the first copy of a
form to claim its key (a unique row here, in the transaction that stores the record) stores,
and every other copy answers with what it stored.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "form_submission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("values_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('course.start', 'course.update', 'infusion.record', "
            "'infusion.correct', 'patient.enrol', 'plan.update')",
            name=op.f("ck_form_submission_kind_known")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_form_submission_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_submission")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_form_submission_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("form_submission")
