"""Initial schema: clinics, users, patients, invitations, plans, assessments, alerts, audit.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clinic',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('crisis_phone', sa.String(length=40), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(trim(crisis_phone)) > 0', name=op.f('ck_clinic_crisis_phone_not_blank')),
    sa.CheckConstraint('length(trim(name)) > 0', name=op.f('ck_clinic_name_not_blank')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic')),
    sa.UniqueConstraint('name', name=op.f('uq_clinic_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("email LIKE '%_@_%'", name=op.f('ck_users_email_has_at')),
    sa.CheckConstraint("role IN ('patient', 'clinician', 'admin')", name=op.f('ck_users_role_known')),
    sa.CheckConstraint('email = lower(email)', name=op.f('ck_users_email_lower_case')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_users_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_index('ix_users_clinic_id', 'users', ['clinic_id'], unique=False)

    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clinic_id', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('contact_email', sa.String(length=254), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('assigned_clinician_id', sa.Integer(), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(trim(display_name)) > 0', name=op.f('ck_patient_display_name_not_blank')),
    sa.CheckConstraint('length(trim(identifier)) > 0', name=op.f('ck_patient_identifier_not_blank')),
    sa.ForeignKeyConstraint(['assigned_clinician_id'], ['users.id'], name=op.f('fk_patient_assigned_clinician_id_users')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_patient_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_patient_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient')),
    sa.UniqueConstraint('clinic_id', 'identifier', name='uq_patient_clinic_identifier'),
    sa.UniqueConstraint('user_id', name=op.f('uq_patient_user_id'))
    )
    op.create_index('ix_patient_clinic_id', 'patient', ['clinic_id'], unique=False)

    op.create_table('assessment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('instrument_key', sa.String(length=64), nullable=False),
    sa.Column('instrument_version', sa.String(length=32), nullable=False),
    sa.Column('administered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entered_by_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('amends_id', sa.Integer(), nullable=True),
    sa.Column('amendment_reason', sa.Text(), nullable=True),
    sa.Column('scorable', sa.Boolean(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('prorated', sa.Boolean(), nullable=False),
    sa.Column('band', sa.String(length=32), nullable=True),
    sa.Column('above_cutpoint', sa.Boolean(), nullable=True),
    sa.Column('provisional_diagnosis', sa.Boolean(), nullable=True),
    sa.Column('subscales', sa.JSON(), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('missing_items', sa.JSON(), nullable=False),
    sa.CheckConstraint("source IN ('patient', 'transcribed')", name=op.f('ck_assessment_source_known')),
    sa.CheckConstraint('(amends_id IS NULL) = (amendment_reason IS NULL)', name=op.f('ck_assessment_amendment_has_reason')),
    sa.CheckConstraint('(total IS NOT NULL) = scorable', name=op.f('ck_assessment_total_iff_scorable')),
    sa.CheckConstraint('NOT prorated OR scorable', name=op.f('ck_assessment_prorated_only_if_scorable')),
    sa.CheckConstraint('administered_at <= submitted_at', name=op.f('ck_assessment_administered_before_submitted')),
    sa.CheckConstraint('amendment_reason IS NULL OR length(trim(amendment_reason)) > 0', name=op.f('ck_assessment_amendment_reason_not_blank')),
    sa.CheckConstraint('total IS NULL OR total >= 0', name=op.f('ck_assessment_total_not_negative')),
    sa.ForeignKeyConstraint(['amends_id'], ['assessment.id'], name=op.f('fk_assessment_amends_id_assessment')),
    sa.ForeignKeyConstraint(['entered_by_id'], ['users.id'], name=op.f('fk_assessment_entered_by_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_assessment_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessment')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_assessment_idempotency_key'))
    )
    op.create_index('ix_assessment_patient_instrument_time', 'assessment', ['patient_id', 'instrument_key', 'administered_at'], unique=False)

    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_role', sa.String(length=16), nullable=True),
    sa.Column('clinic_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=True),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('ip_address', sa.String(length=45), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_event_actor_id_users')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_audit_event_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_audit_event_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    op.create_index('ix_audit_event_clinic_time', 'audit_event', ['clinic_id', 'occurred_at'], unique=False)
    op.create_index('ix_audit_event_patient_time', 'audit_event', ['patient_id', 'occurred_at'], unique=False)

    op.create_table('invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('expires_at > created_at', name=op.f('ck_invitation_expires_after_creation')),
    sa.CheckConstraint('used_at IS NULL OR revoked_at IS NULL', name=op.f('ck_invitation_used_or_revoked')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_invitation_created_by_id_users')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_invitation_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitation')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invitation_token_hash'))
    )
    op.create_index('ix_invitation_patient_id', 'invitation', ['patient_id'], unique=False)

    op.create_table('plan_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('instrument_key', sa.String(length=64), nullable=False),
    sa.Column('every_days', sa.Integer(), nullable=True),
    sa.Column('starts_after_days', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('every_days IS NULL OR every_days BETWEEN 1 AND 365', name=op.f('ck_plan_entry_interval')),
    sa.CheckConstraint('starts_after_days BETWEEN 0 AND 365', name=op.f('ck_plan_entry_start_offset')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_plan_entry_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_entry')),
    sa.UniqueConstraint('patient_id', 'instrument_key', name='uq_plan_entry_patient_instrument')
    )
    op.create_index('ix_plan_entry_patient_id', 'plan_entry', ['patient_id'], unique=False)

    op.create_table('alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('crisis', sa.Boolean(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('acknowledgement_note', sa.Text(), nullable=True),
    sa.CheckConstraint('(acknowledged_at IS NULL) = (acknowledged_by_id IS NULL) AND (acknowledged_at IS NULL) = (acknowledgement_note IS NULL)', name=op.f('ck_alert_acknowledgement_complete')),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['users.id'], name=op.f('fk_alert_acknowledged_by_id_users')),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessment.id'], name=op.f('fk_alert_assessment_id_assessment')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_alert_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert')),
    sa.UniqueConstraint('assessment_id', 'kind', name='uq_alert_assessment_kind')
    )
    op.create_index('ix_alert_open', 'alert', ['patient_id', 'acknowledged_at'], unique=False)
    op.create_index('ix_alert_patient_id', 'alert', ['patient_id'], unique=False)

    op.create_table('assessment_answer',
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('item_number', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.CheckConstraint('item_number >= 1', name=op.f('ck_assessment_answer_item_number_positive')),
    sa.CheckConstraint('value BETWEEN 0 AND 10', name=op.f('ck_assessment_answer_value_in_range')),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessment.id'], name=op.f('fk_assessment_answer_assessment_id_assessment')),
    sa.PrimaryKeyConstraint('assessment_id', 'item_number', name=op.f('pk_assessment_answer'))
    )
    create_append_only_triggers()


# Submitted assessments, their answers and the audit trail are never changed in place.
APPEND_ONLY_TABLES = ("assessment", "assessment_answer", "audit_event")


def create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% rows are append-only: % refused', TG_TABLE_NAME, TG_OP;
            END $$
            """
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_change()"
            )
    elif dialect == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only: "
                    f"{operation} refused'); END"
                )
    else:
        raise NotImplementedError(f"append-only triggers are not written for {dialect}")


def downgrade() -> None:
    for table in ("assessment_answer", "alert", "plan_entry", "invitation", "audit_event",
                  "assessment", "patient", "users", "clinic"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION refuse_change()")
