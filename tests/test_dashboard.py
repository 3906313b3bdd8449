"""The clinician's dashboard: figures from the instruments package, alerts first, filters,
search, pagination, and the same number of SQL statements at any clinic size."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

import instruments
from outcomes import clock
from outcomes.extensions import db
from outcomes.models import Alert, MeasureSummary, Patient, PatientSummary
from outcomes import demo
from outcomes.services.assessments import submit_assessment
from outcomes.services.audit import Actor
from outcomes.services.dashboard import PAGE_SIZE

from .conftest import sign_in, statements

TODAY = dt.date(2026, 6, 1)


@pytest.fixture
def seeded(app, session):
    """A demo clinic of 60 patients (more than a page) with realistic histories."""
    with app.app_context():
        demo.seed_demo(db.session, patients=60, weeks=12, seed=11, today=TODAY)
        db.session.commit()
    return session.scalars(select(Patient).order_by(Patient.id)).all()


def sign_in_demo(client):
    client.post("/login", data={"email": "dr.rivera@riverside.example",
                                "password": demo.CLINICIAN_PASSWORD})


def search(client, text: str, **filters) -> str:
    """Search as the dashboard's form does (by POST), and the page it leads to."""
    response = client.post("/clinic/patients/search", data={"q": text, **filters})
    assert response.status_code == 302 and text not in response.location
    return client.get(response.location).data.decode()


def rows(html: str) -> list[str]:
    return re.findall(r'href="/clinic/patients/(\d+)"', html)


def test_the_same_number_of_statements_for_a_small_and_a_large_clinic(
        app, client, seeded, world):
    """Issue 4: the dashboard issues as many SQL statements at 2 patients as at 60 (the
    triage counts, a count, a page of rows and their open alerts, and the audit row)."""
    small = app.test_client()
    sign_in(small, world.clinician)
    sign_in_demo(client)
    with statements(app) as large_count:
        assert client.get("/clinic/patients").status_code == 200
    with statements(app) as small_count:
        assert small.get("/clinic/patients").status_code == 200
    assert len(large_count) == len(small_count), (large_count, small_count)
    assert len(large_count) <= 8


def test_each_row_matches_the_instruments_package(client, seeded, session):
    sign_in_demo(client)
    html = client.get("/clinic/patients?sort=name").data.decode()
    summary = session.scalars(select(MeasureSummary).where(
        MeasureSummary.measure == "PCL-5",
        MeasureSummary.latest_at != MeasureSummary.baseline_at)).first()
    change = instruments.change("pcl5", summary.baseline, summary.latest)
    patient = session.get(Patient, summary.patient_id)
    page = search(client, patient.identifier)
    assert f"{summary.baseline} → {summary.latest}" in page
    assert f"({change.change:+d}" in page
    if change.percent_change is not None:
        assert f"{change.change:+d} points, {change.percent_change:+.0f} %" in page
    assert html.count("<tr>") == PAGE_SIZE + 1  # one page, and the header row


def test_open_alerts_come_first(client, seeded, session):
    sign_in_demo(client)
    shown = [int(pid) for pid in rows(client.get("/clinic/patients").data.decode())]
    with_alerts = {s.patient_id for s in session.scalars(
        select(PatientSummary).where(PatientSummary.open_alerts > 0))}
    assert with_alerts and set(shown[:len(with_alerts)]) == with_alerts


def headline_rows(session, patient_id):
    return session.scalars(select(MeasureSummary).where(
        MeasureSummary.patient_id == patient_id,
        MeasureSummary.measure.in_(["PCL-5", "PHQ-9"]))).all()


@pytest.mark.parametrize("query, condition", [
    ("filter=alerts", lambda s, rows: s.open_alerts > 0),
    ("filter=improving", lambda s, rows: any(r.improving for r in rows)),
    ("filter=not_improving", lambda s, rows: rows and not any(r.improving for r in rows)),
    ("status=active", lambda s, rows: s.course_status == "active"),
    ("status=completed", lambda s, rows: s.course_status == "completed"),
])
def test_filters_show_exactly_the_matching_patients(client, seeded, session, query, condition):
    sign_in_demo(client)
    expected = {s.patient_id for s in session.scalars(select(PatientSummary))
                if condition(s, headline_rows(session, s.patient_id))}
    assert expected
    shown = set()
    for page in range(1, 3):
        shown |= {int(pid) for pid in rows(client.get(
            f"/clinic/patients?{query}&page={page}").data.decode())}
    assert shown == expected


def test_overdue_filter_uses_the_clinics_today(client, seeded, session, monkeypatch):
    # Noon of TODAY at the demo clinic (New York): the clinic's today is TODAY.
    monkeypatch.setattr(clock, "utcnow", lambda: dt.datetime(2026, 6, 1, 16, tzinfo=dt.UTC))
    sign_in_demo(client)
    expected = {s.patient_id for s in session.scalars(select(PatientSummary))
                if s.next_due_on is not None and s.next_due_on < TODAY - dt.timedelta(days=2)}
    shown = set()
    for page in range(1, 3):
        shown |= {int(pid) for pid in rows(client.get(
            f"/clinic/patients?filter=overdue&page={page}").data.decode())}
    assert shown == expected


def test_search_by_name_or_identifier_and_pages(client, seeded):
    sign_in_demo(client)
    assert rows(search(client, "MRN-100001")) != []
    assert len(rows(search(client, "mrn-10000"))) == 9
    assert rows(search(client, "%")) == []  # % is literal
    page_two = client.get("/clinic/patients?page=2").data.decode()
    assert len(rows(page_two)) == 60 - PAGE_SIZE and "page 2 of 2" in page_two


@pytest.mark.parametrize("query", ["filter=bogus", "sort=evil", "page=-1", "page=x",
                                   "status=bored"])
def test_bad_filters_in_the_address_get_a_message(client, seeded, query):
    sign_in_demo(client)
    response = client.get(f"/clinic/patients?{query}")
    assert response.status_code == 400
    assert b"were not valid and were reset" in response.data


def test_the_legend_explains_each_chip_with_its_source(client, seeded):
    sign_in_demo(client)
    html = client.get("/clinic/patients").data.decode()
    for threshold in instruments.get("phq9").change_thresholds:
        assert threshold.label.lower() in html
    assert "Psychiatric Services 2020" in html
    assert "National Center for PTSD" in html


def test_the_summary_follows_each_submission_and_acknowledgement(client, world, session, app):
    with app.app_context():
        actor = Actor(db.session.get(type(world.patient_user), world.patient_user.id))
        patient = db.session.get(Patient, world.patient.id)
        submit_assessment(db.session, actor, patient, "pcl5", [3] * 20, "a")
        submission = submit_assessment(db.session, actor, patient, "phq9", [1] * 8 + [1], "b")
        db.session.commit()
        alert_id = submission.alerts[0].id
    summary = session.get(PatientSummary, world.patient.id)
    pcl5 = session.get(MeasureSummary, (world.patient.id, "PCL-5"))
    assert (pcl5.baseline, pcl5.latest, summary.open_alerts) == (60, 60, 1)
    sign_in(client, world.clinician)
    client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"note": "Called, safe."})
    session.expire_all()
    assert session.get(PatientSummary, world.patient.id).open_alerts == 0


def test_clinically_meaningful_worsening_raises_an_alert_once(app, world, session):
    with app.app_context():
        actor = Actor(db.session.get(type(world.patient_user), world.patient_user.id))
        patient = db.session.get(Patient, world.patient.id)
        submit_assessment(db.session, actor, patient, "pcl5", [1] * 20, "base")     # 20
        submit_assessment(db.session, actor, patient, "pcl5-weekly", [1] * 20 + [], "w1")
        worse = submit_assessment(db.session, actor, patient, "pcl5-weekly",
                                  [2] * 10 + [1] * 10, "w2")                          # 30
        again = submit_assessment(db.session, actor, patient, "pcl5-weekly",
                                  [2] * 11 + [1] * 9, "w3")                           # 31
        db.session.commit()
        assert [a.kind for a in worse.alerts] == ["clinically_meaningful_worsening"]
        assert again.alerts == []  # one open worsening alert is enough
    alert = session.scalars(select(Alert)).one()
    assert alert.reason.startswith("PCL-5 total 10 or more points above") and not alert.crisis
    assert session.get(MeasureSummary, (world.patient.id, "PCL-5")).worsening


@pytest.mark.parametrize("sort, measure", [("pcl5_change", "PCL-5"), ("phq9_change", "PHQ-9")])
def test_sorting_by_a_headline_measures_change_keeps_its_address(client, seeded, session,
                                                                  sort, measure):
    sign_in_demo(client)
    shown = [int(pid) for pid in rows(client.get(f"/clinic/patients?sort={sort}").data.decode())]
    changes = {row.patient_id: row.latest - row.baseline for row in session.scalars(
        select(MeasureSummary).where(MeasureSummary.measure == measure))}
    ordered = [changes[pid] for pid in shown if pid in changes]
    assert ordered and ordered == sorted(ordered)
    # Patients without a score of the measure come last.
    assert all(pid not in changes for pid in shown[len(ordered):])


def test_every_dashboard_read_is_audited_with_the_patients_shown(client, seeded, session):
    from outcomes.models import AuditEvent

    sign_in_demo(client)
    for query in ("", "filter=bogus"):
        html = client.get(f"/clinic/patients?{query}").data.decode()
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "dashboard.view")
                                .order_by(AuditEvent.id.desc())).first()
        assert sorted(event.details["patients"]) == sorted(int(p) for p in rows(html))
