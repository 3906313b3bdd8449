"""Alert triage: clinic response-time wording.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Issue 9 item 6: what a clinic tells a patient, after an alert, about when its care team
responds. NULL means the clinic has said nothing, and the app then promises nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.add_column(sa.Column("alert_response_wording", sa.String(length=300),
                                      nullable=True))
        batch_op.create_check_constraint(
            "alert_response_wording_not_blank",
            "alert_response_wording IS NULL OR length(trim(alert_response_wording)) > 0")


def downgrade() -> None:
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.drop_constraint("alert_response_wording_not_blank", type_="check")
        batch_op.drop_column("alert_response_wording")
