"""Outages: a database that stops, freezes or holds a lock gets the app's own calm 503 page
(with Retry-After and the security headers), /healthz answers within seconds, the app recovers
by itself when the database is back, and nothing acknowledged is lost.

The PostgreSQL tests start a throwaway cluster of their own (initdb and pg_ctl, in a temporary
folder, on a free port), so they can really stop and freeze it without disturbing the shared
server that other test runs use.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from outcomes import create_app, migrate
from outcomes.config import ConfigurationError, settings_from_environment
from outcomes.database import engine_options
from outcomes.extensions import db
from outcomes.models import Assessment
from outcomes.services.exports import read_connection

from .conftest import base_config, sign_in, sqlite_database

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
WORDING = "Nothing was saved. Please try again in a minute."
PHQ9 = [1, 1, 0, 2, 1, 0, 1, 0, 0]


# --- A PostgreSQL cluster of the tests' own ------------------------------------------------

class Cluster:
    """A PostgreSQL server in a temporary folder that a test may stop, start and freeze."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.bin = Path(INITDB[-1]).parent
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def _run(self, program: str, *args: str) -> None:
        # initdb refuses to run as root: run the server as the postgres OS user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, str(self.bin / program), *args], check=True,
                       capture_output=True, timeout=60)

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
                  "start")

    def stop(self) -> None:
        """Stop the server as a crash would: no checkpoint, connections cut."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def processes(self) -> list[int]:
        """The postmaster first, then every process it started (backends and helpers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.split("/")[2]))
        return [postmaster, *children]

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server hangs: its processes stop answering (but its sockets stay open)."""
        stopped = []
        try:
            for pid in self.processes():
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            yield
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not INITDB:
        pytest.skip("PostgreSQL's initdb is not installed (/usr/lib/postgresql/*/bin): the "
                    "outage tests need a server of their own to stop and freeze")
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="outcomes-outage-")))
    try:
        cluster.create()
        engine = create_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("CREATE DATABASE migrated"))
        engine.dispose()
        engine = create_engine(cluster.url("migrated"))
        migrate.upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        if cluster.running:
            cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite, or a fresh database in the tests' own cluster (a copy of a migrated one)."""
    if request.param == "sqlite":
        yield sqlite_database(request, tmp_path)
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    if not cluster.running:
        cluster.start()  # a failed test may have left it stopped
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name} TEMPLATE migrated"))
    yield cluster.url(name)
    if cluster.running:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def app(database_url: str, request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The app as production runs it: an error after the view reaches the error handlers
    instead of the test (PROPAGATE_EXCEPTIONS off); settings from an indirect parameter."""
    settings = getattr(request, "param", {})
    app = create_app({**base_config(database_url), "PROPAGATE_EXCEPTIONS": False, **settings})
    yield app
    with app.app_context():
        db.engine.dispose()


POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def patient_client(app, client, world, session):
    sign_in(client, world.patient_user)
    # The test's own session lets go of its connection (as a request does when it ends), so
    # that stopping the server breaks only what the app holds.
    session.close()
    return client


def phq9_form(key: str) -> dict[str, str]:
    return {"submission_key": key,
            **{f"item_{number}": str(value) for number, value in enumerate(PHQ9, start=1)}}


def stored_assessments(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Assessment))


@contextmanager
def on_statement(app: Flask, prefix: str, action) -> Iterator[None]:
    """Run ``action`` once, just before the app's first statement starting with ``prefix``."""
    with app.app_context():
        engine = db.engine

    def before(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith(prefix) and not fired:
            fired.append(True)
            action()

    fired: list[bool] = []
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert fired, f"no statement started with {prefix!r}"


def assert_outage_page(response) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    page = response.get_data(as_text=True)
    assert WORDING in page and "Please try again in a minute" in page
    assert "Internal Server Error" not in page and "Traceback" not in page
    # The app's own page, through the app's own response hooks.
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    for header in ("Content-Security-Policy", "X-Frame-Options", "Referrer-Policy",
                   "X-Request-ID"):
        assert response.headers.get(header), header
    assert response.headers["Cache-Control"] == "no-store"


# --- PostgreSQL stopped ---------------------------------------------------------------------

@POSTGRESQL
def test_database_stopped_mid_request_answers_the_apps_503_and_recovers(
        app, patient_client, cluster, caplog):
    assert patient_client.get("/me/questionnaires/phq9").status_code == 200
    caplog.set_level(logging.INFO)
    with on_statement(app, "INSERT INTO assessment ", cluster.stop):
        response = patient_client.post("/me/questionnaires/phq9", data=phq9_form("stopped"))
    assert_outage_page(response)
    request_id = response.headers["X-Request-ID"]
    assert any("database unavailable: OperationalError" in record.getMessage()
               and request_id in record.getMessage() for record in caplog.records)
    # The log names the error, never the database's message.
    assert not any("server closed" in record.getMessage() or record.exc_info
                   for record in caplog.records)

    # Back without restarting the app: the same app, the same signed-in client.
    cluster.start()
    assert patient_client.get("/me/").status_code == 200
    assert stored_assessments(app) == 0
    response = patient_client.post("/me/questionnaires/phq9", data=phq9_form("again"))
    assert response.status_code == 302
    assert stored_assessments(app) == 1


@POSTGRESQL
def test_database_stopped_at_the_commit_answers_503_not_500(app, patient_client, cluster,
                                                            caplog):
    assert patient_client.get("/me/questionnaires/phq9").status_code == 200
    with app.app_context():
        engine = db.engine
    stop_once = []

    def before_commit(connection) -> None:
        if not stop_once:
            stop_once.append(True)
            cluster.stop()

    caplog.set_level(logging.INFO)
    # The commit runs in the after-request hook, after the view answered.
    event.listen(engine, "commit", before_commit)
    try:
        response = patient_client.post("/me/questionnaires/phq9", data=phq9_form("commit"))
    finally:
        event.remove(engine, "commit", before_commit)
    assert stop_once
    assert_outage_page(response)
    messages = [record.getMessage() for record in caplog.records]
    assert not any("server closed" in message or "terminating connection" in message
                   for message in messages), messages
    cluster.start()
    assert stored_assessments(app) == 0
    assert patient_client.get("/me/").status_code == 200


@POSTGRESQL
def test_a_questionnaire_acknowledged_before_the_outage_is_still_there_after(
        app, patient_client, cluster):
    response = patient_client.post("/me/questionnaires/phq9", data=phq9_form("kept"))
    assert response.status_code == 302 and "/me/results/" in response.location
    cluster.stop()
    assert_outage_page(patient_client.get(response.location))
    cluster.start()
    assert stored_assessments(app) == 1
    page = patient_client.get(response.location)
    assert page.status_code == 200 and "out of 27" in page.get_data(as_text=True)


# --- PostgreSQL frozen ----------------------------------------------------------------------

@POSTGRESQL
def test_a_frozen_database_gives_healthz_and_pages_503_within_seconds(
        app, patient_client, cluster):
    # Default timeouts: what production runs with. A load balancer sends no session cookie.
    load_balancer = app.test_client()
    assert load_balancer.get("/healthz").status_code == 200
    with cluster.frozen():
        started = time.monotonic()
        response = load_balancer.get("/healthz")
        healthz_seconds = time.monotonic() - started
        assert response.status_code == 503 and response.json == {"status": "unavailable"}
        assert healthz_seconds < 5, healthz_seconds

        started = time.monotonic()
        page = patient_client.get("/me/")
        page_seconds = time.monotonic() - started
        assert_outage_page(page)
        # One ping and one connection attempt, not a statement timeout.
        limit = 1 + app.config["DATABASE_CONNECT_TIMEOUT"] + 1
        assert page_seconds < limit, page_seconds
    assert load_balancer.get("/healthz").status_code == 200
    assert patient_client.get("/me/").status_code == 200


@POSTGRESQL
@pytest.mark.parametrize("app", [{"DATABASE_STATEMENT_TIMEOUT": 1}], indirect=True)
def test_a_database_that_freezes_during_a_statement_is_cut_off_at_its_deadline(
        app, patient_client, cluster):
    assert patient_client.get("/me/questionnaires/phq9").status_code == 200
    with ExitStack() as thaw:
        freeze = partial(thaw.enter_context, cluster.frozen())
        with on_statement(app, "INSERT INTO assessment ", freeze):
            started = time.monotonic()
            response = patient_client.post("/me/questionnaires/phq9", data=phq9_form("frozen"))
            seconds = time.monotonic() - started
    assert_outage_page(response)
    # The statement timeout plus the client's grace: the frozen server cannot cancel it.
    assert 1 <= seconds < 6, seconds
    assert stored_assessments(app) == 0
    assert patient_client.post("/me/questionnaires/phq9",
                               data=phq9_form("thawed")).status_code == 302
    assert stored_assessments(app) == 1


# --- Locks held elsewhere -------------------------------------------------------------------

@contextmanager
def write_lock_held(database_url: str) -> Iterator[None]:
    """Another connection holds what the questionnaire needs, until the block ends."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"),
                                     isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
        return
    engine = create_engine(database_url)
    with engine.connect() as connection:
        connection.execute(text("LOCK TABLE assessment IN ACCESS EXCLUSIVE MODE"))
        yield
        connection.rollback()
    engine.dispose()


@pytest.mark.parametrize("app", [{"DATABASE_STATEMENT_TIMEOUT": 1}], indirect=True)
def test_a_lock_held_past_the_timeout_answers_503_and_the_retry_succeeds(
        app, database_url, patient_client):
    assert patient_client.get("/me/questionnaires/phq9").status_code == 200
    with write_lock_held(database_url):
        response = patient_client.post("/me/questionnaires/phq9", data=phq9_form("locked"))
    assert_outage_page(response)
    assert stored_assessments(app) == 0
    response = patient_client.post("/me/questionnaires/phq9", data=phq9_form("locked"))
    assert response.status_code == 302
    assert stored_assessments(app) == 1


@POSTGRESQL
@pytest.mark.parametrize("app", [{"DATABASE_STATEMENT_TIMEOUT": 1,
                                  "DATABASE_EXPORT_STATEMENT_TIMEOUT": 5}], indirect=True)
def test_exports_have_a_longer_statement_timeout_than_pages(app):
    with app.app_context():
        with pytest.raises(OperationalError, match="statement timeout"):
            db.session.execute(text("SELECT pg_sleep(1.5)"))
        db.session.rollback()
        with read_connection(db.engine) as connection:
            assert connection.execute(text("SELECT pg_sleep(1.5), 1")).one()[1] == 1
        # The longer limit ended with the export's transaction.
        with pytest.raises(OperationalError, match="statement timeout"):
            db.session.execute(text("SELECT pg_sleep(1.5)"))


# --- Error pages and settings ---------------------------------------------------------------

def test_the_crisis_help_page_works_while_the_database_is_down(app, patient_client):
    with app.app_context():
        engine = db.engine

    def unavailable(*args) -> None:
        raise OperationalError("SELECT", {}, Exception("the database is gone"))

    event.listen(engine, "before_cursor_execute", unavailable)
    try:
        response = patient_client.get("/me/help")
        page = patient_client.get("/me/")
    finally:
        event.remove(engine, "before_cursor_execute", unavailable)
    assert response.status_code == 200
    assert 'href="tel:988"' in response.get_data(as_text=True)
    assert_outage_page(page)
    assert 'href="/me/help"' in page.get_data(as_text=True)


def test_timeouts_are_settings_with_sane_defaults():
    settings = settings_from_environment({})
    assert (settings["DATABASE_CONNECT_TIMEOUT"], settings["DATABASE_STATEMENT_TIMEOUT"],
            settings["DATABASE_EXPORT_STATEMENT_TIMEOUT"], settings["DATABASE_POOL_TIMEOUT"]) \
        == (3, 15, 300, 5)
    assert settings_from_environment({"DATABASE_STATEMENT_TIMEOUT": "30"})[
        "DATABASE_STATEMENT_TIMEOUT"] == 30
    for bad in ("0", "-1", "ten", "1.5"):
        with pytest.raises(ConfigurationError, match="DATABASE_CONNECT_TIMEOUT"):
            settings_from_environment({"DATABASE_CONNECT_TIMEOUT": bad})


def test_postgresql_timeouts_keep_the_urls_own_options():
    settings = {**settings_from_environment({}), "DATABASE_STATEMENT_TIMEOUT": 7,
                "DATABASE_URL": "postgresql+psycopg://u@h/d?options=-csearch_path%3Ds1"}
    options = engine_options(settings)
    assert options["connect_args"] == {
        "connect_timeout": 3, "options": "-csearch_path=s1 -c statement_timeout=7000"}
    assert options["pool_timeout"] == 5 and "pool_pre_ping" not in options
    sqlite = engine_options({**settings, "DATABASE_URL": "sqlite:///x.sqlite3"})
    assert sqlite["pool_pre_ping"] and "connect_args" not in sqlite
    assert "pool_timeout" not in sqlite  # an in-memory database has no pool to wait for
