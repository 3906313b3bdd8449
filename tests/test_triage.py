"""Issue 9 items 4-6 and issue 8 item 8 (the dashboard search): alerts that say what the
patient answered, the triage inbox, the dashboard's counts, searches kept out of URLs, and
help one tap away with only the response time the clinic itself has set."""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest
from sqlalchemy import select

import instruments
from outcomes import clock as app_clock
from outcomes.extensions import db
from outcomes.models import Alert, AuditEvent, Clinic, Patient, User, utcnow
from outcomes.services import courses, triage
from outcomes.services.assessments import submit_assessment
from outcomes.services.audit import Actor

from .conftest import sign_in, statements

NOW = dt.datetime(2026, 6, 1, 15, 0, tzinfo=dt.timezone.utc)
PHQ9_ITEM9 = instruments.get("phq9").items[8].text


def submit(app, patient_id: int, key: str, answers, form_key: str,
           user_id: int | None = None, administered_at: dt.datetime | None = None):
    """Submit through the service, as the patient (or a clinician entering a paper form)."""
    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        user = db.session.get(User, user_id or patient.user_id)
        submission = submit_assessment(db.session, Actor(user), patient, key, answers,
                                       form_key, administered_at=administered_at)
        db.session.commit()
        return submission.assessment.id, [alert.id for alert in submission.alerts]


def described(app, alert_id: int, now: dt.datetime | None = None) -> triage.AlertDescription:
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        description = triage.describe_alert(alert, triage.alert_instrument(alert),
                                            now or alert.raised_at + dt.timedelta(hours=2))
        # Touch what the templates read while the session is open.
        description.answers, description.entered_by  # noqa: B018
        return description


def forget_evidence(app, alert_id: int) -> int:
    """Make an alert look like one stored before evidence was kept (empty evidence)."""
    with app.app_context():
        db.session.execute(Alert.__table__.update().where(Alert.id == alert_id)
                           .values(evidence={}))
        db.session.commit()
    return alert_id


# --- what an alert says ------------------------------------------------------------------

@pytest.mark.parametrize("item9, words", [(1, "Several days"), (2, "More than half the days"),
                                          (3, "Nearly every day")])
def test_an_item_9_alert_says_the_item_and_the_answer_the_patient_chose(app, world, item9,
                                                                         words):
    _, (alert_id,) = submit(app, world.patient.id, "phq9", [0] * 8 + [item9], "k")
    d = described(app, alert_id)
    assert d.instrument == "PHQ-9" and d.entered_by == "the patient"
    assert [(a.number, a.text, a.value, a.label) for a in d.answers] == [
        (9, PHQ9_ITEM9, item9, words)]
    assert d.summary == f"PHQ-9 item 9 · '{words}' · 2 h ago"
    assert d.answered_at is not None and not d.unsaved


def test_an_alert_stored_without_evidence_is_described_from_its_records_answers(app, world):
    """Older alerts: the definition's own flag rule picks the items from the stored answers."""
    _, (blank,) = submit(app, world.patient.id, "phq9", [1] * 8 + [None], "blank")
    d = described(app, forget_evidence(app, blank))
    assert [(a.number, a.value, a.label) for a in d.answers] == [(9, None, None)]
    assert d.summary.startswith("PHQ-9 item 9 · left blank · ")

    # (Another patient: while the first alert is open, the same disclosure opens no other.)
    _, (positive,) = submit(app, world.other_patient.id, "phq9", [3] * 8 + [2], "positive")
    d = described(app, forget_evidence(app, positive))
    assert [(a.number, a.label) for a in d.answers] == [(9, "More than half the days")]


def test_an_after_infusion_alert_names_each_answer_that_raised_it(app, world):
    after = instruments.get("after-infusion")
    answers = [0] * len(after.items)
    numbers = {item.id: item.number for item in after.items}
    answers[numbers["confusion"] - 1] = 1
    answers[numbers["nausea"] - 1] = 3
    answers[numbers["headache"] - 1] = 2  # moderate: not an alerting answer
    _, (alert_id,) = submit(app, world.patient.id, "after-infusion", answers, "k")
    expected = sorted([(numbers["nausea"], "Severe"), (numbers["confusion"], "Mild")])
    for alert in (alert_id, forget_evidence(app, alert_id)):
        d = described(app, alert)
        assert [(a.number, a.label) for a in d.answers] == expected
        assert d.summary.endswith("(+1 more) · 2 h ago")


def test_a_change_alert_shows_the_baseline_and_current_totals(app, world):
    submit(app, world.patient.id, "pcl5", [1] * 20, "base", administered_at=NOW
           - dt.timedelta(days=14))
    _, (alert_id,) = submit(app, world.patient.id, "pcl5-weekly", [2] * 10 + [1] * 10, "worse")
    d = described(app, alert_id)
    assert (d.baseline, d.current, d.kind) == (20, 30, "Clinically meaningful worsening")
    assert d.summary == "PCL-5 20 → 30 · 2 h ago"
    old = described(app, forget_evidence(app, alert_id))
    assert (old.baseline, old.current) == (None, 30)
    assert old.summary.startswith("PCL-5 total 30 · ")


def test_a_paper_form_says_who_entered_it(app, world):
    _, (alert_id,) = submit(app, world.patient.id, "phq9", [0] * 8 + [1], "paper",
                            user_id=world.clinician.id,
                            administered_at=utcnow() - dt.timedelta(days=1))
    d = described(app, alert_id)
    assert d.entered_by == f"a paper form entered by {world.clinician.email}"


def test_an_alert_from_a_form_sent_incomplete_uses_its_evidence(app, world):
    with app.app_context():
        alert = Alert(patient_id=world.patient.id, submission_key="x" * 64,
                      instrument_key="phq9", kind="suicide_risk", value="positive",
                      reason="r", crisis=True, evidence={"9": 2}, raised_at=NOW)
        d = triage.describe_alert(alert, instruments.get("phq9"), NOW + dt.timedelta(minutes=5))
    assert d.unsaved and d.answered_at is None and "not stored" in d.entered_by
    assert d.summary == "PHQ-9 item 9 · 'More than half the days' · 5 min ago"


@pytest.mark.parametrize("seconds, age", [(0, "just now"), (59, "just now"), (60, "1 min ago"),
                                          (3599, "59 min ago"), (3600, "1 h ago"),
                                          (47 * 3600, "47 h ago"), (48 * 3600, "2 d ago"),
                                          (-30, "just now")])
def test_ages_read_at_a_glance(seconds, age):
    assert triage.alert_age(NOW, NOW + dt.timedelta(seconds=seconds)) == age


# --- the inbox ------------------------------------------------------------------------------

@pytest.fixture
def inbox(app, world, factory):
    """Alerts of several kinds and ages: the clinic's patient (assigned to the world's
    clinician), a colleague's patient, and the other clinic's patient."""
    colleague = factory.staff(world.clinic)
    theirs = factory.patient(world.clinic, colleague, name="Robin Colleague")
    after = [0] * len(instruments.get("after-infusion").items)
    after[0] = 3
    ids = {
        "review_old": submit(app, world.patient.id, "after-infusion", after, "a")[1][0],
        "crisis_new": submit(app, world.patient.id, "phq9", [0] * 8 + [1], "b")[1][0],
        "crisis_old": submit(app, theirs.id, "phq9", [0] * 8 + [3], "c")[1][0],
        "elsewhere": submit(app, world.other_patient.id, "phq9", [0] * 8 + [2], "d")[1][0],
    }
    # Ages: the colleague's crisis alert is the oldest, then the review, then the new one.
    with app.app_context():
        for key, hours in (("crisis_old", 30), ("review_old", 20), ("crisis_new", 1)):
            db.session.execute(Alert.__table__.update().where(Alert.id == ids[key])
                               .values(raised_at=utcnow() - dt.timedelta(hours=hours)))
        db.session.commit()
    return ids


def listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="alert-(\d+)"', html)]


def test_the_inbox_lists_crisis_alerts_first_then_the_longest_waiting(client, world, inbox,
                                                                      session):
    sign_in(client, world.clinician)
    response = client.get("/clinic/alerts")
    html = response.data.decode()
    assert response.status_code == 200
    assert listed(html) == [inbox["crisis_old"], inbox["crisis_new"], inbox["review_old"]]
    assert "'Nearly every day'" not in html  # the summary line is the dashboard's
    assert "“Nearly every day”" in html and "30 h ago" in html and PHQ9_ITEM9 in html
    assert "Robin Colleague" in html and world.clinician.email in html
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "alerts.view")).one()
    assert sorted(event.details["patients"]) == sorted(
        {session.get(Alert, i).patient_id for i in listed(html)})


@pytest.mark.parametrize("query, expected", [
    ("kind=crisis", ["crisis_old", "crisis_new"]),
    ("kind=other", ["review_old"]),
    ("kind=clinician_review", ["review_old"]),
    ("mine=y", ["crisis_new", "review_old"]),
    ("mine=y&kind=crisis", ["crisis_new"]),
])
def test_inbox_filters(client, world, inbox, query, expected):
    sign_in(client, world.clinician)
    html = client.get(f"/clinic/alerts?{query}").data.decode()
    assert listed(html) == [inbox[key] for key in expected]


def test_a_bad_inbox_filter_gets_a_message_and_shows_everything(client, world, inbox, session):
    sign_in(client, world.clinician)
    response = client.get("/clinic/alerts?kind=bogus")
    assert response.status_code == 400 and b"were not valid and were reset" in response.data
    shown = listed(response.data.decode())
    assert len(shown) == 3
    # What the page showed is a read of those patients' records: audited despite the 400.
    read = session.scalars(select(AuditEvent).where(AuditEvent.action == "alerts.view")).one()
    assert sorted(read.details["alerts"]) == sorted(shown)


def test_acknowledge_from_the_inbox_and_a_second_time(client, world, inbox, session):
    sign_in(client, world.clinician)
    alert_id = inbox["crisis_new"]
    response = client.post(f"/clinic/alerts/{alert_id}/acknowledge",
                           data={"note": "Called; safe, plan agreed.", "back": "inbox"})
    assert response.status_code == 302 and response.location.endswith("/clinic/alerts")
    page = client.get("/clinic/alerts").data.decode()
    assert "Alert acknowledged." in page and alert_id not in listed(page)
    again = client.post(f"/clinic/alerts/{alert_id}/acknowledge",
                        data={"note": "Me too.", "back": "inbox"}, follow_redirects=True)
    text = again.data.decode()
    assert f"already acknowledged by {world.clinician.email}" in text
    assert "Called; safe, plan agreed." in text and "Nothing was changed." in text
    assert session.get(Alert, alert_id).acknowledgement_note == "Called; safe, plan agreed."
    empty = client.post(f"/clinic/alerts/{inbox['review_old']}/acknowledge",
                        data={"note": " ", "back": "inbox"}, follow_redirects=True)
    assert b"Say what was done" in empty.data
    assert session.get(Alert, inbox["review_old"]).is_open


def test_other_clinics_alerts_are_invisible_and_cannot_be_acknowledged(client, world, inbox,
                                                                       session):
    sign_in(client, world.other_clinician)
    html = client.get("/clinic/alerts").data.decode()
    assert listed(html) == [inbox["elsewhere"]] and "Robin Colleague" not in html
    response = client.post(f"/clinic/alerts/{inbox['crisis_new']}/acknowledge",
                           data={"note": "x", "back": "inbox"})
    assert response.status_code == 404 and session.get(Alert, inbox["crisis_new"]).is_open


def test_patients_and_visitors_cannot_reach_the_inbox(client, world, inbox):
    assert client.get("/clinic/alerts").status_code == 302  # to the sign-in page
    sign_in(client, world.patient_user)
    assert client.get("/clinic/alerts").status_code == 404


def test_the_patient_record_describes_its_alerts(client, world, inbox):
    sign_in(client, world.clinician)
    html = client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert "“Several days”" in html and PHQ9_ITEM9 in html and "Entered by the patient" in html


# --- the dashboard --------------------------------------------------------------------------

def counts(html: str) -> dict[str, int]:
    found = re.findall(r'<strong>(\d+)</strong> ([a-z ]+?)s?</a>', html)
    return {label.strip(): int(number) for number, label in found}


def test_the_dashboard_counts_link_to_their_lists(client, world, inbox, app, session):
    with app.app_context():
        zone = zoneinfo.ZoneInfo(world.clinic.timezone)
        today = dt.datetime.now(zone).date()
        booked = dt.datetime.combine(today, dt.time(23, 30), zone)
        courses.start_course(db.session, Actor(db.session.get(User, world.clinician.id)),
                             db.session.get(Patient, world.patient.id), "ptsd", 6, today,
                             next_infusion_at=booked)
        db.session.commit()
    sign_in(client, world.clinician)
    html = client.get("/clinic/patients").data.decode()
    found = counts(html)
    assert found["open crisis alert"] == 2 and found["other alert"] == 1
    assert found["infusion booked today"] == 1
    assert 'href="/clinic/alerts?kind=crisis"' in html
    assert 'href="/clinic/patients?filter=infusion_today"' in html
    shown = client.get("/clinic/patients?filter=infusion_today").data.decode()
    assert re.findall(r'href="/clinic/patients/(\d+)"', shown) == [str(world.patient.id)]
    mine = counts(client.get("/clinic/patients?mine=y").data.decode())
    assert mine["open crisis alert"] == 1 and mine["other alert"] == 1


def test_the_alert_column_names_the_kind_answer_and_age(client, world, inbox):
    sign_in(client, world.clinician)
    html = client.get("/clinic/patients").data.decode()
    assert "PHQ-9 item 9 · &#39;Several days&#39; · 1 h ago" in html
    assert "PHQ-9 item 9 · &#39;Nearly every day&#39; · 30 h ago" in html


def test_my_patients_filter(client, world, inbox):
    sign_in(client, world.clinician)
    html = client.get("/clinic/patients?mine=y").data.decode()
    assert re.findall(r'href="/clinic/patients/(\d+)"', html) == [str(world.patient.id)]


# --- search without the name in the URL -----------------------------------------------------

def test_a_search_never_puts_the_name_or_mrn_in_a_url(client, world, factory):
    for number in range(3):
        factory.patient(world.clinic, world.clinician, name=f"Zed Searchable {number}",
                        identifier=f"MRN-77{number}")
    sign_in(client, world.clinician)
    for text in ("Searchable", "MRN-771"):
        response = client.post("/clinic/patients/search", data={"q": text, "sort": "name"})
        assert response.status_code == 302
        location = response.location
        assert text.lower() not in location.lower() and "q=" not in location
        assert re.search(r"search=[\w-]{16}", location) and "sort=name" in location
        page = client.get(location).data.decode()
        names = re.findall(r'title="(Zed Searchable \d)"', page)
        assert names == (["Zed Searchable 0", "Zed Searchable 1", "Zed Searchable 2"]
                         if text == "Searchable" else ["Zed Searchable 1"])
        assert "Pat Example" not in page
        # Every link of the page (pages, counts, clear) is free of the search text too.
        for href in re.findall(r'href="([^"]+)"', page):
            assert text.lower() not in href.lower()


def test_the_old_query_parameter_searches_nothing(client, world, factory):
    factory.patient(world.clinic, world.clinician, name="Zed Searchable")
    sign_in(client, world.clinician)
    page = client.get("/clinic/patients?q=Searchable").data.decode()
    assert "Pat Example" in page and "Zed Searchable" in page


def test_an_unknown_or_expired_search_reference_says_so(client, world):
    sign_in(client, world.clinician)
    response = client.get("/clinic/patients?search=not-a-real-reference")
    assert response.status_code == 400 and b"That search has expired" in response.data
    assert b"Pat Example" in response.data


def test_another_browser_cannot_use_someone_elses_search_reference(app, client, world):
    sign_in(client, world.clinician)
    location = client.post("/clinic/patients/search", data={"q": "Pat"}).location
    other = app.test_client()
    sign_in(other, world.clinician)
    assert other.get(location).status_code == 400


def test_a_search_form_with_bad_filters_changes_nothing(client, world):
    sign_in(client, world.clinician)
    response = client.post("/clinic/patients/search", data={"q": "x", "filter": "bogus"})
    assert response.status_code == 400 and b"not valid" in response.data


# --- help, and what the patient is told -----------------------------------------------------

def test_help_is_one_tap_away_on_every_patient_page(client, world):
    assert b"988" in client.get("/me/help").data  # signed out: still there
    assert b"Need help now?" in client.get("/login").data
    sign_in(client, world.patient_user)
    for path in ("/me/", "/me/questionnaires/phq9", "/me/help"):
        html = client.get(path).data.decode()
        assert 'href="/me/help"' in html and "Need help now?" in html, path
    help_page = client.get("/me/help").data.decode()
    for number in ('href="tel:988"', 'href="sms:988"', "911", 'href="tel:+15550100"'):
        assert number in help_page
    assert "has been told" not in help_page


def test_without_a_clinic_setting_the_patient_is_promised_nothing(client, world, app):
    assessment_id, _ = submit(app, world.patient.id, "phq9", [0] * 8 + [1], "k")
    sign_in(client, world.patient_user)
    html = client.get(f"/me/results/{assessment_id}").data.decode()
    assert "has been told." in html
    for promise in ("will contact you", "will call", "within"):
        assert promise not in html


def test_the_clinics_own_wording_is_shown_after_an_alert(client, world, app, runner, session):
    wording = "We read alerts on weekdays from 8 am to 6 pm and call you the same day."
    result = runner.invoke(args=["set-alert-response", "--clinic", "Harbour Clinic",
                                 "--wording", wording])
    assert result.exit_code == 0, result.output
    assessment_id, _ = submit(app, world.patient.id, "phq9", [0] * 8 + [2], "k")
    sign_in(client, world.patient_user)
    assert wording in client.get(f"/me/results/{assessment_id}").data.decode()
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "clinic.update")).one()
    assert event.new_values == {"alert_response_wording": wording}
    assert runner.invoke(args=["set-alert-response", "--clinic", "Harbour Clinic",
                               "--clear"]).exit_code == 0
    session.expire_all()
    assert session.get(Clinic, world.clinic.id).alert_response_wording is None


@pytest.mark.parametrize("args, message", [
    (["--clinic", "Nowhere", "--wording", "x"], "No clinic named"),
    (["--clinic", "Harbour Clinic"], "either --wording TEXT or --clear"),
    (["--clinic", "Harbour Clinic", "--wording", "x", "--clear"], "either --wording"),
    (["--clinic", "Harbour Clinic", "--wording", "   "], "blank"),
    (["--clinic", "Harbour Clinic", "--wording", "x" * 301],
     "The wording is 301 characters long; keep it to 300 (one or two short sentences)."),
])
def test_bad_wording_settings_exit_2_and_change_nothing(runner, world, session, args, message):
    result = runner.invoke(args=["set-alert-response", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert session.get(Clinic, world.clinic.id).alert_response_wording is None


def test_the_demo_clinic_sets_its_wording(app, session):
    from outcomes import demo

    with app.app_context():
        demo.seed_demo(db.session, patients=2, weeks=2, seed=1)
        db.session.commit()
    clinic = session.scalars(select(Clinic).where(Clinic.name == demo.CLINIC_NAME)).one()
    assert clinic.alert_response_wording == demo.ALERT_RESPONSE_WORDING


def test_after_a_non_crisis_alert_the_patient_is_told_with_the_clinics_wording(client, world,
                                                                                app, runner):
    after = [0] * len(instruments.get("after-infusion").items)
    after[0] = 3
    assessment_id, (alert_id,) = submit(app, world.patient.id, "after-infusion", after, "k")
    sign_in(client, world.patient_user)
    html = client.get(f"/me/results/{assessment_id}").data.decode()
    assert "has been told about your answers." in html and 'class="crisis"' not in html
    wording = "We call back within one working day."
    runner.invoke(args=["set-alert-response", "--clinic", "Harbour Clinic", "--wording", wording])
    assert wording in client.get(f"/me/results/{assessment_id}").data.decode()
    gad7, alerts = submit(app, world.patient.id, "gad7", [1] * 7, "g")
    assert alerts == []
    assert "has been told" not in client.get(f"/me/results/{gad7}").data.decode()


# --- a later answer filed under the open alert ----------------------------------------------

@pytest.fixture
def pinned(monkeypatch):
    """The app's clock, set by hand: ``pinned.now = ...``."""
    class Pinned:
        now = NOW

    monkeypatch.setattr(app_clock, "utcnow", lambda: Pinned.now)
    return Pinned


def test_a_worse_answer_linked_to_the_open_alert_is_what_the_alert_says_first(app, world,
                                                                              pinned):
    """A form left blank on item 9, then "Nearly every day": one alert (issue 9), described by
    the latest answer, with the first one after it."""
    pinned.now = NOW - dt.timedelta(hours=72)
    _, (alert_id,) = submit(app, world.patient.id, "phq9", [1] * 8 + [None], "blank")
    pinned.now = NOW - dt.timedelta(hours=2)
    worse, opened = submit(app, world.patient.id, "phq9", [1] * 8 + [3], "worse")
    assert opened == []  # linked, not a second alert
    d = described(app, alert_id, now=NOW)
    assert d.latest is not None and d.latest.changed and d.latest.assessment.id == worse
    assert [(a.number, a.label) for a in d.latest.answers] == [(9, "Nearly every day")]
    assert [(a.number, a.value) for a in d.answers] == [(9, None)]  # what raised it
    assert d.summary == ("PHQ-9 item 9 · 'Nearly every day' (latest, 2 h ago) · first left "
                         "blank · 3 d ago")
    assert d.seen == 1


def test_the_same_answer_repeated_keeps_the_first_description(app, world):
    _, (alert_id,) = submit(app, world.patient.id, "phq9", [0] * 8 + [2], "a")
    again, _ = submit(app, world.patient.id, "phq9", [1] * 8 + [2], "b")
    d = described(app, alert_id)
    assert d.latest is not None and not d.latest.changed and d.latest.assessment.id == again
    assert d.summary == "PHQ-9 item 9 · 'More than half the days' · 2 h ago"


def test_a_higher_total_linked_to_an_open_change_alert_is_shown(app, world, pinned):
    pinned.now = NOW - dt.timedelta(hours=5)
    submit(app, world.patient.id, "pcl5", [1] * 20, "base",
           administered_at=NOW - dt.timedelta(days=14))
    _, (alert_id,) = submit(app, world.patient.id, "pcl5-weekly", [2] * 10 + [1] * 10, "worse")
    pinned.now = NOW - dt.timedelta(hours=1)
    higher, opened = submit(app, world.patient.id, "pcl5-weekly", [2] * 20, "higher")
    assert opened == []
    d = described(app, alert_id, now=NOW)
    assert d.latest is not None and (d.latest.total, d.latest.changed) == (40, True)
    assert d.summary == "PCL-5 20 → 40 (latest, 1 h ago) · first 30 · 5 h ago"


def test_every_page_shows_the_latest_answer_and_the_inbox_order_stands(client, world, inbox,
                                                                        app):
    worse, _ = submit(app, world.patient.id, "phq9", [0] * 8 + [3], "worse")
    sign_in(client, world.clinician)
    html = client.get("/clinic/alerts").data.decode()
    assert listed(html) == [inbox["crisis_old"], inbox["crisis_new"], inbox["review_old"]]
    item = html[html.index(f'id="alert-{inbox["crisis_new"]}"'):]
    item = item[:item.index("</li>\n  \n  <li") if "</li>\n  \n  <li" in item else None]
    assert item.index("Latest — changed") < item.index("“Nearly every day”") \
        < item.index("First raised") < item.index("“Several days”")
    assert 'name="seen" value="1"' in item
    dashboard = client.get("/clinic/patients").data.decode()
    assert "PHQ-9 item 9 · &#39;Nearly every day&#39; (latest, just now) · first " \
           "&#39;Several days&#39;" in dashboard
    record = client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert "Latest — changed" in record and "“Nearly every day”" in record
    assert 'name="seen" value="1"' in record
    page = client.get(f"/clinic/patients/{world.patient.id}/assessments/{worse}")
    assert "Latest — changed" in page.data.decode()


def count_statements(app, path: str, client) -> int:
    with statements(app) as seen:
        assert client.get(path).status_code == 200
    return len(seen)


def test_the_inbox_reads_linked_answers_in_bounded_statements(client, world, inbox, app):
    """The latest linked records of all listed alerts load at once, never one by one."""
    submit(app, world.patient.id, "phq9", [0] * 8 + [3], "l1")
    sign_in(client, world.clinician)
    client.get("/clinic/alerts")  # warm: the first request may load things once
    before = count_statements(app, "/clinic/alerts", client)
    submit(app, world.patient.id, "phq9", [1] * 8 + [2], "l2")
    colleague_patient = inbox_patient(app, inbox["crisis_old"])
    submit(app, colleague_patient, "phq9", [2] * 8 + [1], "l3")
    after = count_statements(app, "/clinic/alerts", client)
    assert after == before


def inbox_patient(app, alert_id: int) -> int:
    with app.app_context():
        return db.session.get(Alert, alert_id).patient_id
