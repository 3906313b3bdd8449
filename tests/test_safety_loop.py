"""The safety loop: every way a PHQ-9 item-9 risk can enter shows the crisis panel and opens
exactly one alert, or neither (issue 9 items 1-3); one disclosure is one alert however often
it is sent; a paper form is one record at any hour; copies sent at once are one record.

Each test runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL, through the real app.
"""
from __future__ import annotations

import datetime as dt
import re
import threading
import time
import zoneinfo

import pytest
from sqlalchemy import func, select

import instruments
from outcomes import create_app
from outcomes.extensions import db
from outcomes.models import (
    Alert,
    AlertAssessment,
    Assessment,
    AssessmentAnswer,
    AuditEvent,
    Patient,
    User,
)
from outcomes.services import assessments
from outcomes.services.audit import Actor

from .conftest import base_config, sign_in

ZONE = zoneinfo.ZoneInfo("America/New_York")  # the test clinic's zone (conftest)
PANEL = 'class="crisis"'
LINE = 'class="crisis-line"'


def answers_form(answers, key="k-1"):
    data = {"submission_key": key}
    data.update({f"item_{n}": str(v) for n, v in enumerate(answers, start=1) if v is not None})
    return data


def paper_form(answers, key="paper-1", date="2026-01-05", **extra):
    return {**answers_form(answers, key), "administered_on": date, **extra}


def count(session, model, *where):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def alerts(session):
    session.expire_all()
    return session.scalars(select(Alert).order_by(Alert.id)).all()


def links(session):
    session.expire_all()
    return [(link.alert_id, link.assessment_id)
            for link in session.scalars(select(AlertAssessment).order_by(
                AlertAssessment.assessment_id))]


def shows_panel_first(page: str) -> bool:
    """The full crisis panel, before the form's own error summary and heading (on a
    clinician's record, after the risk box that heads the page)."""
    if 'class="alert-box"' in page:
        return page.index('class="alert-box"') < page.index(PANEL) < page.index("<ol>")
    return PANEL in page and page.index(PANEL) < page.index("<h1")


@pytest.fixture
def patient_client(app, world):
    client = app.test_client()
    sign_in(client, world.patient_user)
    return client


@pytest.fixture
def clinician_client(app, world):
    client = app.test_client()
    sign_in(client, world.clinician)
    return client


class Clock:
    """The submission service's clock, pinned; ``at`` sets it, ``tick`` moves it on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = dt.datetime.now(dt.timezone.utc)
        # The submission service's alone: the whole app's clock moved hours on would end the
        # signed-in sessions these tests post through.
        monkeypatch.setattr(assessments, "utcnow", lambda: self.now)

    def at(self, day: dt.date, hour: int, minute: int = 0) -> None:
        self.now = dt.datetime.combine(day, dt.time(hour, minute), ZONE).astimezone(dt.timezone.utc)

    def tick(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def yesterday() -> dt.date:
    """A clinic day safely in the past by the real clock too (the form's date check)."""
    return dt.datetime.now(ZONE).date() - dt.timedelta(days=1)


# --- the patient's own form -------------------------------------------------------------

@pytest.mark.parametrize("item9", [1, 2, 3])
def test_a_complete_form_with_item9_above_zero_shows_the_panel_and_opens_one_alert(
        patient_client, session, item9):
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([0] * 8 + [item9]))
    assert shows_panel_first(patient_client.get(response.location).data.decode())
    alert = alerts(session)[0]
    assert len(alerts(session)) == 1
    assert (alert.instrument_key, alert.kind, alert.value, alert.crisis, alert.evidence) == \
        ("phq9", "suicide_risk", "positive", True, {"9": item9})


def test_a_complete_form_with_item9_blank_shows_the_panel_and_opens_an_unknown_alert(
        patient_client, session):
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([1] * 8 + [None]))
    assert response.status_code == 302
    assert shows_panel_first(patient_client.get(response.location).data.decode())
    [alert] = alerts(session)
    assert (alert.value, alert.evidence) == ("unknown", {"9": None})


def test_item9_at_zero_shows_neither(patient_client, session):
    response = patient_client.post("/me/questionnaires/phq9", data=answers_form([2] * 8 + [0]))
    assert PANEL not in patient_client.get(response.location).data.decode()
    assert alerts(session) == []


def test_an_incomplete_form_with_item9_above_zero_shows_the_panel_first_and_opens_one_alert(
        patient_client, session):
    for key in ("k-1", "k-1", "k-2"):  # sent again, and again from a reloaded page
        response = patient_client.post("/me/questionnaires/phq9",
                                       data=answers_form([1, None] + [1] * 6 + [2], key))
        page = response.data.decode()
        assert response.status_code == 422 and shows_panel_first(page)
        assert "has been told" in page and LINE not in page
    [alert] = alerts(session)
    assert (alert.assessment_id, alert.value, alert.evidence, alert.instrument_key) == \
        (None, "positive", {"9": 2}, "phq9")
    assert count(session, Assessment) == 0


@pytest.mark.parametrize("item9", [None, 0])
def test_an_incomplete_form_where_item9_says_nothing_yet_shows_a_short_line_and_no_alert(
        patient_client, session, item9):
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([1, None, None] + [1] * 5 + [item9]))
    page = response.data.decode()
    assert response.status_code == 422 and PANEL not in page and "has been told" not in page
    line = page.index(LINE)
    assert line < page.index("<h1") and 'href="tel:988"' in page[line:line + 600]
    assert 'class="item invalid" id="item-2"' in page  # the gaps are marked
    assert alerts(session) == [] and count(session, Assessment) == 0


def test_an_incomplete_form_then_the_completed_form_is_one_alert_linked_to_the_record(
        patient_client, session):
    patient_client.post("/me/questionnaires/phq9",
                        data=answers_form([1, None] + [1] * 6 + [2], "k-1"))
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([1] * 8 + [2], "k-1"))
    assert response.status_code == 302
    assert shows_panel_first(patient_client.get(response.location).data.decode())
    [alert] = alerts(session)
    record = session.scalars(select(Assessment)).one()
    assert alert.assessment_id is None and links(session) == [(alert.id, record.id)]
    link = session.scalars(select(AuditEvent).where(AuditEvent.action == "alert.link")).one()
    assert (link.object_id, link.details) == (str(alert.id),
                                              {"kind": "suicide_risk", "assessment": record.id})


def test_the_same_answers_sent_again_later_link_to_the_open_alert(
        patient_client, session, clock):
    first = patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 9, "a"))
    clock.tick(minutes=5)
    reloaded = patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 9, "b"))
    assert reloaded.location == first.location  # the back button: one record
    clock.tick(hours=2)
    later = patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 9, "c"))
    assert later.location != first.location
    assert shows_panel_first(patient_client.get(later.location).data.decode())
    [alert] = alerts(session)
    records = session.scalars(select(Assessment).order_by(Assessment.id)).all()
    assert len(records) == 2 and alert.assessment_id == records[0].id
    assert links(session) == [(alert.id, records[1].id)]


def test_after_acknowledgement_a_new_disclosure_opens_a_new_alert(
        patient_client, clinician_client, session):
    patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 9, "a"))
    [first] = alerts(session)
    clinician_client.post(f"/clinic/alerts/{first.id}/acknowledge", data={"note": "Called."})
    patient_client.post("/me/questionnaires/phq9", data=answers_form([0] * 8 + [3], "b"))
    assert [a.is_open for a in alerts(session)] == [False, True]
    assert links(session) == []


# --- paper forms -------------------------------------------------------------------------

def test_a_paper_form_with_item9_above_zero_shows_the_panel_and_opens_one_alert_once(
        clinician_client, session, world):
    path = f"/clinic/patients/{world.patient.id}/paper/phq9"
    first = clinician_client.post(path, data=paper_form([0] * 8 + [2]))
    again = clinician_client.post(path, data=paper_form([0] * 8 + [2]))
    assert first.location == again.location and "/assessments/" in first.location
    assert shows_panel_first(clinician_client.get(first.location).data.decode())
    [alert] = alerts(session)
    assert (alert.value, alert.evidence, count(session, Assessment)) == ("positive", {"9": 2}, 1)


def test_a_paper_form_with_item9_blank_shows_the_panel_and_opens_an_unknown_alert(
        clinician_client, session, world):
    response = clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/phq9",
                                     data=paper_form([2] * 8 + [None]))
    assert shows_panel_first(clinician_client.get(response.location).data.decode())
    [alert] = alerts(session)
    assert (alert.value, alert.evidence) == ("unknown", {"9": None})


def test_a_refused_paper_form_with_item9_above_zero_alerts_and_its_fixed_copy_links(
        clinician_client, session, world):
    path = f"/clinic/patients/{world.patient.id}/paper/phq9"
    refused = clinician_client.post(path, data=paper_form([0] * 8 + [1], date="2999-01-01"))
    assert refused.status_code == 422 and shows_panel_first(refused.data.decode())
    [alert] = alerts(session)
    assert alert.assessment_id is None and count(session, Assessment) == 0
    keyless = paper_form([0] * 8 + [1])
    del keyless["submission_key"]  # a broken page is still heard, and still once
    assert clinician_client.post(path, data=keyless).status_code == 422
    fixed = clinician_client.post(path, data=paper_form([0] * 8 + [1]))
    assert fixed.status_code == 302
    record = session.scalars(select(Assessment)).one()
    assert [a.id for a in alerts(session)] == [alert.id]
    assert links(session) == [(alert.id, record.id)]
    page = clinician_client.get(fixed.location).data.decode()
    # The linked alert is shown as what the patient said, not as the rule's wording.
    assert shows_panel_first(page) and "item 9" in page and "“Several days”" in page


@pytest.mark.parametrize("acknowledged", [False, True])
def test_a_correction_keeping_item9_positive_opens_no_second_alert(
        clinician_client, session, world, acknowledged):
    base = f"/clinic/patients/{world.patient.id}"
    clinician_client.post(f"{base}/paper/phq9", data=paper_form([0] * 8 + [1], key="p"))
    original = session.scalars(select(Assessment)).one()
    [alert] = alerts(session)
    if acknowledged:
        clinician_client.post(f"/clinic/alerts/{alert.id}/acknowledge", data={"note": "Seen."})
    response = clinician_client.post(
        f"{base}/assessments/{original.id}/correct",
        data=paper_form([2] * 8 + [3], key="fix", amendment_reason="Misread items 1-9"))
    assert shows_panel_first(clinician_client.get(response.location).data.decode())
    correction = session.scalars(select(Assessment).where(Assessment.amends_id.is_not(None))).one()
    assert [a.id for a in alerts(session)] == [alert.id]
    assert links(session) == [(alert.id, correction.id)]


def test_a_correction_that_discloses_for_the_first_time_opens_an_alert(
        clinician_client, session, world):
    base = f"/clinic/patients/{world.patient.id}"
    clinician_client.post(f"{base}/paper/phq9", data=paper_form([0] * 9, key="p"))
    original = session.scalars(select(Assessment)).one()
    clinician_client.post(f"{base}/assessments/{original.id}/correct",
                          data=paper_form([0] * 8 + [2], key="fix", amendment_reason="Item 9"))
    [alert] = alerts(session)
    assert alert.assessment_id != original.id and alert.evidence == {"9": 2}


def filled(key: str) -> list[int]:
    return [item.min_value for item in instruments.get(key).items]


@pytest.mark.parametrize("key", [i.key for i in instruments.all()])
@pytest.mark.parametrize("hour", [8, 15])
def test_a_paper_form_sent_twice_is_one_record_at_any_hour(
        clinician_client, session, world, clock, key, hour):
    day = yesterday()
    path = f"/clinic/patients/{world.patient.id}/paper/{key}"
    form = paper_form(filled(key), key="form-1", date=day.isoformat())
    clock.at(day, hour)
    first = clinician_client.post(path, data=form)
    clock.tick(seconds=7)  # "now" moves between the two requests
    second = clinician_client.post(path, data=form)
    clock.tick(minutes=3)  # reloaded under a new key, the same answers put back
    reloaded = clinician_client.post(path, data={**form, "submission_key": "form-2"})
    assert first.status_code == second.status_code == reloaded.status_code == 302
    assert count(session, Assessment) == 1


@pytest.mark.parametrize("second_key", ["form-1", "form-2"])
def test_a_paper_form_sent_at_eight_and_again_at_three_or_next_day_is_one_record(
        clinician_client, session, world, clock, second_key):
    day = yesterday() - dt.timedelta(days=1)
    path = f"/clinic/patients/{world.patient.id}/paper/phq9"
    form = paper_form([1] * 9, key="form-1", date=day.isoformat())
    clock.at(day, 8)
    clinician_client.post(path, data=form)
    clock.at(day, 15)
    clinician_client.post(path, data={**form, "submission_key": second_key})
    clock.at(day + dt.timedelta(days=1), 9)  # entered again, from a fresh page, a day later
    clinician_client.post(path, data={**form, "submission_key": "form-3"})
    record = session.scalars(select(Assessment)).one()
    assert record.administered_at == dt.datetime.combine(day, dt.time(8), ZONE)
    assert len(alerts(session)) == 1


def test_a_paper_form_of_today_before_noon_is_dated_when_entered(
        clinician_client, session, world, clock):
    today = dt.datetime.now(ZONE).date()
    clock.at(today, 0, 30)
    clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/gad7",
                          data=paper_form([1] * 7, date=today.isoformat()))
    record = session.scalars(select(Assessment)).one()
    assert record.administered_at == clock.now


# --- at once -----------------------------------------------------------------------------

@pytest.fixture
def app(database_url):
    """The app with a connection for each of the twenty requests these tests send at once, as
    a deployment sizes DATABASE_POOL_SIZE to its threads: the pool is not what is tested."""
    app = create_app({**base_config(database_url), "DATABASE_POOL_SIZE": 25})
    yield app
    with app.app_context():
        db.engine.dispose()


def send_at_once(app, cookie_from, requests):
    """Each (path, data) from its own thread and client, all released together."""
    barrier = threading.Barrier(len(requests))
    responses = [None] * len(requests)

    def send(index, path, data):
        client = app.test_client()
        client.set_cookie("session", cookie_from.get_cookie("session").value)
        barrier.wait()
        responses[index] = client.post(path, data=data)

    threads = [threading.Thread(target=send, args=(n, *request))
               for n, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_twenty_fresh_forms_with_the_same_answers_sent_at_once_are_one_record_and_one_alert(
        app, patient_client, session):
    responses = send_at_once(app, patient_client, [
        ("/me/questionnaires/phq9", answers_form([1] * 8 + [2], f"fresh-{n}"))
        for n in range(20)])
    assert [r.status_code for r in responses] == [302] * 20
    assert len({r.location for r in responses}) == 1
    assert count(session, Assessment) == 1 and len(alerts(session)) == 1


def test_twenty_copies_of_a_paper_form_sent_at_once_are_one_record_and_one_alert(
        app, clinician_client, session, world):
    path = f"/clinic/patients/{world.patient.id}/paper/phq9"
    responses = send_at_once(app, clinician_client,
                             [(path, paper_form([1] * 8 + [None], key=f"k-{n % 2}"))
                              for n in range(20)])
    assert [r.status_code for r in responses] == [302] * 20
    assert count(session, Assessment) == 1 and len(alerts(session)) == 1


def test_twenty_incomplete_forms_disclosing_at_once_open_one_alert(app, patient_client, session):
    responses = send_at_once(app, patient_client, [
        ("/me/questionnaires/phq9", answers_form([None] * 8 + [3], f"part-{n}"))
        for n in range(20)])
    assert [r.status_code for r in responses] == [422] * 20
    assert all(shows_panel_first(r.data.decode()) for r in responses)
    assert len(alerts(session)) == 1


# --- one rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("key", [i.key for i in instruments.all()])
def test_every_page_asks_the_definitions_flag_rules(key):
    """What the pages show (crisis panel, flag tags) is what scoring's alerts say, for many
    answer sets of every instrument, blanks included."""
    instrument = instruments.get(key)
    for seed in range(200):
        answers = [None if (seed * 7 + n) % 11 == 0 else
                   item.options[(seed + n * 3) % len(item.options)].value
                   for n, item in enumerate(instrument.items)]
        score = instruments.score(key, answers)
        record = Assessment(instrument_key=key, flags=dict(score.flags), answers=[
            AssessmentAnswer(item_number=item.number, value=value)
            for item, value in zip(instrument.items, score.answers) if value is not None])
        expected = score.alerts
        assert assessments.crisis_flagged(record) == any(flag.crisis for flag in expected)
        assert [text.split(" (")[0].split(":")[0] for text in assessments.flag_texts(record)] \
            == [flag.key.replace("_", " ") for flag in expected]
        # A form sent back incomplete alerts only for what its answers settle: every way of
        # filling its blanks keeps those alerts.
        risk = assessments.risk_in_unsaved_answers(key, answers)
        for fill in range(4):
            completed = [item.options[(fill + n) % len(item.options)].value if a is None else a
                         for n, (item, a) in enumerate(zip(instrument.items, score.answers))]
            raised = {flag.key for flag in instruments.score(key, completed).alerts}
            assert {spec.kind for spec in risk.alerts} <= raised


def test_the_clinicians_record_tags_exactly_the_alerting_flags(
        patient_client, clinician_client, world):
    patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 8 + [None], "a"))
    patient_client.post("/me/questionnaires/gad7", data=answers_form([1] * 7, "b"))
    page = clinician_client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    rows = re.findall(r'<tr id="assessment-\d+">.*?</tr>', page, re.S)
    assert len(rows) == 2
    assert [re.findall(r'<span class="tag alert">([^<]+)</span>', row) for row in rows] == \
        [[], ["suicide risk (item 9): unknown"]]  # newest first: the GAD-7 raises nothing


# --- the migration -----------------------------------------------------------------------

def test_alerts_from_before_revision_0006_get_their_questionnaire(
        app, database_url, patient_client, session, world):
    from sqlalchemy import create_engine, text

    from outcomes import migrate

    patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 9))
    session.close()
    engine = create_engine(database_url)
    try:
        migrate.downgrade(engine, "0005")
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO alert (patient_id, submission_key, kind, value, reason, crisis, "
                "raised_at) VALUES (:patient, 'k', 'suicide_risk', 'positive', 'Item 9', "
                ":yes, :at)"), {"patient": world.patient.id, "yes": True,
                                "at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
    finally:
        migrate.upgrade(engine)
        engine.dispose()
    assert [(a.instrument_key, a.evidence, a.assessment_id is None) for a in alerts(session)] \
        == [("phq9", {}, False), ("phq9", {}, True)]


def test_a_paper_copy_of_the_patients_own_form_of_the_same_day_is_its_own_record(
        patient_client, clinician_client, session, world):
    patient_client.post("/me/questionnaires/gad7", data=answers_form([1] * 7))
    today = dt.datetime.now(ZONE).date().isoformat()
    clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/gad7",
                          data=paper_form([1] * 7, date=today))
    assert sorted(a.source for a in session.scalars(select(Assessment))) == \
        ["patient", "transcribed"]


# --- acknowledging only what was seen ----------------------------------------------------

def seen_on(page: str, alert_id: int) -> str:
    """The ``seen`` count the page's acknowledge form for this alert carries."""
    form = page[page.index(f"/clinic/alerts/{alert_id}/acknowledge"):]
    return re.search(r'name="seen" value="(\d+)"', form).group(1)


@pytest.mark.parametrize("where", ["patient", "inbox"])
def test_an_answer_linked_after_the_page_was_drawn_cannot_be_acknowledged_unseen(
        patient_client, clinician_client, session, world, where):
    patient_client.post("/me/questionnaires/phq9", data=answers_form([0] * 8 + [1], "a"))
    [alert] = alerts(session)
    page_path = f"/clinic/patients/{world.patient.id}" if where == "patient" else "/clinic/alerts"
    seen = seen_on(clinician_client.get(page_path).data.decode(), alert.id)
    assert seen == "0"
    # While the page is open, the patient sends "Nearly every day": linked to the open alert.
    patient_client.post("/me/questionnaires/phq9", data=answers_form([0] * 8 + [3], "b"))
    assert len(links(session)) == 1
    path = f"/clinic/alerts/{alert.id}/acknowledge"
    refused = clinician_client.post(path, data={"note": "Called about 'Several days'.",
                                                "seen": seen, "back": where},
                                    follow_redirects=True)
    page = refused.data.decode()
    assert "New answers arrived for this alert — review them, then acknowledge." in page
    assert "“Nearly every day”" in page and seen_on(page, alert.id) == "1"
    [again] = alerts(session)
    assert again.is_open and again.acknowledgement_note is None
    assert count(session, AuditEvent, AuditEvent.action == "alert.acknowledge") == 0
    # Without the count (an old page), nothing linked may be closed either.
    assert clinician_client.post(path, data={"note": "x", "back": where}).status_code == 302
    assert alerts(session)[0].is_open
    clinician_client.post(path, data={"note": "Called again; safe tonight.", "seen": "1",
                                      "back": where})
    [done] = alerts(session)
    assert not done.is_open and done.acknowledgement_note == "Called again; safe tonight."


def test_a_bad_seen_count_changes_nothing(clinician_client, patient_client, session):
    patient_client.post("/me/questionnaires/phq9", data=answers_form([0] * 8 + [1], "a"))
    [alert] = alerts(session)
    for bad in ("-1", "many"):
        response = clinician_client.post(f"/clinic/alerts/{alert.id}/acknowledge",
                                         data={"note": "Called.", "seen": bad},
                                         follow_redirects=True)
        assert response.status_code == 200 and alerts(session)[0].is_open


def test_an_answer_linked_while_the_acknowledgement_is_sent_is_never_closed_unseen(
        app, database_url, world, patient_client, clinician_client, session):
    """PostgreSQL, at once: a submission linking a record holds the patient's submission lock
    until it commits; the acknowledgement waits for it, then sees the new record and refuses.
    (Without the lock it would count the links before the commit and close the alert.)"""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writing transaction at a time by itself")
    patient_client.post("/me/questionnaires/phq9", data=answers_form([0] * 8 + [1], "a"))
    [alert] = alerts(session)
    linked = threading.Event()
    moments: dict[str, float] = {}

    def link_slowly() -> None:
        with app.app_context():
            patient = db.session.get(Patient, world.patient.id)
            user = db.session.get(User, world.patient_user.id)
            submission = assessments.submit_assessment(
                db.session, Actor(user), patient, "phq9", [0] * 8 + [3], "b")
            assert [a.id for a in submission.linked] == [alert.id]
            linked.set()
            time.sleep(1.5)  # the acknowledgement arrives meanwhile
            moments["committed"] = time.monotonic()
            db.session.commit()

    thread = threading.Thread(target=link_slowly)
    thread.start()
    assert linked.wait(30)
    response = clinician_client.post(f"/clinic/alerts/{alert.id}/acknowledge",
                                     data={"note": "Called.", "seen": "0"})
    moments["answered"] = time.monotonic()
    thread.join()
    assert response.status_code == 302
    assert moments["answered"] > moments["committed"]  # it waited for the submission
    [still] = alerts(session)
    assert still.is_open and [alert_id for alert_id, _ in links(session)] == [alert.id]
