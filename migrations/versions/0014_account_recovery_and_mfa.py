"""Accounts a clinic can run by itself: password resets, staff MFA, staff invitations, and
account notices among the deliveries.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

Issue 12. ``password_reset`` (asked for by email or issued by the clinic; one open per
account), the authenticator secret and last accepted step on ``users`` with hashed
``recovery_code`` rows, ``staff_invitation`` (one open per address), and a fourth delivery
purpose, ``account``, whose rows name their notice.
"""
from alembic import op
import sqlalchemy as sa

from outcomes.models import UTCDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

OPEN = "used_at IS NULL AND revoked_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("mfa_enrolled_at", UTCDateTime(), nullable=True))
        batch_op.create_check_constraint("mfa_enrolment_complete",
                                         "(totp_secret IS NULL) = (mfa_enrolled_at IS NULL)")
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.add_column(sa.Column("account_notice", sa.String(length=32), nullable=True))
        batch_op.drop_constraint("purpose_known", type_="check")
        batch_op.create_check_constraint(
            "purpose_known", "purpose IN ('reminder', 'alert', 'escalation', 'account')")
        batch_op.drop_constraint("alert_delivery_names_alert", type_="check")
        batch_op.create_check_constraint(
            "alert_delivery_names_alert",
            "purpose NOT IN ('alert', 'escalation') OR alert_id IS NOT NULL")
        batch_op.create_check_constraint(
            "account_delivery_names_notice",
            "(purpose = 'account') = (account_notice IS NOT NULL) AND (account_notice IS NULL"
            " OR (account_notice IN ('password_reset', 'password_changed', 'factors_reset')"
            " AND user_id IS NOT NULL))")

    op.create_table(
        "password_reset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("expires_at > created_at",
                           name=op.f("ck_password_reset_expires_after_creation")),
        sa.CheckConstraint("used_at IS NULL OR revoked_at IS NULL",
                           name=op.f("ck_password_reset_used_or_revoked")),
        sa.ForeignKeyConstraint(["issued_by_id"], ["users.id"],
                                name=op.f("fk_password_reset_issued_by_id_users")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_password_reset_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_reset_token_hash")),
    )
    op.create_index("ix_password_reset_user_id", "password_reset", ["user_id"])
    op.create_index("uq_password_reset_one_open_per_user", "password_reset", ["user_id"],
                    unique=True, sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))

    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_recovery_code_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_code")),
    )
    op.create_index("ix_recovery_code_user_id", "recovery_code", ["user_id"])

    op.create_table(
        "staff_invitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("role IN ('clinician', 'admin')",
                           name=op.f("ck_staff_invitation_staff_role")),
        sa.CheckConstraint("email = lower(email)",
                           name=op.f("ck_staff_invitation_email_lower_case")),
        sa.CheckConstraint("email LIKE '%_@_%'", name=op.f("ck_staff_invitation_email_has_at")),
        sa.CheckConstraint("expires_at > created_at",
                           name=op.f("ck_staff_invitation_expires_after_creation")),
        sa.CheckConstraint("used_at IS NULL OR revoked_at IS NULL",
                           name=op.f("ck_staff_invitation_used_or_revoked")),
        sa.CheckConstraint("(used_at IS NULL) = (user_id IS NULL)",
                           name=op.f("ck_staff_invitation_used_names_account")),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"],
                                name=op.f("fk_staff_invitation_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"],
                                name=op.f("fk_staff_invitation_created_by_id_users")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_staff_invitation_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_invitation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_invitation_token_hash")),
    )
    op.create_index("ix_staff_invitation_clinic_id", "staff_invitation", ["clinic_id"])
    op.create_index("uq_staff_invitation_one_open_per_email", "staff_invitation", ["email"],
                    unique=True, sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index("uq_staff_invitation_one_open_per_email", table_name="staff_invitation")
    op.drop_index("ix_staff_invitation_clinic_id", table_name="staff_invitation")
    op.drop_table("staff_invitation")
    op.drop_index("ix_recovery_code_user_id", table_name="recovery_code")
    op.drop_table("recovery_code")
    op.drop_index("uq_password_reset_one_open_per_user", table_name="password_reset")
    op.drop_index("ix_password_reset_user_id", table_name="password_reset")
    op.drop_table("password_reset")
    op.execute("DELETE FROM delivery WHERE purpose = 'account'")
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_constraint("account_delivery_names_notice", type_="check")
        batch_op.drop_constraint("alert_delivery_names_alert", type_="check")
        batch_op.create_check_constraint("alert_delivery_names_alert",
                                         "purpose = 'reminder' OR alert_id IS NOT NULL")
        batch_op.drop_constraint("purpose_known", type_="check")
        batch_op.create_check_constraint("purpose_known",
                                         "purpose IN ('reminder', 'alert', 'escalation')")
        batch_op.drop_column("account_notice")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("mfa_enrolment_complete", type_="check")
        for column in ("mfa_enrolled_at", "totp_last_step", "totp_secret"):
            batch_op.drop_column(column)
