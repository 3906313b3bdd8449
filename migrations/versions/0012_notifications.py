"""Notifications: delivery rows, push subscriptions, a clinic's reminder and alert settings,
a patient's reminder choices.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

Issue 11 (docs/notifications.md). Every message sent is a ``delivery`` row whose unique key
names what it is, so a retry or a second worker sends nothing twice. Existing clinics get the
local-policy defaults (three reminders, quiet 21:00-09:00, escalation after 30 minutes);
existing patients keep reminders on with no channel chosen until they (or the clinic at
enrolment) choose one.
"""
import datetime as dt

from alembic import op
import sqlalchemy as sa

from outcomes.models import UTCDateTime

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic") as batch_op:
        batch_op.add_column(sa.Column("reminder_limit", sa.Integer(), nullable=False,
                                      server_default="3"))
        batch_op.add_column(sa.Column("quiet_from", sa.Time(), nullable=False,
                                      server_default=sa.text("'21:00:00'")))
        batch_op.add_column(sa.Column("quiet_until", sa.Time(), nullable=False,
                                      server_default=sa.text("'09:00:00'")))
        batch_op.add_column(sa.Column("on_call_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("escalation_minutes", sa.Integer(), nullable=False,
                                      server_default="30"))
        batch_op.create_check_constraint("reminder_limit_in_range",
                                         "reminder_limit BETWEEN 0 AND 10")
        batch_op.create_check_constraint("escalation_minutes_in_range",
                                         "escalation_minutes BETWEEN 1 AND 1440")
        batch_op.create_check_constraint("on_call_email_has_at",
                                         "on_call_email IS NULL OR on_call_email LIKE '%_@_%'")
    with op.batch_alter_table("patient") as batch_op:
        batch_op.add_column(sa.Column("contact_phone", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("reminders_enabled", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column("reminder_channels", sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))
        batch_op.create_check_constraint("contact_phone_e164",
                                         "contact_phone IS NULL OR contact_phone LIKE '+%'")
    # The server defaults were for the rows already there; the models set new rows' values.
    with op.batch_alter_table("clinic") as batch_op:
        for column in ("reminder_limit", "quiet_from", "quiet_until", "escalation_minutes"):
            batch_op.alter_column(column, server_default=None)
    with op.batch_alter_table("patient") as batch_op:
        for column in ("reminders_enabled", "reminder_channels"):
            batch_op.alter_column(column, server_default=None)

    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("instrument_key", sa.String(length=64), nullable=True),
        sa.Column("schedule", sa.String(length=16), nullable=True),
        sa.Column("occurrence_opens_at", UTCDateTime(), nullable=True),
        sa.Column("reminder_number", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("failed_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("receipt", sa.String(length=255), nullable=True),
        sa.CheckConstraint("purpose IN ('reminder', 'alert', 'escalation')",
                           name=op.f("ck_delivery_purpose_known")),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')",
                           name=op.f("ck_delivery_status_known")),
        sa.CheckConstraint("patient_id IS NULL OR user_id IS NULL",
                           name=op.f("ck_delivery_one_recipient")),
        sa.CheckConstraint("purpose = 'reminder' OR alert_id IS NOT NULL",
                           name=op.f("ck_delivery_alert_delivery_names_alert")),
        sa.CheckConstraint(
            "purpose <> 'reminder' OR (patient_id IS NOT NULL AND instrument_key IS NOT NULL"
            " AND schedule IS NOT NULL AND occurrence_opens_at IS NOT NULL"
            " AND reminder_number >= 1)", name=op.f("ck_delivery_reminder_names_occurrence")),
        sa.CheckConstraint("(status = 'sent') = (sent_at IS NOT NULL)",
                           name=op.f("ck_delivery_sent_has_time")),
        sa.CheckConstraint("(status = 'failed') = (failed_at IS NOT NULL)",
                           name=op.f("ck_delivery_failed_has_time")),
        sa.CheckConstraint("status = 'pending' OR next_attempt_at IS NULL",
                           name=op.f("ck_delivery_only_pending_waits")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_delivery_attempts_not_negative")),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"],
                                name=op.f("fk_delivery_alert_id_alert")),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"],
                                name=op.f("fk_delivery_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"],
                                name=op.f("fk_delivery_patient_id_patient")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_delivery_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint("key", name=op.f("uq_delivery_key")),
    )
    op.create_index("ix_delivery_pending", "delivery", ["status", "next_attempt_at"])
    op.create_index("ix_delivery_patient_occurrence", "delivery",
                    ["patient_id", "instrument_key", "schedule", "occurrence_opens_at"])
    op.create_index("ix_delivery_alert", "delivery", ["alert_id"])

    op.create_table(
        "push_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("endpoint LIKE 'https://%'",
                           name=op.f("ck_push_subscription_endpoint_is_https")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_push_subscription_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_subscription")),
        sa.UniqueConstraint("endpoint", name=op.f("uq_push_subscription_endpoint")),
    )
    op.create_index("ix_push_subscription_user_id", "push_subscription", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_push_subscription_user_id", table_name="push_subscription")
    op.drop_table("push_subscription")
    for index in ("ix_delivery_alert", "ix_delivery_patient_occurrence", "ix_delivery_pending"):
        op.drop_index(index, table_name="delivery")
    op.drop_table("delivery")
    with op.batch_alter_table("patient") as batch_op:
        batch_op.drop_constraint("contact_phone_e164", type_="check")
        for column in ("reminder_channels", "reminders_enabled", "contact_phone"):
            batch_op.drop_column(column)
    with op.batch_alter_table("clinic") as batch_op:
        for name in ("on_call_email_has_at", "escalation_minutes_in_range",
                     "reminder_limit_in_range"):
            batch_op.drop_constraint(name, type_="check")
        for column in ("escalation_minutes", "on_call_email", "quiet_until", "quiet_from",
                       "reminder_limit"):
            batch_op.drop_column(column)
