"""Reminder links and the clinic's sender name.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

Issue 11 item 4: a reminder's link signs the patient in for that questionnaire alone, once,
for a short time (``questionnaire_link``, the token stored hashed); messages go out under a
name the clinic chooses (``clinic.message_sender_name``, "Outcomes" until it sets one).
"""
from alembic import op
import sqlalchemy as sa

from outcomes.models import UTCDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.add_column(sa.Column("message_sender_name", sa.String(length=60),
                                      nullable=False, server_default="Outcomes"))
        batch_op.create_check_constraint("message_sender_name_not_blank",
                                         "length(trim(message_sender_name)) > 0")
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.alter_column("message_sender_name", server_default=None)
    op.create_table(
        "questionnaire_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("instrument_key", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("expires_at > created_at",
                           name=op.f("ck_questionnaire_link_expires_after_creation")),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"],
                                name=op.f("fk_questionnaire_link_delivery_id_delivery")),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"],
                                name=op.f("fk_questionnaire_link_patient_id_patient")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questionnaire_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_questionnaire_link_token_hash")),
    )
    op.create_index("ix_questionnaire_link_patient_id", "questionnaire_link", ["patient_id"])


def downgrade() -> None:
    op.drop_index("ix_questionnaire_link_patient_id", table_name="questionnaire_link")
    op.drop_table("questionnaire_link")
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.drop_constraint("message_sender_name_not_blank", type_="check")
        batch_op.drop_column("message_sender_name")
