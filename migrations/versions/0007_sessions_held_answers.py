"""Sessions with idle timeouts; answers held across a sign-in.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Issue 8 items 5-6: a questionnaire sent after the patient's session ended is held here,
short-lived and bound to that user, until they sign in again and find it back on the form.
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("instrument_key", sa.String(length=32), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("submission_key", sa.String(length=64), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("expires_at > held_at",
                           name=op.f("ck_held_answers_expires_after_held")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_held_answers_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_answers")),
        sa.UniqueConstraint("user_id", name=op.f("uq_held_answers_user_id")),
    )


def downgrade() -> None:
    op.drop_table("held_answers")
