"""One alert per disclosure: each alert names its questionnaire and what was said; records
that repeat an open disclosure are linked to its alert.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Issue 9 items 2-3. ``alert.instrument_key`` lets an alert raised from a form that was not
stored (no assessment) be matched with the completed form; ``alert.evidence`` holds the
answers that raised it; ``alert_assessment`` links later records to the open alert they
repeat. Alerts raised before this revision get their record's questionnaire and no evidence
(what was said is in their record's answers).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert") as batch_op:
        batch_op.add_column(sa.Column("instrument_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("evidence", sa.JSON(), nullable=True))
    op.execute("UPDATE alert SET instrument_key = (SELECT assessment.instrument_key FROM "
               "assessment WHERE assessment.id = alert.assessment_id) "
               "WHERE assessment_id IS NOT NULL")
    # Before this revision only crisis flags were raised from forms that were not stored, and
    # the PHQ-9's suicide_risk was the only crisis flag.
    op.execute("UPDATE alert SET instrument_key = 'phq9' "
               "WHERE instrument_key IS NULL AND kind = 'suicide_risk'")
    op.execute("UPDATE alert SET evidence = '{}'")
    with op.batch_alter_table("alert") as batch_op:
        batch_op.alter_column("instrument_key", existing_type=sa.String(length=64),
                              nullable=False)
        batch_op.alter_column("evidence", existing_type=sa.JSON(), nullable=False)

    op.create_table(
        "alert_assessment",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"],
                                name=op.f("fk_alert_assessment_alert_id_alert")),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessment.id"],
                                name=op.f("fk_alert_assessment_assessment_id_assessment")),
        sa.PrimaryKeyConstraint("alert_id", "assessment_id", name=op.f("pk_alert_assessment")),
    )
    op.create_index("ix_alert_assessment_assessment_id", "alert_assessment", ["assessment_id"])
    _append_only("alert_assessment")


def _append_only(table: str) -> None:
    """The same refusal as the assessments' own (revision 0001)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_change()")
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only: "
                   f"{operation} refused'); END")


def downgrade() -> None:
    op.drop_index("ix_alert_assessment_assessment_id", table_name="alert_assessment")
    op.drop_table("alert_assessment")
    with op.batch_alter_table("alert") as batch_op:
        batch_op.drop_column("evidence")
        batch_op.drop_column("instrument_key")
