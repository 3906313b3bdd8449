"""Typed SQLAlchemy 2 models.

Clinical invariants live in the schema as constraints, so no code path (or hand-written SQL)
can store, say, an assessment whose total and ``scorable`` disagree. Submitted assessments,
their answers and audit events are append-only: database triggers (see the migrations)
refuse UPDATE and DELETE on them.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from . import clock

INDICATIONS = ("ptsd", "depression", "anxiety", "other")
COURSE_STATUSES = ("planned", "active", "completed", "stopped")
#: How a plan entry is timed: once before the first infusion; within 24 hours before each
#: infusion; the day after each infusion; or at a regular interval.
SCHEDULES = ("baseline", "before_infusion", "after_infusion", "recurring")
STAFF_ROLES = ("clinician", "admin")
#: Local policy defaults of a clinic's reminder settings (services.reminder_rules): reminders
#: per questionnaire occurrence, and the quiet hours (clinic wall time) in which none is sent.
DEFAULT_REMINDER_LIMIT = 3
DEFAULT_QUIET_FROM = dt.time(21, 0)
DEFAULT_QUIET_UNTIL = dt.time(9, 0)
#: Local policy default: minutes a crisis alert may stay unacknowledged before the clinic's
#: admins are told.
DEFAULT_ESCALATION_MINUTES = 30
#: The name messages are sent under until a clinic sets its own.
DEFAULT_SENDER_NAME = "Outcomes"
#: Bounds of a clinic's idle timeouts, in minutes. The upper bound is NIST SP 800-63B's for
#: AAL2 (re-authentication after 30 minutes of inactivity, section 4.2.3); the lower one is
#: local policy (shorter would end sessions while a questionnaire is being read).
IDLE_MINUTES_MIN = 5
IDLE_MINUTES_MAX = 30


def utcnow() -> dt.datetime:
    """The clock's current time, aware UTC: the default of every timestamp column.

    Read through the clock module at each call, so a test that pins ``clock.utcnow`` pins the
    columns' defaults (and every caller of this name) too."""
    return clock.utcnow()


def new_session_token() -> str:
    return secrets.token_hex(16)


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
    #: What patients are told, after a disclosure opens an alert, about when the care team
    #: responds ("Someone from the clinic will call you by the end of the next working
    #: day."). NULL: the clinic has set nothing, so patients are promised nothing.
    alert_response_wording: Mapped[str | None] = mapped_column(String(300))
    #: Reminders per questionnaire occurrence; 0 sends none.
    reminder_limit: Mapped[int] = mapped_column(Integer, default=DEFAULT_REMINDER_LIMIT)
    #: No reminder is sent from ``quiet_from`` to ``quiet_until``, clinic wall time (the span
    #: may pass midnight; equal times mean no quiet hours).
    quiet_from: Mapped[dt.time] = mapped_column(Time, default=DEFAULT_QUIET_FROM)
    quiet_until: Mapped[dt.time] = mapped_column(Time, default=DEFAULT_QUIET_UNTIL)
    #: Where crisis alerts go besides the patient's clinician (a shared mailbox, a pager's
    #: email gateway); NULL for none.
    on_call_email: Mapped[str | None] = mapped_column(String(254))
    #: Minutes a crisis alert may stay unacknowledged before the clinic's admins are told.
    escalation_minutes: Mapped[int] = mapped_column(Integer, default=DEFAULT_ESCALATION_MINUTES)
    #: The name messages are sent under (email From, SMS and push title): a clinic may not want
    #: its specialty on a patient's lock screen.
    message_sender_name: Mapped[str] = mapped_column(String(60), default=DEFAULT_SENDER_NAME)
    #: Minutes without activity before a staff or a patient session ends; NULL: the server's
    #: STAFF_IDLE_MINUTES / PATIENT_IDLE_MINUTES.
    staff_idle_minutes: Mapped[int | None] = mapped_column(Integer)
    patient_idle_minutes: Mapped[int | None] = mapped_column(Integer)
    #: The clinic requires a second factor of its staff even where the server does not
    #: (production always does: services.mfa.second_factor_required).
    staff_mfa_required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("length(trim(name)) > 0", name="name_not_blank"),
        CheckConstraint("length(trim(crisis_phone)) > 0", name="crisis_phone_not_blank"),
        CheckConstraint("alert_response_wording IS NULL"
                        " OR length(trim(alert_response_wording)) > 0",
                        name="alert_response_wording_not_blank"),
        CheckConstraint("reminder_limit BETWEEN 0 AND 10", name="reminder_limit_in_range"),
        CheckConstraint("escalation_minutes BETWEEN 1 AND 1440",
                        name="escalation_minutes_in_range"),
        CheckConstraint("on_call_email IS NULL OR on_call_email LIKE '%_@_%'",
                        name="on_call_email_has_at"),
        CheckConstraint("length(trim(message_sender_name)) > 0",
                        name="message_sender_name_not_blank"),
        CheckConstraint(f"staff_idle_minutes IS NULL OR staff_idle_minutes BETWEEN "
                        f"{IDLE_MINUTES_MIN} AND {IDLE_MINUTES_MAX}", name="staff_idle_in_range"),
        CheckConstraint(f"patient_idle_minutes IS NULL OR patient_idle_minutes BETWEEN "
                        f"{IDLE_MINUTES_MIN} AND {IDLE_MINUTES_MAX}",
                        name="patient_idle_in_range"),
    )


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    #: Stored lower-case; the login form lower-cases what it is given.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    #: Carried by a sign-in awaiting its second factor (services.mfa.account_with_token):
    #: changing it (services.user_sessions.end_sessions) ends such a sign-in too. Signed-in
    #: sessions are rows of their own (UserSession).
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The authenticator app's shared secret (RFC 6238), encrypted (services.mfa); NULL until
    #: the user enrols one.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    #: The 30-second step of the last code accepted, so a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    mfa_enrolled_at: Mapped[dt.datetime | None]

    clinic: Mapped[Clinic] = relationship(lazy="joined")
    patient: Mapped[Patient | None] = relationship(
        back_populates="user", foreign_keys="Patient.user_id", uselist=False
    )

    __table_args__ = (
        CheckConstraint("role IN ('patient', 'clinician', 'admin')", name="role_known"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("email LIKE '%_@_%'", name="email_has_at"),
        CheckConstraint("(totp_secret IS NULL) = (mfa_enrolled_at IS NULL)",
                        name="mfa_enrolment_complete"),
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses sessions of inactive users
        return self.active

    def get_id(self) -> str:
        # Flask-Login's id: the session's row, not the id, says whether it is open
        # (services.accounts.load_user).
        return str(self.id)

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
    #: A mobile number for text reminders, in E.164 (outcomes.channels.contacts).
    contact_phone: Mapped[str | None] = mapped_column(String(16))
    #: The patient's own choice: reminders on or off, and through which channels (names of
    #: outcomes.channels.CHANNELS).
    reminders_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    reminder_channels: Mapped[list[Any]] = mapped_column(default=list)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    assigned_clinician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: When the clinic discharged the patient (no reminders, nothing due; the history is kept
    #: and exported); NULL while under the clinic's care. Re-admission clears it.
    discharged_at: Mapped[dt.datetime | None]

    clinic: Mapped[Clinic] = relationship()
    user: Mapped[User | None] = relationship(back_populates="patient", foreign_keys=[user_id])
    assigned_clinician: Mapped[User | None] = relationship(foreign_keys=[assigned_clinician_id])

    __table_args__ = (
        UniqueConstraint("clinic_id", "identifier", name="uq_patient_clinic_identifier"),
        CheckConstraint("length(trim(identifier)) > 0", name="identifier_not_blank"),
        CheckConstraint("length(trim(display_name)) > 0", name="display_name_not_blank"),
        CheckConstraint("contact_phone IS NULL OR contact_phone LIKE '+%'",
                        name="contact_phone_e164"),
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
        # One live link per patient, even when two are issued at once.
        Index("uq_invitation_one_open_per_patient", "patient_id", unique=True,
              sqlite_where=text("used_at IS NULL AND revoked_at IS NULL"),
              postgresql_where=text("used_at IS NULL AND revoked_at IS NULL")),
    )


class HeldAnswers(Base):
    """A questionnaire sent after its patient's session had ended, kept for a short while so
    that, once signed in again, they find their answers back on the form. Not a record:
    nothing is stored as an assessment until the patient sends the form again."""

    __tablename__ = "held_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: One held form per user: a newer one replaces it.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         unique=True)
    instrument_key: Mapped[str] = mapped_column(String(32))
    #: The answers in item order, null where none was given.
    answers: Mapped[list[Any]] = mapped_column()
    #: The form's own submission key, so sending it again stays the same submission.
    submission_key: Mapped[str] = mapped_column(String(64))
    held_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]

    __table_args__ = (
        CheckConstraint("expires_at > held_at", name="expires_after_held"),
    )


class PlanEntry(Base):
    """One questionnaire timing in a patient's measurement plan (see ``SCHEDULES``).

    A recurring entry repeats every ``every_days`` from the first infusion (from enrolment
    when there is no course) until ``follow_up_weeks`` after the course ends, then every
    ``then_every_days`` (never, when that is NULL).
    """

    __tablename__ = "plan_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    instrument_key: Mapped[str] = mapped_column(String(64))
    schedule: Mapped[str] = mapped_column(String(16))
    every_days: Mapped[int | None] = mapped_column(Integer)
    follow_up_weeks: Mapped[int | None] = mapped_column(Integer)
    then_every_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        UniqueConstraint("patient_id", "instrument_key", "schedule",
                         name="uq_plan_entry_patient_instrument_schedule"),
        CheckConstraint(
            "schedule IN ('baseline', 'before_infusion', 'after_infusion', 'recurring')",
            name="schedule_known"),
        CheckConstraint("(schedule = 'recurring') = (every_days IS NOT NULL)",
                        name="interval_iff_recurring"),
        CheckConstraint("every_days IS NULL OR every_days BETWEEN 1 AND 365", name="interval"),
        CheckConstraint("follow_up_weeks IS NULL OR follow_up_weeks BETWEEN 0 AND 104",
                        name="follow_up"),
        CheckConstraint("then_every_days IS NULL OR then_every_days BETWEEN 1 AND 365",
                        name="later_interval"),
    )


class Course(Base):
    """A treatment course: a planned series of infusions for one indication."""

    __tablename__ = "course"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    indication: Mapped[str] = mapped_column(String(16))
    planned_infusions: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    #: The next booked infusion, if any: the PHQ-9 is due in the 24 hours before it.
    next_infusion_at: Mapped[dt.datetime | None]
    ended_on: Mapped[dt.date | None] = mapped_column(Date)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    infusions: Mapped[list[Infusion]] = relationship(order_by="Infusion.number",
                                                     back_populates="course")

    __table_args__ = (
        CheckConstraint("indication IN ('ptsd', 'depression', 'anxiety', 'other')",
                        name="indication_known"),
        CheckConstraint("status IN ('planned', 'active', 'completed', 'stopped')",
                        name="status_known"),
        CheckConstraint("planned_infusions BETWEEN 1 AND 24", name="planned_infusions"),
        CheckConstraint("(ended_on IS NOT NULL) = (status IN ('completed', 'stopped'))",
                        name="ended_iff_finished"),
        # One open course per patient at a time.
        Index("uq_course_one_open_per_patient", "patient_id", unique=True,
              sqlite_where=text("status IN ('planned', 'active')"),
              postgresql_where=text("status IN ('planned', 'active')")),
    )


class Infusion(Base):
    """The k-th infusion of a course. What was given is in its versions: a correction adds a
    version and the earlier ones stay."""

    __tablename__ = "infusion"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    course: Mapped[Course] = relationship(back_populates="infusions")
    versions: Mapped[list[InfusionVersion]] = relationship(
        order_by="InfusionVersion.version", lazy="selectin")

    __table_args__ = (
        UniqueConstraint("course_id", "number", name="uq_infusion_course_number"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    @property
    def current(self) -> InfusionVersion:
        return self.versions[-1]


class InfusionVersion(Base):
    """One version of an infusion record. Append-only; physiological bounds are constraints."""

    __tablename__ = "infusion_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    infusion_id: Mapped[int] = mapped_column(ForeignKey("infusion.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    administered_at: Mapped[dt.datetime]
    weight_kg: Mapped[float] = mapped_column(Float)
    dose_mg_per_kg: Mapped[float] = mapped_column(Float)
    total_dose_mg: Mapped[float] = mapped_column(Float)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    systolic_before: Mapped[int] = mapped_column(Integer)
    diastolic_before: Mapped[int] = mapped_column(Integer)
    heart_rate_before: Mapped[int] = mapped_column(Integer)
    spo2_before: Mapped[int] = mapped_column(Integer)
    systolic_peak: Mapped[int | None] = mapped_column(Integer)
    diastolic_peak: Mapped[int | None] = mapped_column(Integer)
    heart_rate_peak: Mapped[int | None] = mapped_column(Integer)
    spo2_peak: Mapped[int | None] = mapped_column(Integer)
    systolic_after: Mapped[int] = mapped_column(Integer)
    diastolic_after: Mapped[int] = mapped_column(Integer)
    heart_rate_after: Mapped[int] = mapped_column(Integer)
    spo2_after: Mapped[int] = mapped_column(Integer)
    #: Keys from ``services.infusions.SIDE_EFFECTS``.
    side_effects: Mapped[list[Any]] = mapped_column(default=list)
    #: The clinician's dissociation rating: a local 0-4 rating, not a validated scale.
    dissociation_rating: Mapped[int | None] = mapped_column(Integer)
    adverse_events: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    correction_reason: Mapped[str | None] = mapped_column(Text)

    recorded_by: Mapped[User] = relationship()

    __table_args__ = (
        UniqueConstraint("infusion_id", "version", name="uq_infusion_version_number"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("(version = 1) = (correction_reason IS NULL)",
                        name="correction_has_reason"),
        CheckConstraint("weight_kg BETWEEN 20 AND 350", name="weight"),
        CheckConstraint("dose_mg_per_kg > 0 AND dose_mg_per_kg <= 3", name="dose_per_kg"),
        CheckConstraint("total_dose_mg > 0 AND total_dose_mg <= 1000", name="total_dose"),
        CheckConstraint("duration_minutes BETWEEN 1 AND 480", name="duration"),
        CheckConstraint(
            "systolic_before BETWEEN 50 AND 300 AND systolic_after BETWEEN 50 AND 300"
            " AND (systolic_peak IS NULL OR systolic_peak BETWEEN 50 AND 300)",
            name="systolic"),
        CheckConstraint(
            "diastolic_before BETWEEN 20 AND 200 AND diastolic_after BETWEEN 20 AND 200"
            " AND (diastolic_peak IS NULL OR diastolic_peak BETWEEN 20 AND 200)",
            name="diastolic"),
        CheckConstraint(
            "heart_rate_before BETWEEN 20 AND 250 AND heart_rate_after BETWEEN 20 AND 250"
            " AND (heart_rate_peak IS NULL OR heart_rate_peak BETWEEN 20 AND 250)",
            name="heart_rate"),
        CheckConstraint(
            "spo2_before BETWEEN 50 AND 100 AND spo2_after BETWEEN 50 AND 100"
            " AND (spo2_peak IS NULL OR spo2_peak BETWEEN 50 AND 100)",
            name="spo2"),
        CheckConstraint("dissociation_rating IS NULL OR dissociation_rating BETWEEN 0 AND 4",
                        name="dissociation_rating"),
    )


class FormSubmission(Base):
    """A staff form whose record was stored, found by the key the form carried: the same
    form sent again (a double tap, a retry, two copies at once) answers with that record
    instead of storing another. See ``services.submissions``."""

    __tablename__ = "form_submission"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 of the user, the kind of form and the key the form carried: a key is one
    #: user's, for one kind of form. Unique: the constraint decides which copy stores.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: What the form does (``services.submissions.KINDS``), e.g. ``infusion.record``.
    kind: Mapped[str] = mapped_column(String(32))
    #: SHA-256 of the values the form asked for: a copy with other values is told so.
    values_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: The record the form stored or changed (a course, an infusion, a patient); set in the
    #: transaction that claims the key, once the record has its id.
    object_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("kind IN ('course.start', 'course.update', 'infusion.record', "
                        "'infusion.correct', 'patient.enrol', 'plan.update')",
                        name="kind_known"),
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
        # A record is corrected once; a further correction amends the correction.
        Index("uq_assessment_amends_once", "amends_id", unique=True,
              sqlite_where=text("amends_id IS NOT NULL"),
              postgresql_where=text("amends_id IS NOT NULL")),
    )


class AssessmentAnswer(Base):
    """One answered item. Unanswered items have no row (they are listed in
    ``Assessment.missing_items``)."""

    __tablename__ = "assessment_answer"

    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id"), primary_key=True)
    item_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        # The value is checked against the definition's options before storing (the engine
        # refuses any other), so a definition may use a wider scale than any before it.
        CheckConstraint("item_number >= 1", name="item_number_positive"),
    )


class Alert(Base):
    """A safety signal that a clinician must acknowledge."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessment.id"))
    #: For risk seen in answers that could not be stored (an incomplete form): the form's
    #: submission key, so a repeat raises nothing new.
    submission_key: Mapped[str | None] = mapped_column(String(64))
    #: The questionnaire whose answers raised it (also for a form that was not stored): one
    #: disclosure keeps one alert per patient, questionnaire and kind while it is open.
    instrument_key: Mapped[str] = mapped_column(String(64))
    #: The flag that raised it, e.g. ``suicide_risk``.
    kind: Mapped[str] = mapped_column(String(64))
    #: The flag's value, e.g. ``positive`` or ``unknown``.
    value: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    #: What the patient said: for a flag, the answers that raised it by item number
    #: (``{"9": 2}``; None for a blank); for a change, ``{"baseline": 20, "current": 31}``.
    #: Empty for alerts raised before it was recorded.
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: True when the patient was shown crisis resources.
    crisis: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship()
    assessment: Mapped[Assessment | None] = relationship()
    acknowledged_by: Mapped[User | None] = relationship()
    #: Later records that repeated the disclosure while the alert was open, oldest first.
    also_seen_in: Mapped[list[Assessment]] = relationship(
        secondary="alert_assessment", order_by="Assessment.id", viewonly=True)

    __table_args__ = (
        UniqueConstraint("assessment_id", "kind", name="uq_alert_assessment_kind"),
        UniqueConstraint("submission_key", "kind", name="uq_alert_submission_kind"),
        CheckConstraint("assessment_id IS NULL OR submission_key IS NULL",
                        name="one_origin"),
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


class AlertAssessment(Base):
    """A record that repeated a disclosure whose alert was still open (the same form sent
    again, an incomplete form then completed, a correction keeping the answer): it is linked
    to that alert instead of opening another. Append-only."""

    __tablename__ = "alert_assessment"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id"), primary_key=True,
                                               index=True)
    linked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who did what to which record, when and from where. Append-only and chained by keyed
    hashes (see ``audit_chain``): rows are written at commit, in order, under a lock."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    #: The version of the object the action produced or read (e.g. an infusion record's).
    object_version: Mapped[int | None] = mapped_column(Integer)
    #: For a change: the values before and after it.
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Why, when the action takes a reason (a correction).
    reason: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The previous row's ``row_hash`` (zeros for the first row).
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: Which audit key signed the row (``AUDIT_KEYS``); ``sha256`` for rows written before
    #: the chain was keyed, hashed with plain SHA-256.
    key_id: Mapped[str] = mapped_column(String(32))
    #: HMAC-SHA256, under the key ``key_id`` names, of this row's content and ``prev_hash``.
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_audit_event_patient_time", "patient_id", "occurred_at"),
        Index("ix_audit_event_clinic_time", "clinic_id", "occurred_at"),
    )


class PatientSummary(Base):
    """One row per patient for the dashboard, kept current by ``services.summaries`` in the
    same transaction as every change it depends on, so the dashboard reads one row per
    patient however long their history. The scores are in ``MeasureSummary``."""

    __tablename__ = "patient_summary"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    open_alerts: Mapped[int] = mapped_column(Integer, default=0)
    #: The earliest day a questionnaire of the plan is (or becomes) due and not yet done.
    next_due_on: Mapped[dt.date | None] = mapped_column(Date)
    course_status: Mapped[str | None] = mapped_column(String(16))
    infusions_done: Mapped[int] = mapped_column(Integer, default=0)
    infusions_planned: Mapped[int | None] = mapped_column(Integer)
    next_infusion_at: Mapped[dt.datetime | None]
    last_activity_at: Mapped[dt.datetime | None]

    patient: Mapped[Patient] = relationship()

    __table_args__ = (
        Index("ix_patient_summary_clinic_alerts", "clinic_id", "open_alerts"),
        Index("ix_patient_summary_clinic_due", "clinic_id", "next_due_on"),
        Index("ix_patient_summary_clinic_activity", "clinic_id", "last_activity_at"),
    )


class MeasureSummary(Base):
    """One row per patient and measure that has a scorable total (every measure, not only the
    headline ones, so a definition may change the headline with nothing to recompute): its
    reference and latest totals and whether the latest meets an improvement or a worsening
    threshold against the reference. Kept current with ``PatientSummary``."""

    __tablename__ = "patient_measure_summary"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    #: The measure's name (``instruments.Instrument.measure``), e.g. "PCL-5".
    measure: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    #: The reference's total (services.baseline) and when it was given.
    baseline: Mapped[int] = mapped_column(Integer)
    baseline_at: Mapped[dt.datetime]
    #: What ``baseline`` is: "baseline", the course's pre-treatment score, or "since first",
    #: the patient's first score.
    reference_kind: Mapped[str] = mapped_column(String(16))
    latest: Mapped[int] = mapped_column(Integer)
    latest_at: Mapped[dt.datetime]
    #: An improvement threshold (instruments package) met by the latest total.
    improving: Mapped[bool] = mapped_column(Boolean)
    #: A worsening threshold met by the latest total.
    worsening: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        CheckConstraint("reference_kind IN ('baseline', 'since first')",
                        name="reference_kind_known"),
        # The dashboard's improving filters: a clinic's rows of the headline measures.
        Index("ix_patient_measure_summary_clinic_measure", "clinic_id", "measure", "improving"),
    )


class JobRun(Base):
    """A scheduled job's run that committed (outcomes/jobs, docs/jobs.md): written in the
    run's own transaction, so whatever the run changed and this row stand or fall together,
    and a period whose run committed is never run again, by a retry or by another worker."""

    __tablename__ = "job_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The job's name in the registry (``outcomes.jobs.scheduled.JOBS``).
    job: Mapped[str] = mapped_column(String(64))
    #: The time the run was scheduled for, which names its period.
    due_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("job", "due_at", name="uq_job_run_job_due_at"),)


#: What a delivery is for: a patient's questionnaire reminder, a crisis alert to the
#: patient's clinician or the clinic's on-call address, its escalation to the admins, or a
#: notice about the recipient's own account.
DELIVERY_PURPOSES = ("reminder", "alert", "escalation", "account")
#: What an account delivery says (issue 12): a password-reset link, that the password was
#: changed, that an admin reset the account's sign-in factors, a link confirming a new
#: contact address, that a sign-in factor was added, that a contact address was changed.
ACCOUNT_NOTICES = ("password_reset", "password_changed", "factors_reset", "confirm_contact",
                   "factor_added", "contact_changed")
#: pending: written, not yet tried (or waiting for its retry); sent: the channel's server
#: took it; failed: given up after the last retry, or refused for good. Never deleted.
DELIVERY_STATUSES = ("pending", "sent", "failed")


class Delivery(Base):
    """One message to one recipient through one channel (issue 11, docs/notifications.md).

    ``key`` names what the message is (for a reminder: the patient's occurrence, the
    reminder's number and the channel), so writing the same delivery twice — a retry, a second
    worker, a restarted one — meets the unique constraint and sends nothing more. The message
    itself is never stored: it is fixed wording built again at each try, with no health data.
    """

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    purpose: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    #: The recipient: a patient (reminders) or a staff account (alerts); for the clinic's
    #: on-call address, neither.
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: The alert an alert or escalation delivery is about.
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"))
    #: What an account delivery says (``ACCOUNT_NOTICES``).
    account_notice: Mapped[str | None] = mapped_column(String(32))
    #: For a reminder: which occurrence of the schedule (services.schedule.Occurrence) and
    #: which reminder of it, counting from 1.
    instrument_key: Mapped[str | None] = mapped_column(String(64))
    schedule: Mapped[str | None] = mapped_column(String(16))
    occurrence_opens_at: Mapped[dt.datetime | None]
    reminder_number: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: When the next try may be made (retries back off); NULL once sent or failed.
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
    #: The last failure's kind (an exception's class name: never its text, which may hold an
    #: address).
    last_error: Mapped[str | None] = mapped_column(String(64))
    #: The channel server's reference for the message (Message-ID, push location, SMS id).
    receipt: Mapped[str | None] = mapped_column(String(255))

    alert: Mapped[Alert | None] = relationship()

    __table_args__ = (
        CheckConstraint(f"purpose IN {DELIVERY_PURPOSES}", name="purpose_known"),
        CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="status_known"),
        CheckConstraint("patient_id IS NULL OR user_id IS NULL", name="one_recipient"),
        CheckConstraint("purpose NOT IN ('alert', 'escalation') OR alert_id IS NOT NULL",
                        name="alert_delivery_names_alert"),
        CheckConstraint("(purpose = 'account') = (account_notice IS NOT NULL)"
                        " AND (account_notice IS NULL OR (account_notice IN "
                        f"{ACCOUNT_NOTICES} AND user_id IS NOT NULL))",
                        name="account_delivery_names_notice"),
        CheckConstraint(
            "purpose <> 'reminder' OR (patient_id IS NOT NULL AND instrument_key IS NOT NULL"
            " AND schedule IS NOT NULL AND occurrence_opens_at IS NOT NULL"
            " AND reminder_number >= 1)", name="reminder_names_occurrence"),
        CheckConstraint("(status = 'sent') = (sent_at IS NOT NULL)", name="sent_has_time"),
        CheckConstraint("(status = 'failed') = (failed_at IS NOT NULL)",
                        name="failed_has_time"),
        CheckConstraint("status = 'pending' OR next_attempt_at IS NULL",
                        name="only_pending_waits"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_delivery_pending", "status", "next_attempt_at"),
        Index("ix_delivery_patient_occurrence", "patient_id", "instrument_key", "schedule",
              "occurrence_opens_at"),
        Index("ix_delivery_alert", "alert_id"),
    )


class PushSubscription(Base):
    """A browser's web-push subscription (RFC 8030/8291) for a signed-in account; removed
    when the push service says it is gone (404/410)."""

    __tablename__ = "push_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    endpoint: Mapped[str] = mapped_column(String(2048), unique=True)
    #: The subscription's public key (P-256, base64url) and auth secret.
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("endpoint LIKE 'https://%'", name="endpoint_is_https"),
    )


class QuestionnaireLink(Base):
    """A reminder's link: single use, short-lived, stored hashed; it signs the patient in for
    one questionnaire alone (issue 11 item 4). Everything else still asks for the password."""

    __tablename__ = "questionnaire_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 of the token in the link (the token itself is never stored).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    instrument_key: Mapped[str] = mapped_column(String(64))
    #: The delivery whose message carried it.
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]

    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
    )


class PasswordReset(Base):
    """A single-use, short-lived link to choose a new password (issue 12): asked for by email
    ("Forgot your password?") or issued by the clinic from a patient's page. Only a hash of
    the token is kept; issuing one revokes any earlier open one of the account."""

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The staff member who issued it from the patient's page; NULL when asked for by email.
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        CheckConstraint("used_at IS NULL OR revoked_at IS NULL", name="used_or_revoked"),
        Index("uq_password_reset_one_open_per_user", "user_id", unique=True,
              sqlite_where=text("used_at IS NULL AND revoked_at IS NULL"),
              postgresql_where=text("used_at IS NULL AND revoked_at IS NULL")),
    )


class RecoveryCode(Base):
    """One of a staff member's one-time recovery codes for when the authenticator is lost
    (issue 12), stored hashed; a new set replaces the old."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None]


class StaffInvitation(Base):
    """An admin's one-time link inviting a clinician or admin to the clinic (issue 12): the
    invitee chooses their password (and enrols MFA) through it. Only a hash of the token is
    kept; one open invitation per address."""

    __tablename__ = "staff_invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    #: The account made when it was used.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    clinic: Mapped[Clinic] = relationship()

    __table_args__ = (
        CheckConstraint(f"role IN {STAFF_ROLES}", name="staff_role"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("email LIKE '%_@_%'", name="email_has_at"),
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        CheckConstraint("used_at IS NULL OR revoked_at IS NULL", name="used_or_revoked"),
        CheckConstraint("(used_at IS NULL) = (user_id IS NULL)", name="used_names_account"),
        Index("uq_staff_invitation_one_open_per_email", "email", unique=True,
              sqlite_where=text("used_at IS NULL AND revoked_at IS NULL"),
              postgresql_where=text("used_at IS NULL AND revoked_at IS NULL")),
    )


#: Why a session ended (UserSession.ended_reason).
SESSION_END_REASONS = ("signed_out", "ended_by_user", "ended_by_admin", "signed_out_everywhere",
                       "password_changed", "password_reset", "factors_reset", "deactivated",
                       "timed_out")


class UserSession(Base):
    """One signed-in session of an account (issue 12 item 3), checked on every request, so
    ending it here ends it on every worker and host at once. The session cookie holds a random
    secret; only its SHA-256 is kept."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: A short description of the browser for the session list ("Chrome on Android"), from its
    #: User-Agent; and the address it signed in from.
    device: Mapped[str] = mapped_column(String(80))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    ended_at: Mapped[dt.datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        CheckConstraint("(ended_at IS NULL) = (ended_reason IS NULL)", name="ended_has_reason"),
        CheckConstraint(f"ended_reason IS NULL OR ended_reason IN {SESSION_END_REASONS}",
                        name="ended_reason_known"),
    )


class PatientRevision(Base):
    """One version of a patient's administrative details (issue 12 item 4): version 1 as
    enrolled, then one row per change with who made it and why. The patient row holds the
    latest; these rows are never edited."""

    __tablename__ = "patient_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    display_name: Mapped[str] = mapped_column(String(200))
    identifier: Mapped[str] = mapped_column(String(64))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(16))
    assigned_clinician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    discharged: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(500))
    #: NULL only for the version 1 rows made from existing patients by migration 0015.
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("patient_id", "version", name="uq_patient_revision_patient_version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("length(trim(reason)) > 0", name="reason_not_blank"),
    )


#: How a patient may be reached (ContactConfirmation.channel).
CONTACT_KINDS = ("email", "phone")


class ContactConfirmation(Base):
    """A new contact address a patient gave, waiting for them to follow the link sent to it
    (issue 12 item 5): only then does it replace the one in use. Single use, short-lived,
    stored hashed; a newer one of the same kind revokes it."""

    __tablename__ = "contact_confirmation"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    #: The address (lower-case email, or E.164 phone number).
    value: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    __table_args__ = (
        CheckConstraint(f"kind IN {CONTACT_KINDS}", name="kind_known"),
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        CheckConstraint("used_at IS NULL OR revoked_at IS NULL", name="used_or_revoked"),
        Index("uq_contact_confirmation_one_open_per_kind", "patient_id", "kind", unique=True,
              sqlite_where=text("used_at IS NULL AND revoked_at IS NULL"),
              postgresql_where=text("used_at IS NULL AND revoked_at IS NULL")),
    )


class PasskeyCredential(Base):
    """A passkey (WebAuthn public-key credential) an account registered as a second factor
    (issue 12 item 2). Only the public key is kept; the sign count guards against a cloned
    authenticator."""

    __tablename__ = "passkey_credential"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    #: The credential's id, base64url (at most 1,023 bytes raw).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[Any]] = mapped_column(default=list)
    #: The name its owner gave it ("Work laptop").
    name: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]

    __table_args__ = (
        CheckConstraint("length(trim(name)) > 0", name="name_not_blank"),
        CheckConstraint("sign_count >= 0", name="sign_count_not_negative"),
    )
