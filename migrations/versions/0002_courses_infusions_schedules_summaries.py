"""Treatment courses, versioned infusion records, course-anchored schedules, patient summaries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('course',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('indication', sa.String(length=16), nullable=False),
    sa.Column('planned_infusions', sa.Integer(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('next_infusion_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(ended_on IS NOT NULL) = (status IN ('completed', 'stopped'))", name=op.f('ck_course_ended_iff_finished')),
    sa.CheckConstraint("indication IN ('ptsd', 'depression', 'anxiety', 'other')", name=op.f('ck_course_indication_known')),
    sa.CheckConstraint("status IN ('planned', 'active', 'completed', 'stopped')", name=op.f('ck_course_status_known')),
    sa.CheckConstraint('planned_infusions BETWEEN 1 AND 24', name=op.f('ck_course_planned_infusions')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_course_created_by_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_course_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_course'))
    )
    op.create_index('ix_course_patient_id', 'course', ['patient_id'], unique=False)
    op.create_index('uq_course_one_open_per_patient', 'course', ['patient_id'], unique=True, sqlite_where=sa.text("status IN ('planned', 'active')"), postgresql_where=sa.text("status IN ('planned', 'active')"))

    op.create_table('patient_summary',
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('pcl5_baseline', sa.Integer(), nullable=True),
    sa.Column('pcl5_baseline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pcl5_latest', sa.Integer(), nullable=True),
    sa.Column('pcl5_latest_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('phq9_baseline', sa.Integer(), nullable=True),
    sa.Column('phq9_baseline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('phq9_latest', sa.Integer(), nullable=True),
    sa.Column('phq9_latest_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('improving', sa.Boolean(), nullable=False),
    sa.Column('worsening', sa.Boolean(), nullable=False),
    sa.Column('open_alerts', sa.Integer(), nullable=False),
    sa.Column('next_due_on', sa.Date(), nullable=True),
    sa.Column('course_status', sa.String(length=16), nullable=True),
    sa.Column('infusions_done', sa.Integer(), nullable=False),
    sa.Column('infusions_planned', sa.Integer(), nullable=True),
    sa.Column('next_infusion_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_patient_summary_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_summary_patient_id_patient')),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_patient_summary'))
    )
    op.create_index('ix_patient_summary_clinic_activity', 'patient_summary', ['clinic_id', 'last_activity_at'], unique=False)
    op.create_index('ix_patient_summary_clinic_alerts', 'patient_summary', ['clinic_id', 'open_alerts'], unique=False)
    op.create_index('ix_patient_summary_clinic_due', 'patient_summary', ['clinic_id', 'next_due_on'], unique=False)

    op.create_table('infusion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('number >= 1', name=op.f('ck_infusion_number_positive')),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_infusion_course_id_course')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_infusion')),
    sa.UniqueConstraint('course_id', 'number', name='uq_infusion_course_number')
    )
    op.create_index('ix_infusion_course_id', 'infusion', ['course_id'], unique=False)

    op.create_table('infusion_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('infusion_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('administered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('weight_kg', sa.Float(), nullable=False),
    sa.Column('dose_mg_per_kg', sa.Float(), nullable=False),
    sa.Column('total_dose_mg', sa.Float(), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('systolic_before', sa.Integer(), nullable=False),
    sa.Column('diastolic_before', sa.Integer(), nullable=False),
    sa.Column('heart_rate_before', sa.Integer(), nullable=False),
    sa.Column('spo2_before', sa.Integer(), nullable=False),
    sa.Column('systolic_peak', sa.Integer(), nullable=True),
    sa.Column('diastolic_peak', sa.Integer(), nullable=True),
    sa.Column('heart_rate_peak', sa.Integer(), nullable=True),
    sa.Column('spo2_peak', sa.Integer(), nullable=True),
    sa.Column('systolic_after', sa.Integer(), nullable=False),
    sa.Column('diastolic_after', sa.Integer(), nullable=False),
    sa.Column('heart_rate_after', sa.Integer(), nullable=False),
    sa.Column('spo2_after', sa.Integer(), nullable=False),
    sa.Column('side_effects', sa.JSON(), nullable=False),
    sa.Column('dissociation_rating', sa.Integer(), nullable=True),
    sa.Column('adverse_events', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('correction_reason', sa.Text(), nullable=True),
    sa.CheckConstraint('(version = 1) = (correction_reason IS NULL)', name=op.f('ck_infusion_version_correction_has_reason')),
    sa.CheckConstraint('diastolic_before BETWEEN 20 AND 200 AND diastolic_after BETWEEN 20 AND 200 AND (diastolic_peak IS NULL OR diastolic_peak BETWEEN 20 AND 200)', name=op.f('ck_infusion_version_diastolic')),
    sa.CheckConstraint('dissociation_rating IS NULL OR dissociation_rating BETWEEN 0 AND 4', name=op.f('ck_infusion_version_dissociation_rating')),
    sa.CheckConstraint('dose_mg_per_kg > 0 AND dose_mg_per_kg <= 3', name=op.f('ck_infusion_version_dose_per_kg')),
    sa.CheckConstraint('duration_minutes BETWEEN 1 AND 480', name=op.f('ck_infusion_version_duration')),
    sa.CheckConstraint('heart_rate_before BETWEEN 20 AND 250 AND heart_rate_after BETWEEN 20 AND 250 AND (heart_rate_peak IS NULL OR heart_rate_peak BETWEEN 20 AND 250)', name=op.f('ck_infusion_version_heart_rate')),
    sa.CheckConstraint('spo2_before BETWEEN 50 AND 100 AND spo2_after BETWEEN 50 AND 100 AND (spo2_peak IS NULL OR spo2_peak BETWEEN 50 AND 100)', name=op.f('ck_infusion_version_spo2')),
    sa.CheckConstraint('systolic_before BETWEEN 50 AND 300 AND systolic_after BETWEEN 50 AND 300 AND (systolic_peak IS NULL OR systolic_peak BETWEEN 50 AND 300)', name=op.f('ck_infusion_version_systolic')),
    sa.CheckConstraint('total_dose_mg > 0 AND total_dose_mg <= 1000', name=op.f('ck_infusion_version_total_dose')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_infusion_version_version_positive')),
    sa.CheckConstraint('weight_kg BETWEEN 20 AND 350', name=op.f('ck_infusion_version_weight')),
    sa.ForeignKeyConstraint(['infusion_id'], ['infusion.id'], name=op.f('fk_infusion_version_infusion_id_infusion')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_infusion_version_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_infusion_version')),
    sa.UniqueConstraint('infusion_id', 'version', name='uq_infusion_version_number')
    )
    op.create_index('ix_infusion_version_infusion_id', 'infusion_version', ['infusion_id'], unique=False)

    convert_plan_entries()
    create_append_only_trigger("infusion_version")
    harden_existing_tables()


def harden_existing_tables() -> None:
    """Fixes from the security review of revision 0001's tables."""
    with op.batch_alter_table("users") as batch_op:
        # Existing sessions end: every user gets a fresh token.
        batch_op.add_column(sa.Column("session_token", sa.String(length=64), nullable=False,
                                      server_default="0"))
    op.execute("UPDATE users SET session_token = " + (
        "md5(random()::text || id::text)" if op.get_bind().dialect.name == "postgresql"
        else "lower(hex(randomblob(16)))"))
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("session_token", existing_type=sa.String(length=64),
                              server_default=None)
    op.create_index("uq_invitation_one_open_per_patient", "invitation", ["patient_id"],
                    unique=True,
                    sqlite_where=sa.text("used_at IS NULL AND revoked_at IS NULL"),
                    postgresql_where=sa.text("used_at IS NULL AND revoked_at IS NULL"))
    op.create_index("uq_assessment_amends_once", "assessment", ["amends_id"], unique=True,
                    sqlite_where=sa.text("amends_id IS NOT NULL"),
                    postgresql_where=sa.text("amends_id IS NOT NULL"))
    with op.batch_alter_table("alert") as batch_op:
        batch_op.add_column(sa.Column("submission_key", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_alert_submission_kind", ["submission_key", "kind"])
        batch_op.create_check_constraint("one_origin",
                                         "assessment_id IS NULL OR submission_key IS NULL")
    if op.get_bind().dialect.name == "postgresql":
        # Row triggers do not see TRUNCATE; a statement trigger refuses it too.
        for table in ("assessment", "assessment_answer", "audit_event", "infusion_version"):
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()")


def convert_plan_entries() -> None:
    """Once-only entries become baseline entries; interval entries become recurring ones that
    continue 12 weeks after the course and then every 4 weeks; every patient gains the
    PHQ-9 at baseline and before each infusion, and the after-infusion check."""
    with op.batch_alter_table("plan_entry") as batch_op:
        batch_op.add_column(sa.Column("schedule", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("follow_up_weeks", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("then_every_days", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_plan_entry_patient_instrument", type_="unique")
    op.execute(
        "UPDATE plan_entry SET "
        "schedule = CASE WHEN every_days IS NULL THEN 'baseline' ELSE 'recurring' END, "
        "follow_up_weeks = CASE WHEN every_days IS NULL THEN NULL ELSE 12 END, "
        "then_every_days = CASE WHEN every_days IS NULL THEN NULL ELSE 28 END"
    )
    for key, schedule in (("phq9", "baseline"), ("phq9", "before_infusion"),
                          ("after-infusion", "after_infusion")):
        op.execute(
            "INSERT INTO plan_entry (patient_id, instrument_key, schedule, starts_after_days, "
            f"active) SELECT id, '{key}', '{schedule}', 0, true FROM patient WHERE NOT EXISTS ("
            "SELECT 1 FROM plan_entry existing WHERE existing.patient_id = patient.id "
            f"AND existing.instrument_key = '{key}' AND existing.schedule = '{schedule}')"
        )
    with op.batch_alter_table("plan_entry") as batch_op:
        batch_op.alter_column("schedule", existing_type=sa.String(length=16), nullable=False)
        batch_op.drop_constraint(op.f("ck_plan_entry_start_offset"), type_="check")
        batch_op.drop_column("starts_after_days")
        batch_op.create_unique_constraint("uq_plan_entry_patient_instrument_schedule",
                                          ["patient_id", "instrument_key", "schedule"])
        batch_op.create_check_constraint(
            "schedule_known",
            "schedule IN ('baseline', 'before_infusion', 'after_infusion', 'recurring')")
        batch_op.create_check_constraint("interval_iff_recurring",
                                         "(schedule = 'recurring') = (every_days IS NOT NULL)")
        batch_op.create_check_constraint(
            "follow_up", "follow_up_weeks IS NULL OR follow_up_weeks BETWEEN 0 AND 104")
        batch_op.create_check_constraint(
            "later_interval", "then_every_days IS NULL OR then_every_days BETWEEN 1 AND 365")


def create_append_only_trigger(table: str) -> None:
    # The function refuse_change() on PostgreSQL comes from revision 0001.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_change()")
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON "
                       f"{table} BEGIN SELECT RAISE(ABORT, '{table} rows are append-only: "
                       f"{operation} refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("assessment", "assessment_answer", "audit_event"):
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    with op.batch_alter_table("alert") as batch_op:
        batch_op.drop_constraint(op.f("ck_alert_one_origin"), type_="check")
        batch_op.drop_constraint("uq_alert_submission_kind", type_="unique")
        batch_op.drop_column("submission_key")
    op.drop_index("uq_assessment_amends_once", table_name="assessment")
    op.drop_index("uq_invitation_one_open_per_patient", table_name="invitation")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("session_token")
    op.execute("DELETE FROM plan_entry WHERE schedule IN ('before_infusion', 'after_infusion') "
               "OR (schedule = 'baseline' AND instrument_key = 'phq9')")
    with op.batch_alter_table("plan_entry") as batch_op:
        for name in ("schedule_known", "interval_iff_recurring", "follow_up", "later_interval"):
            batch_op.drop_constraint(op.f(f"ck_plan_entry_{name}"), type_="check")
        batch_op.drop_constraint("uq_plan_entry_patient_instrument_schedule", type_="unique")
        batch_op.add_column(sa.Column("starts_after_days", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.create_unique_constraint("uq_plan_entry_patient_instrument",
                                          ["patient_id", "instrument_key"])
        batch_op.create_check_constraint("start_offset", "starts_after_days BETWEEN 0 AND 365")
        batch_op.drop_column("then_every_days")
        batch_op.drop_column("follow_up_weeks")
        batch_op.drop_column("schedule")
    for table in ("infusion_version", "infusion", "patient_summary", "course"):
        op.drop_table(table)
