"""Typed SQLAlchemy 2 models.

Clinical invariants live in the schema as constraints, so no code path (or hand-written SQL)
can store, say, an assessment whose total and ``scorable`` disagree. Submitted assessments,
their answers and audit events are append-only: database triggers (see the migrations)
refuse UPDATE and DELETE on them.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("patient", "clinician", "admin")
STAFF_ROLES = ("clinician", "admin")
ASSESSMENT_SOURCES = ("patient", "transcribed")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | str) -> dt.datetime:
    """An aware UTC datetime from what a raw query returns (SQLite gives aggregates as text)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as UTC and always returns them aware.

    SQLite keeps no zone, so without this a value read back would be naive and compare
    wrongly with ``utcnow()``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC time is required")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Clinic(Base):
    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: Shown to patients on the crisis screen beside 988 and 911.
    crisis_phone: Mapped[str] = mapped_column(String(40))
    #: IANA zone used to show times to the clinic's people; everything is stored in UTC.
    timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("length(trim(name)) > 0", name="name_not_blank"),
        CheckConstraint("length(trim(crisis_phone)) > 0", name="crisis_phone_not_blank"),
    )


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    #: Stored lower-case; the login form lower-cases what it is given.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    patient: Mapped[Patient | None] = relationship(
        back_populates="user", foreign_keys="Patient.user_id", uselist=False
    )

    __table_args__ = (
        CheckConstraint("role IN ('patient', 'clinician', 'admin')", name="role_known"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("email LIKE '%_@_%'", name="email_has_at"),
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses sessions of inactive users
        return self.active

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


class Patient(Base):
    """A person enrolled at a clinic; gets a login once they accept their invitation."""

    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    #: The clinic's own identifier, such as a medical record number.
    identifier: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    #: Contact address given at enrolment, offered as the login when the invitation is accepted.
    contact_email: Mapped[str | None] = mapped_column(String(254))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    assigned_clinician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship()
    user: Mapped[User | None] = relationship(back_populates="patient", foreign_keys=[user_id])
    assigned_clinician: Mapped[User | None] = relationship(foreign_keys=[assigned_clinician_id])

    __table_args__ = (
        UniqueConstraint("clinic_id", "identifier", name="uq_patient_clinic_identifier"),
        CheckConstraint("length(trim(identifier)) > 0", name="identifier_not_blank"),
        CheckConstraint("length(trim(display_name)) > 0", name="display_name_not_blank"),
    )


class Invitation(Base):
    """A one-time link for a patient to set their password. Only a hash of the token is kept."""

    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    patient: Mapped[Patient] = relationship()

    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        CheckConstraint("used_at IS NULL OR revoked_at IS NULL", name="used_or_revoked"),
    )


class PlanEntry(Base):
    """One questionnaire in a patient's measurement plan.

    ``every_days`` NULL means once (at baseline); otherwise it recurs at that interval, first
    due ``starts_after_days`` after enrolment.
    """

    __tablename__ = "plan_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    instrument_key: Mapped[str] = mapped_column(String(64))
    every_days: Mapped[int | None] = mapped_column(Integer)
    starts_after_days: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        UniqueConstraint("patient_id", "instrument_key", name="uq_plan_entry_patient_instrument"),
        CheckConstraint("every_days IS NULL OR every_days BETWEEN 1 AND 365", name="interval"),
        CheckConstraint("starts_after_days BETWEEN 0 AND 365", name="start_offset"),
    )


class Assessment(Base):
    """One submitted questionnaire with the scores computed at submission. Never updated:
    a correction is a new row whose ``amends_id`` names this one."""

    __tablename__ = "assessment"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    instrument_key: Mapped[str] = mapped_column(String(64))
    instrument_version: Mapped[str] = mapped_column(String(32))
    #: When the patient answered (for a transcribed paper form, the date on the form).
    administered_at: Mapped[dt.datetime]
    #: When the record reached the server.
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    entered_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: ``patient`` (answered on their own device) or ``transcribed`` (a clinician entered a
    #: paper form).
    source: Mapped[str] = mapped_column(String(16))
    #: Makes a repeated submission (double tap, retry) store nothing new.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    amends_id: Mapped[int | None] = mapped_column(ForeignKey("assessment.id"))
    amendment_reason: Mapped[str | None] = mapped_column(Text)

    # The scores, exactly as the instruments package computed them at submission.
    scorable: Mapped[bool] = mapped_column(Boolean)
    total: Mapped[int | None] = mapped_column(Integer)
    prorated: Mapped[bool] = mapped_column(Boolean, default=False)
    band: Mapped[str | None] = mapped_column(String(32))
    above_cutpoint: Mapped[bool | None] = mapped_column(Boolean)
    provisional_diagnosis: Mapped[bool | None] = mapped_column(Boolean)
    subscales: Mapped[dict[str, Any]] = mapped_column(default=dict)
    flags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    missing_items: Mapped[list[Any]] = mapped_column(default=list)

    patient: Mapped[Patient] = relationship()
    entered_by: Mapped[User] = relationship()
    answers: Mapped[list[AssessmentAnswer]] = relationship(
        order_by="AssessmentAnswer.item_number", lazy="selectin"
    )
    amends: Mapped[Assessment | None] = relationship(remote_side=[id])

    __table_args__ = (
        CheckConstraint("source IN ('patient', 'transcribed')", name="source_known"),
        CheckConstraint("(total IS NOT NULL) = scorable", name="total_iff_scorable"),
        CheckConstraint("total IS NULL OR total >= 0", name="total_not_negative"),
        CheckConstraint("NOT prorated OR scorable", name="prorated_only_if_scorable"),
        CheckConstraint("administered_at <= submitted_at", name="administered_before_submitted"),
        CheckConstraint(
            "(amends_id IS NULL) = (amendment_reason IS NULL)", name="amendment_has_reason"
        ),
        CheckConstraint(
            "amendment_reason IS NULL OR length(trim(amendment_reason)) > 0",
            name="amendment_reason_not_blank",
        ),
        Index("ix_assessment_patient_instrument_time", "patient_id", "instrument_key",
              "administered_at"),
    )


class AssessmentAnswer(Base):
    """One answered item. Unanswered items have no row (they are listed in
    ``Assessment.missing_items``)."""

    __tablename__ = "assessment_answer"

    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id"), primary_key=True)
    item_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("item_number >= 1", name="item_number_positive"),
        # The instrument's own range is checked before storing; this is the outer fence.
        CheckConstraint("value BETWEEN 0 AND 10", name="value_in_range"),
    )


class Alert(Base):
    """A safety signal that a clinician must acknowledge."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessment.id"))
    #: The flag that raised it, e.g. ``suicide_risk``.
    kind: Mapped[str] = mapped_column(String(64))
    #: The flag's value, e.g. ``positive`` or ``unknown``.
    value: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    #: True when the patient was shown crisis resources.
    crisis: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship()
    assessment: Mapped[Assessment | None] = relationship()
    acknowledged_by: Mapped[User | None] = relationship()

    __table_args__ = (
        UniqueConstraint("assessment_id", "kind", name="uq_alert_assessment_kind"),
        CheckConstraint(
            "(acknowledged_at IS NULL) = (acknowledged_by_id IS NULL)"
            " AND (acknowledged_at IS NULL) = (acknowledgement_note IS NULL)",
            name="acknowledgement_complete",
        ),
        Index("ix_alert_open", "patient_id", "acknowledged_at"),
    )

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class AuditEvent(Base):
    """Who did what to which record, when and from where. Append-only."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        Index("ix_audit_event_patient_time", "patient_id", "occurred_at"),
        Index("ix_audit_event_clinic_time", "clinic_id", "occurred_at"),
    )
