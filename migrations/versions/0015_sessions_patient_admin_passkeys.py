"""Accounts a clinic can run by itself, continued: a row per signed-in session, versions of a
patient's administrative details and their discharge, contact addresses confirmed by link,
passkeys, and the clinic's idle timeouts and MFA policy.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30

Issue 12 items 2–5. ``user_session`` (checked on every request, so ending one ends it on
every worker), ``patient_revision`` (version 1 of every existing patient is written here
from the patient row as it stands), ``patient.discharged_at``, ``contact_confirmation`` (one
open per patient and kind), ``passkey_credential``, two more account notices, and the
clinic's ``staff_idle_minutes``, ``patient_idle_minutes`` and ``staff_mfa_required``.
"""
from alembic import op
import sqlalchemy as sa

from outcomes.models import UTCDateTime

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

OPEN = "used_at IS NULL AND revoked_at IS NULL"
SESSION_END_REASONS = ("signed_out", "ended_by_user", "ended_by_admin", "signed_out_everywhere",
                       "password_changed", "password_reset", "factors_reset", "deactivated",
                       "timed_out")
NOTICES_0014 = ("password_reset", "password_changed", "factors_reset")
NOTICES_0015 = NOTICES_0014 + ("confirm_contact", "factor_added")


def _account_notice_check(notices: tuple[str, ...]) -> str:
    return ("(purpose = 'account') = (account_notice IS NOT NULL) AND (account_notice IS NULL"
            f" OR (account_notice IN {notices} AND user_id IS NOT NULL))")


def upgrade() -> None:
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.add_column(sa.Column("staff_idle_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("patient_idle_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("staff_mfa_required", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_check_constraint(
            "staff_idle_in_range",
            "staff_idle_minutes IS NULL OR staff_idle_minutes BETWEEN 5 AND 30")
        batch_op.create_check_constraint(
            "patient_idle_in_range",
            "patient_idle_minutes IS NULL OR patient_idle_minutes BETWEEN 5 AND 30")
    with op.batch_alter_table("patient") as batch_op:
        batch_op.add_column(sa.Column("discharged_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_constraint("account_delivery_names_notice", type_="check")
        batch_op.create_check_constraint("account_delivery_names_notice",
                                         _account_notice_check(NOTICES_0015))

    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("device", sa.String(length=80), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(length=24), nullable=True),
        sa.CheckConstraint("(ended_at IS NULL) = (ended_reason IS NULL)",
                           name=op.f("ck_user_session_ended_has_reason")),
        sa.CheckConstraint(f"ended_reason IS NULL OR ended_reason IN {SESSION_END_REASONS}",
                           name=op.f("ck_user_session_ended_reason_known")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_user_session_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_session")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_user_session_secret_hash")),
    )
    op.create_index("ix_user_session_user_id", "user_session", ["user_id"])

    op.create_table(
        "patient_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("contact_email", sa.String(length=254), nullable=True),
        sa.Column("contact_phone", sa.String(length=16), nullable=True),
        sa.Column("assigned_clinician_id", sa.Integer(), nullable=True),
        sa.Column("discharged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("changed_by_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_patient_revision_version_positive")),
        sa.CheckConstraint("length(trim(reason)) > 0",
                           name=op.f("ck_patient_revision_reason_not_blank")),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"],
                                name=op.f("fk_patient_revision_patient_id_patient")),
        sa.ForeignKeyConstraint(["assigned_clinician_id"], ["users.id"],
                                name=op.f("fk_patient_revision_assigned_clinician_id_users")),
        sa.ForeignKeyConstraint(["changed_by_id"], ["users.id"],
                                name=op.f("fk_patient_revision_changed_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_revision")),
        sa.UniqueConstraint("patient_id", "version", name="uq_patient_revision_patient_version"),
    )
    op.create_index("ix_patient_revision_patient_id", "patient_revision", ["patient_id"])
    # Version 1 of every patient enrolled before this: the details as they stand now.
    op.execute(
        "INSERT INTO patient_revision (patient_id, version, display_name, identifier,"
        " contact_email, contact_phone, assigned_clinician_id, discharged, reason,"
        " changed_by_id, changed_at)"
        " SELECT id, 1, display_name, identifier, contact_email, contact_phone,"
        " assigned_clinician_id, false, 'As enrolled', NULL, enrolled_at FROM patient")

    op.create_table(
        "contact_confirmation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('email', 'phone')",
                           name=op.f("ck_contact_confirmation_kind_known")),
        sa.CheckConstraint("expires_at > created_at",
                           name=op.f("ck_contact_confirmation_expires_after_creation")),
        sa.CheckConstraint("used_at IS NULL OR revoked_at IS NULL",
                           name=op.f("ck_contact_confirmation_used_or_revoked")),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"],
                                name=op.f("fk_contact_confirmation_patient_id_patient")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_confirmation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_contact_confirmation_token_hash")),
    )
    op.create_index("ix_contact_confirmation_patient_id", "contact_confirmation",
                    ["patient_id"])
    op.create_index("uq_contact_confirmation_one_open_per_kind", "contact_confirmation",
                    ["patient_id", "kind"], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))

    op.create_table(
        "passkey_credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("length(trim(name)) > 0",
                           name=op.f("ck_passkey_credential_name_not_blank")),
        sa.CheckConstraint("sign_count >= 0",
                           name=op.f("ck_passkey_credential_sign_count_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_passkey_credential_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_credential")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkey_credential_credential_id")),
    )
    op.create_index("ix_passkey_credential_user_id", "passkey_credential", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_passkey_credential_user_id", table_name="passkey_credential")
    op.drop_table("passkey_credential")
    op.drop_index("uq_contact_confirmation_one_open_per_kind", table_name="contact_confirmation")
    op.drop_index("ix_contact_confirmation_patient_id", table_name="contact_confirmation")
    op.drop_table("contact_confirmation")
    op.drop_index("ix_patient_revision_patient_id", table_name="patient_revision")
    op.drop_table("patient_revision")
    op.drop_index("ix_user_session_user_id", table_name="user_session")
    op.drop_table("user_session")
    op.execute("DELETE FROM delivery WHERE account_notice IN ('confirm_contact', 'factor_added')")
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_constraint("account_delivery_names_notice", type_="check")
        batch_op.create_check_constraint("account_delivery_names_notice",
                                         _account_notice_check(NOTICES_0014))
    with op.batch_alter_table("patient") as batch_op:
        batch_op.drop_column("discharged_at")
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.drop_constraint("patient_idle_in_range", type_="check")
        batch_op.drop_constraint("staff_idle_in_range", type_="check")
        for column in ("staff_mfa_required", "patient_idle_minutes", "staff_idle_minutes"):
            batch_op.drop_column(column)
