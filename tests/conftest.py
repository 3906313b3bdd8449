"""Fixtures shared by the app's tests.

Every test that takes ``app`` (or anything built on it) runs once on SQLite and, when
``TEST_DATABASE_URL`` is set, once more on PostgreSQL. The schema is created by the Alembic
migrations, never by ``create_all``, so the migrations are what the tests exercise.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import uuid
import zoneinfo
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session

import instruments
from outcomes import audit_chain, create_app, migrate
from outcomes.config import normalise_database_url
from outcomes.extensions import db
from outcomes.models import Assessment, Base, Clinic, Course, Infusion, Patient, User, utcnow
from outcomes.services import accounts, alerts, assessments, audit, courses, enrolment
from outcomes.services.audit import SYSTEM, Actor

from .helpers import INFUSION, RECORDS_LATE, RECORDS_T0

PASSWORD = "correct horse battery staple"
BACKENDS = ["sqlite", "postgresql"]


def pytest_report_header() -> list[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    return [f"databases: SQLite{' and PostgreSQL (' + url + ')' if url else ' only (set TEST_DATABASE_URL for PostgreSQL)'}"]


def base_config(database_url: str) -> dict[str, object]:
    return {
        "TESTING": True,
        "OUTCOMES_ENV": "development",
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        # A key of the production form, so production-mode tests start (docs/audit.md).
        "AUDIT_KEYS": "test:" + "k" * 40,
        "DATABASE_URL": database_url,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        # Real argon2id, with a small cost so the suite stays quick.
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST_KIB": 1024,
        "ARGON2_PARALLELISM": 1,
    }


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A schema of this test run's own in the PostgreSQL test database, migrated to head.

    A schema per run lets two runs (a developer's and CI's, say) share one server safely.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"outcomes_test_{os.getpid()}"
    base = make_url(normalise_database_url(url))
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = base.update_query_dict({"options": f"-csearch_path={schema}"})
    engine = create_engine(scoped)
    migrate.upgrade(engine)
    engine.dispose()
    yield scoped.render_as_string(hide_password=False)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def sqlite_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A test's own SQLite database: a copy of the migrated template."""
    path = tmp_path / "outcomes.sqlite3"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_database(request, tmp_path)
        return
    url = request.getfixturevalue("postgresql_url")
    engine = create_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        # Emptying the tables between tests needs the append-only triggers out of the way;
        # replica mode (for the test superuser only) does that for this transaction.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The app, with no context pushed: each test request gets its own context and database
    session, as in production."""
    app = create_app(base_config(database_url))
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app_context(app: Flask) -> Iterator[None]:
    """For tests that call services directly (they read settings from the app)."""
    with app.app_context():
        yield


@pytest.fixture
def session(app: Flask, database_url: str) -> Iterator[Session]:
    """A session of the test's own, apart from the ones requests use, that always reads what
    has been committed. On SQLite the app holds a snapshot for each transaction (as it
    should); the test's session runs each statement on its own instead, so a check made after
    a request sees that request's work."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url)

        @event.listens_for(engine, "connect")
        def autocommit(dbapi_connection, connection_record) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

        session = Session(engine)
    else:
        with app.app_context():
            session = db.sessionmaker()
        engine = None
    # Services the tests call directly commit with it outside any app context.
    audit.sign_with(session, audit_chain.keys_from_settings(app.config))
    yield session
    session.close()
    if engine is not None:
        engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@dataclass
class World:
    """A clinic with a clinician and an enrolled patient with a login, and a second clinic."""

    clinic: Clinic
    clinician: User
    patient: Patient
    patient_user: User
    other_clinic: Clinic
    other_clinician: User
    other_patient: Patient


class Factory:
    """Creates records through the services, each committed, as the app itself would."""

    def __init__(self, app: Flask, session: Session) -> None:
        self.app = app
        self.session = session

    def clinic(self, name: str | None = None) -> Clinic:
        with self.app.app_context():
            clinic = accounts.create_clinic(self.session, SYSTEM,
                                            name or f"Clinic {uuid.uuid4().hex[:6]}",
                                            "+1 555 0100", "America/New_York")
            self.session.commit()
        return clinic

    def staff(self, clinic: Clinic, role: str = "clinician", email: str | None = None) -> User:
        with self.app.app_context():
            user = accounts.create_staff_user(
                self.session, SYSTEM, clinic, role,
                email or f"{role}-{uuid.uuid4().hex[:8]}@example.org", PASSWORD)
            self.session.commit()
        return user

    def patient(self, clinic: Clinic, clinician: User, with_login: bool = True,
                identifier: str | None = None, name: str = "Pat Example") -> Patient:
        actor = Actor(user=clinician)
        with self.app.app_context():
            patient = enrolment.enrol_patient(self.session, actor, clinic,
                                              identifier or f"MRN-{uuid.uuid4().hex[:6]}",
                                              name, None, clinician)
            if with_login:
                issued = enrolment.issue_invitation(self.session, actor, patient)
                enrolment.accept_invitation(
                    self.session, SYSTEM, issued.token,
                    f"patient-{uuid.uuid4().hex[:8]}@example.org", PASSWORD)
            self.session.commit()
        return patient

    def course(self, patient: Patient, planned_infusions: int = 6) -> Course:
        """An open PTSD course for the patient, started today (the clinic's day) by their
        clinician."""
        today = dt.datetime.now(zoneinfo.ZoneInfo(patient.clinic.timezone)).date()
        with self.app.app_context():
            course = courses.start_course(self.session, Actor(user=patient.assigned_clinician),
                                          patient, "ptsd", planned_infusions, today)
            self.session.commit()
        return course

    def infusion(self, patient: Patient, course: Course, hours_ago: float = 2) -> Infusion:
        """The course's next infusion, with ordinary vital signs, given ``hours_ago``."""
        values = {**INFUSION_VALUES, "administered_at": utcnow() - dt.timedelta(hours=hours_ago)}
        with self.app.app_context():
            infusion = courses.record_infusion(
                self.session, Actor(user=patient.assigned_clinician), course, values)
            self.session.commit()
        return infusion

    def assessment(self, patient: Patient, instrument_key: str = "phq9",
                   answers: Sequence[int | None] | None = None) -> Assessment:
        """A questionnaire the patient sent from their phone (all answers 1 unless given:
        on the PHQ-9 that discloses risk on item 9, so it opens its alert)."""
        with self.app.app_context():
            if answers is None:
                answers = [1] * len(instruments.get(instrument_key).items)
            submission = assessments.submit_assessment(
                self.session, Actor(user=patient.user), patient, instrument_key, answers,
                uuid.uuid4().hex)
            self.session.commit()
        return submission.assessment


#: Vital signs and doses of an ordinary infusion, within every bound (services/courses.py).
INFUSION_VALUES = {
    "weight_kg": 80, "dose_mg_per_kg": 0.5, "total_dose_mg": 40, "duration_minutes": 40,
    "systolic_before": 122, "diastolic_before": 78, "heart_rate_before": 72, "spo2_before": 98,
    "systolic_peak": 140, "diastolic_peak": 90, "heart_rate_peak": 84, "spo2_peak": 97,
    "systolic_after": 126, "diastolic_after": 80, "heart_rate_after": 74, "spo2_after": 98,
    "side_effects": ["nausea"], "dissociation_rating": 2, "notes": None,
}


@pytest.fixture
def factory(app: Flask, session: Session) -> Factory:
    return Factory(app, session)


@pytest.fixture
def world(factory: Factory, session: Session) -> World:
    clinic = factory.clinic("Harbour Clinic")
    clinician = factory.staff(clinic)
    patient = factory.patient(clinic, clinician)
    other_clinic = factory.clinic("Hilltop Clinic")
    other_clinician = factory.staff(other_clinic)
    other_patient = factory.patient(other_clinic, other_clinician)
    return World(clinic, clinician, patient, patient.user, other_clinic, other_clinician,
                 other_patient)


@dataclass
class Records:
    phq9_id: int
    gad7_id: int
    late_id: int
    other_id: int
    course_id: int


@pytest.fixture
def records(world, session) -> Records:
    """At Harbour Clinic: a PHQ-9 the patient answered before the first infusion (item 9
    above 0, so an alert, acknowledged), a GAD-7 a clinician transcribed, a late-evening PHQ-9,
    and one infusion. At Hilltop Clinic: a PHQ-9 of its own patient."""
    clinician, patient = Actor(world.clinician), world.patient
    course = courses.start_course(session, clinician, patient, "ptsd", 6, RECORDS_T0.date())
    courses.record_infusion(session, clinician, course, {
        **INFUSION, "administered_at": RECORDS_T0 + dt.timedelta(days=2),
        "notes": "Calm, tolerated"})
    submit = assessments.submit_assessment
    phq9 = submit(session, Actor(world.patient_user), patient, "phq9", [1] * 9, "key-phq9",
                  administered_at=RECORDS_T0)
    gad7 = submit(session, clinician, patient, "gad7", [2] * 7, "key-gad7",
                  administered_at=RECORDS_T0 + dt.timedelta(days=5))
    late = submit(session, Actor(world.patient_user), patient, "phq9", [0] * 9, "key-late",
                  administered_at=RECORDS_LATE)
    alerts.acknowledge_alert(session, clinician, phq9.alerts[0], "Called the patient; safe plan")
    other = submit(session, Actor(world.other_patient.user), world.other_patient, "phq9",
                   [3] * 9, "key-other", administered_at=RECORDS_T0)
    session.commit()
    return Records(phq9.assessment.id, gad7.assessment.id, late.assessment.id,
                   other.assessment.id, course.id)


def sign_in(client: FlaskClient, user: User, password: str = PASSWORD):
    """Sign in through the real login form."""
    response = client.post("/login", data={"email": user.email, "password": password})
    assert response.status_code == 302, response.data[:500]
    return response


@contextmanager
def statements(app: Flask | None = None) -> Iterator[list[tuple[str, object]]]:
    """The SQL statements (with their parameters) run meanwhile: through the app's engine, or
    with no app through every engine (an export reads through an engine of its own). The one
    statement counter of the tests: the "no more statements for more rows" checks use it."""
    seen: list[tuple[str, object]] = []
    if app is None:
        target: object = Engine
    else:
        with app.app_context():
            target = db.engine

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append((statement, parameters))

    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


def csrf_token(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        rb'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1).decode()


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per reason for skipped tests, so a skipped database or browser is visible."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] = reasons.get(reason.removeprefix("Skipped: "), 0) + 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"SKIPPED {count} tests: {reason}", yellow=True)
