"""Helpers several test modules share (plain functions and classes; fixtures live in
conftest.py). No test module imports another: what two of them need is here."""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re

from sqlalchemy import text

import instruments
from outcomes import migrate
from outcomes.models import Assessment, Course, Infusion
from outcomes.services import courses
from outcomes.services.assessments import submit_assessment
from outcomes.services.audit import Actor
from outcomes.services.courses import record_infusion, start_course

#: Monday 2 March 2026, 10:00 in New York: where the histories of the outcome and chart
#: tests begin.
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


# --- histories written through the services (outcomes, charts, baseline) -------------------

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


def infusion_values(at: dt.datetime, **changes) -> dict:
    values = {
        "administered_at": at, "weight_kg": 80, "dose_mg_per_kg": 0.5, "total_dose_mg": 40,
        "duration_minutes": 40, "systolic_before": 122, "diastolic_before": 78,
        "heart_rate_before": 72, "spo2_before": 98, "systolic_peak": 140, "diastolic_peak": 90,
        "heart_rate_peak": 84, "spo2_peak": 97, "systolic_after": 126, "diastolic_after": 80,
        "heart_rate_after": 74, "spo2_after": 98, "side_effects": ["dissociation", "nausea"],
        "dissociation_rating": 2,
    }
    values.update(changes)
    return values


class History:
    """Writes courses, infusions and scores through the services, each committed."""

    def __init__(self, app, session, clinician) -> None:
        self.app, self.session, self.actor = app, session, Actor(user=clinician)
        self.keys = itertools.count(1)

    def course(self, patient, infusions, status="active", ended_on=None) -> Course:
        with self.app.app_context():
            course = courses.start_course(self.session, self.actor, patient, "ptsd",
                                          max(1, len(infusions)), infusions[0].date()
                                          if infusions else T0.date())
            for at in infusions:
                courses.record_infusion(self.session, self.actor, course, infusion_values(at))
            if status != "active":
                courses.update_course(self.session, self.actor, course, status=status,
                                      planned_infusions=course.planned_infusions,
                                      next_infusion_at=None, ended_on=ended_on)
            self.session.commit()
        return course

    def score(self, patient, key, total, at, item9=0, amends=None) -> Assessment:
        number = next(self.keys)
        with self.app.app_context():
            submission = submit_assessment(
                self.session, self.actor, patient, key, answers_for(key, total, item9, number),
                f"test-{number}", administered_at=at, amends=amends,
                amendment_reason="Transcription error" if amends is not None else None)
            self.session.commit()
        assert submission.assessment.total == total
        return submission.assessment


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
#: An infusion's values for the export tests (a weight and dose with decimals).
INFUSION = {
    "weight_kg": 80.5, "dose_mg_per_kg": 0.5, "total_dose_mg": 40.25, "duration_minutes": 40,
    "systolic_before": 122, "diastolic_before": 78, "heart_rate_before": 72, "spo2_before": 98,
    "systolic_peak": 140, "diastolic_peak": 90, "heart_rate_peak": 84, "spo2_peak": 97,
    "systolic_after": 126, "diastolic_after": 80, "heart_rate_after": 74, "spo2_after": 98,
    "side_effects": ["dissociation", "nausea"], "dissociation_rating": 2,
}


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

ZONE = dt.timezone(dt.timedelta(hours=-5))  # the test clinic is in America/New_York

def now_local() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).astimezone(ZONE)


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


SERVICE_INFUSION = {
    "weight_kg": 80.0, "dose_mg_per_kg": 0.5, "total_dose_mg": 40.0, "duration_minutes": 40,
    "systolic_before": 122, "diastolic_before": 78, "heart_rate_before": 72, "spo2_before": 98,
    "systolic_after": 126, "diastolic_after": 80, "heart_rate_after": 74, "spo2_after": 98,
}


def open_course(app, session, world) -> Course:
    with app.app_context():
        course = start_course(session, Actor(world.clinician), world.patient, "ptsd", 6,
                              now_local().date())
        session.commit()
    return course


def recorded_infusion(app, session, world, course) -> Infusion:
    with app.app_context():
        infusion = record_infusion(session, Actor(world.clinician), course, {
            **SERVICE_INFUSION, "administered_at": dt.datetime.now(dt.timezone.utc)
            - dt.timedelta(hours=3)})
        session.commit()
    return infusion


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
