"""Helpers several test modules share (plain functions and classes; fixtures live in
conftest.py). No test module imports another: what two of them need is here.

``Factory`` is the one way the tests make a clinic, a person, a course, an infusion or an
assessment; ``statements`` the one count of SQL statements (the benchmarks use it too)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

import instruments
from outcomes import clock, create_app, migrate
from outcomes.extensions import db
from outcomes.jobs import QUEUE_PREFIX
from outcomes.models import Assessment, Clinic, Course, Infusion, Patient, User
from outcomes.services import accounts, assessments, courses, enrolment, mfa
from outcomes.services.audit import SYSTEM, Actor

#: Every test user's password.
PASSWORD = "correct horse battery staple"
#: The test clinics' zone.
CLINIC_ZONE = "America/New_York"
#: Monday 2 March 2026, 10:00 in New York: where the histories of the outcome and chart
#: tests begin.
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


# --- apps of a test's own configuration -------------------------------------------------------

@contextmanager
def running_app(config: dict[str, object]) -> Iterator[Flask]:
    """The app made with ``config`` (conftest's ``base_config`` and the test's settings), its
    database connections closed when the test is done."""
    app = create_app(config)
    yield app
    with app.app_context():
        db.engine.dispose()


# --- records, made through the services -----------------------------------------------------

#: An ordinary infusion's doses and vital signs, within every bound (services/courses.py); a
#: weight and dose with decimals, so the exports show they keep them.
INFUSION_VALUES = {
    "weight_kg": 80.5, "dose_mg_per_kg": 0.5, "total_dose_mg": 40.25, "duration_minutes": 40,
    "systolic_before": 122, "diastolic_before": 78, "heart_rate_before": 72, "spo2_before": 98,
    "systolic_peak": 140, "diastolic_peak": 90, "heart_rate_peak": 84, "spo2_peak": 97,
    "systolic_after": 126, "diastolic_after": 80, "heart_rate_after": 74, "spo2_after": 98,
    "side_effects": ["dissociation", "nausea"], "dissociation_rating": 2,
}


def answers_for(key: str, total: int, item9: int = 0, offset: int = 0) -> list[int]:
    """Answers that add up to ``total``; the crisis item (PHQ-9 item 9) gets ``item9``, and
    ``offset`` changes where the points go, so equal totals need not be equal answers."""
    instrument = instruments.get(key)
    crisis = set(instruments.crisis_items(key))
    scored = [item for item in instrument.scored_items if item.number not in crisis]
    values = {item.number: item.min_value for item in instrument.items}
    for number in crisis:
        values[number] = item9
    remaining = total - item9
    for step in range(len(scored)):
        item = scored[(step + offset) % len(scored)]
        give = min(item.max_value - item.min_value, remaining)
        values[item.number] += give
        remaining -= give
    assert remaining == 0, f"{key} cannot reach {total}"
    return [values[item.number] for item in instrument.items if item.scored or item.required]


class Factory:
    """Creates records through the services, each committed, as the app itself would. The
    ``factory`` fixture is one; every test that needs a course, an infusion or an assessment
    makes it here."""

    def __init__(self, app: Flask, session: Session) -> None:
        self.app = app
        self.session = session
        self.numbers = itertools.count(1)

    def clinic(self, name: str | None = None) -> Clinic:
        with self.app.app_context():
            clinic = accounts.create_clinic(self.session, SYSTEM,
                                            name or f"Clinic {uuid.uuid4().hex[:6]}",
                                            "+1 555 0100", CLINIC_ZONE)
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

    def course(self, patient: Patient, planned_infusions: int = 6,
               started_on: dt.date | None = None, *, by: User | None = None,
               infusions: Iterable[dt.datetime] = (), status: str = "active",
               ended_on: dt.date | None = None) -> Course:
        """A PTSD course for the patient, started on ``started_on`` (the clinic's today unless
        given) by ``by`` (their clinician unless given), with an infusion given at each of
        ``infusions``, then set to ``status`` (a finished course ends on ``ended_on``)."""
        clinician = by or patient.assigned_clinician
        actor = Actor(user=clinician)
        with self.app.app_context():
            course = courses.start_course(
                self.session, actor, patient, "ptsd", planned_infusions,
                started_on or clock.clinic_today(patient.clinic))
            for at in infusions:
                courses.record_infusion(self.session, actor, course,
                                        {**INFUSION_VALUES, "administered_at": at})
            if status != "active":
                courses.update_course(self.session, actor, course, status=status,
                                      planned_infusions=course.planned_infusions,
                                      next_infusion_at=None, ended_on=ended_on)
            self.session.commit()
        return course

    def infusion(self, course: Course, at: dt.datetime | None = None, *,
                 by: User | None = None, **changes: object) -> Infusion:
        """The course's next infusion (its first version), given at ``at`` (two hours ago
        unless given) and recorded by ``by`` (the patient's clinician unless given), with
        ordinary values apart from ``changes``."""
        clinician = by or self.session.get(Patient, course.patient_id).assigned_clinician
        values = {**INFUSION_VALUES, **changes,
                  "administered_at": at or clock.utcnow() - dt.timedelta(hours=2)}
        with self.app.app_context():
            infusion = courses.record_infusion(self.session, Actor(user=clinician), course,
                                               values)
            self.session.commit()
        return infusion

    def assessment(self, patient: Patient, instrument_key: str = "phq9",
                   answers: Sequence[int | None] | None = None, *, total: int | None = None,
                   item9: int = 0, at: dt.datetime | None = None, by: User | None = None,
                   amends: Assessment | None = None) -> Assessment:
        """A questionnaire scored by the engine and stored, sent by ``by`` (the patient from
        their phone unless given: a clinician's is a transcribed paper form) at ``at`` (now
        unless given), correcting ``amends`` if given.

        The answers are ``answers``; or, with ``total``, answers that add up to it with
        ``item9`` on the crisis item; or else all 1 (on the PHQ-9 that discloses risk on
        item 9, so it opens its alert)."""
        number = next(self.numbers)
        if answers is None:
            answers = (answers_for(instrument_key, total, item9, number) if total is not None
                       else [1] * len(instruments.get(instrument_key).items))
        with self.app.app_context():
            submission = assessments.submit_assessment(
                self.session, Actor(user=by or patient.user), patient, instrument_key,
                answers, uuid.uuid4().hex, administered_at=at, amends=amends,
                amendment_reason="Transcription error" if amends is not None else None)
            self.session.commit()
        if total is not None:
            assert submission.assessment.total == total
        return submission.assessment


class History:
    """A clinician's record of patients' treatment, for the outcome, chart and baseline tests:
    courses with the moments of their infusions, and scores given as totals (the answers made
    up to match), all entered by that clinician (``actor``, for the services the tests call
    themselves)."""

    def __init__(self, app: Flask, session: Session, clinician: User) -> None:
        self.factory, self.clinician = Factory(app, session), clinician
        self.actor = Actor(user=clinician)

    def course(self, patient: Patient, infusions: Sequence[dt.datetime],
               status: str = "active", ended_on: dt.date | None = None) -> Course:
        """A course planned for exactly its infusions, started on the first one's day."""
        return self.factory.course(
            patient, max(1, len(infusions)), infusions[0].date() if infusions else T0.date(),
            by=self.clinician, infusions=infusions, status=status, ended_on=ended_on)

    def score(self, patient: Patient, key: str, total: int, at: dt.datetime, item9: int = 0,
              amends: Assessment | None = None) -> Assessment:
        return self.factory.assessment(patient, key, total=total, item9=item9, at=at,
                                       by=self.clinician, amends=amends)


# --- SQL statements -------------------------------------------------------------------------

@contextmanager
def statements(app: Flask | None = None) -> Iterator[list[tuple[str, object]]]:
    """The SQL statements (with their parameters) run meanwhile: through the app's engine, or
    with no app through every engine (an export reads through an engine of its own). The one
    statement counter: the "no more statements for more rows" checks and the dashboard
    benchmark use it."""
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


# --- pages ---------------------------------------------------------------------------------

def figures_on(html: str) -> list[dict]:
    return [json.loads(raw) for raw in re.findall(
        r'<script type="application/json" id="[^"]+">(.*?)</script>', html, re.S)]


def traces(figure, name=None):
    return [t for t in figure["data"] if name is None or t.get("name") == name]


# --- CSV exports ---------------------------------------------------------------------------

#: Monday 2 June 2025, 11:00 in New York (the test clinics' zone): the ``records`` fixture's
#: first questionnaire.
RECORDS_T0 = dt.datetime(2025, 6, 2, 15, 0, tzinfo=dt.timezone.utc)
#: 23:00 on Thursday 19 June in New York, already 20 June in UTC: its late-evening one.
RECORDS_LATE = dt.datetime(2025, 6, 20, 3, 0, tzinfo=dt.timezone.utc)


def post_export(client, **fields):
    data = {"kind": "responses", "date_from": "", "date_to": "", "patient": "",
            "instrument": "", **fields}
    if data.pop("deidentified", False):
        data["deidentified"] = "y"
    return client.post("/exports/", data=data)


def parse(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "a UTF-8 byte-order mark first"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def as_dicts(body: bytes) -> list[dict[str, str]]:
    header, *rows = parse(body)
    return [dict(zip(header, row)) for row in rows]


# --- staff forms (form submissions, dates) -------------------------------------------------

def now_local() -> dt.datetime:
    """The wall time at the test clinics now."""
    return clock.utcnow().astimezone(clock.clinic_zone(CLINIC_ZONE))


def infusion_form_values(**changes) -> dict[str, object]:
    """An infusion form's fields as a browser sends them, given two hours ago."""
    values = {
        "administered_at": (now_local() - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "weight_kg": "80", "dose_mg_per_kg": "0.5", "total_dose_mg": "40",
        "duration_minutes": "40", "systolic_before": "122", "diastolic_before": "78",
        "heart_rate_before": "72", "spo2_before": "98", "systolic_after": "126",
        "diastolic_after": "80", "heart_rate_after": "74", "spo2_after": "98",
    }
    values.update(changes)
    return values


def form_key(client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    match = re.search(rb'name="submission_key" type="hidden" value="([0-9a-f]{32})"', page.data)
    assert match, "the form carries no submission key"
    return match.group(1).decode()


def write_audit_rows_from_before_the_chain(engine, rows: int = 3) -> None:
    """Take the database back to revision 0002 (before the hash chain) and write ``rows``
    audit rows there, as the trail held them then."""
    migrate.downgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO clinic (name, crisis_phone, timezone, created_at) "
            "VALUES ('Old', '1', 'UTC', :at)"), {"at": dt.datetime(2026, 1, 1)})
        for n in range(rows):
            connection.execute(text(
                "INSERT INTO audit_event (occurred_at, action, details, clinic_id) "
                "VALUES (:at, :action, '{}', 1)"),
                {"at": dt.datetime(2026, 1, 1, 9, n), "action": f"old.{n}"})


def empty_the_queue(database_url: str) -> None:
    """Empty procrastinate's tables in the test run's PostgreSQL schema (the conftest empties
    the app's own), so a test's workers start with no job of an earlier test."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        tables = connection.scalars(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename LIKE :prefix"), {"prefix": QUEUE_PREFIX + "%"}).all()
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


def answers_form(answers, key="k-1"):
    """A questionnaire form's fields for ``answers`` (None leaves an item blank)."""
    data = {"submission_key": key}
    data.update({f"item_{n}": str(v) for n, v in enumerate(answers, start=1) if v is not None})
    return data


class Authenticator:
    """A staff member's authenticator app in a test: it knows the secret and gives the code of
    a step the server has not accepted yet (the one it gave last is refused as a replay)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.last_step: int | None = None

    def code(self) -> str:
        """Now's code, or the next step's (within the drift the server allows) when now's was
        given already; waits for the clock when even that one was."""
        while True:
            now = mfa.step_at(clock.utcnow())
            step = now if self.last_step is None else max(now, self.last_step + 1)
            if step <= now + mfa.DRIFT_STEPS:
                self.last_step = step
                return mfa.code_at(self.secret, step)
            time.sleep(1)


def give_password(client, user: User) -> str:
    """The sign-in form's first step, with the test password; where it leads (a second step,
    or home when none is asked)."""
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.data[:300]
    return response.location


def enrol_authenticator(app: Flask, session: Session, user: User) -> Authenticator:
    """Enrol ``user``'s authenticator app with a new secret, as its first code does on the
    enrolment page; the app, to sign in with."""
    authenticator = Authenticator(mfa.new_secret())
    with app.app_context():
        account = session.get(User, user.id)
        assert mfa.enrol(session, SYSTEM, account, app.config, authenticator.secret,
                         authenticator.code()) is not None
        session.commit()
    return authenticator
