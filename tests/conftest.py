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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, make_url, select, text
from sqlalchemy.orm import Session

from outcomes import audit_chain, create_app, migrate
from outcomes.config import normalise_database_url
from outcomes.extensions import db
from outcomes.models import Alert, Base, Clinic, Patient, User
from outcomes.services import alerts, audit
from outcomes.services.audit import Actor

# INFUSION_VALUES and statements are not used here: test modules import them from here.
from .message_audit import PRODUCED, recording_every_message, unsound_messages
from .helpers import (  # noqa: F401
    INFUSION_VALUES,
    PASSWORD,
    RECORDS_LATE,
    RECORDS_T0,
    Factory,
    statements,
)

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
def records(factory: Factory, world: World, session: Session) -> Records:
    """At Harbour Clinic: a PHQ-9 the patient answered before the first infusion (item 9
    above 0, so an alert, acknowledged), a GAD-7 a clinician transcribed, a late-evening PHQ-9,
    and one infusion. At Hilltop Clinic: a PHQ-9 of its own patient."""
    patient = world.patient
    course = factory.course(patient, started_on=RECORDS_T0.date())
    factory.infusion(course, RECORDS_T0 + dt.timedelta(days=2), notes="Calm, tolerated")
    phq9 = factory.assessment(patient, "phq9", [1] * 9, at=RECORDS_T0)
    gad7 = factory.assessment(patient, "gad7", [2] * 7, at=RECORDS_T0 + dt.timedelta(days=5),
                              by=world.clinician)
    late = factory.assessment(patient, "phq9", [0] * 9, at=RECORDS_LATE)
    alert = session.scalars(select(Alert).where(Alert.assessment_id == phq9.id)).one()
    alerts.acknowledge_alert(session, Actor(world.clinician), alert,
                             "Called the patient; safe plan")
    session.commit()
    other = factory.assessment(world.other_patient, "phq9", [3] * 9, at=RECORDS_T0)
    return Records(phq9.id, gad7.id, late.id, other.id, course.id)


def sign_in(client: FlaskClient, user: User, password: str = PASSWORD):
    """Sign in through the real login form."""
    response = client.post("/login", data={"email": user.email, "password": password})
    assert response.status_code == 302, response.data[:500]
    return response


def csrf_token(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        rb'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1).decode()


@pytest.fixture(scope="session", autouse=True)
def every_message_recorded() -> Iterator[None]:
    """Every message the app builds to send in this run, kept for the check at its end."""
    with recording_every_message():
        yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    # No health data in any message: the run fails if one message it produced is unsound.
    if unsound_messages():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    """What the run's messages were found to be (tests/message_audit.py), and one line per
    reason for skipped tests, so a skipped database or browser is visible."""
    problems = unsound_messages()
    if PRODUCED:
        terminalreporter.write_line(
            f"messages read: {len(PRODUCED)}, unsound: {len(problems)}", red=bool(problems))
    for problem in problems:
        terminalreporter.write_line(f"UNSOUND MESSAGE: {problem}", red=True)
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] = reasons.get(reason.removeprefix("Skipped: "), 0) + 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"SKIPPED {count} tests: {reason}", yellow=True)
