"""The patient's questionnaires: the form, incomplete submissions, idempotency, scoring,
results and the crisis screen; and clinicians entering paper forms and corrections."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

import instruments
from outcomes.models import Alert, Assessment, AssessmentAnswer, AuditEvent

from .conftest import sign_in
from .helpers import answers_form

PCL5_EXAMPLE = [2, 0, 0, 0, 0, 2, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0]


def count(session, model, *where):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def patient_client(client, world):
    sign_in(client, world.patient_user)
    return client


def test_questionnaire_page_has_a_labelled_radio_for_every_answer(patient_client):
    page = patient_client.get("/me/questionnaires/pcl5").data.decode()
    assert "In the past month, how much were you bothered by:" in page
    assert page.count('<fieldset class="item"') == 20
    radios = re.findall(r'<input[^>]*type="radio"[^>]*>', page)
    assert len(radios) == 100
    for radio in radios:
        radio_id = re.search(r'id="([^"]+)"', radio).group(1)
        assert f'<label for="{radio_id}">' in page
    assert "choose one answer" in page  # "circle one of the numbers" on paper


def test_incomplete_submission_keeps_answers_marks_gaps_and_stores_nothing(
        patient_client, session, world):
    answers = PCL5_EXAMPLE[:]
    answers[4] = None
    answers[11] = None
    response = patient_client.post("/me/questionnaires/pcl5", data=answers_form(answers))
    assert response.status_code == 422
    page = response.data.decode()
    assert "2 questions still need an answer" in page
    assert 'href="#item-5"' in page and 'href="#item-12"' in page
    assert 'fieldset class="item invalid" id="item-5"' in page
    assert re.search(r'id="item_1-2"[^>]*checked|checked[^>]*id="item_1-2"', page)
    assert count(session, Assessment) == 0
    assert count(session, AuditEvent, AuditEvent.action == "assessment.submit") == 0


def test_complete_pcl5_is_scored_as_published_and_shown_calmly(patient_client, session):
    response = patient_client.post("/me/questionnaires/pcl5", data=answers_form(PCL5_EXAMPLE))
    assert response.status_code == 302 and "/me/results/" in response.location
    stored = session.scalars(select(Assessment)).one()
    expected = instruments.score("pcl5", PCL5_EXAMPLE)
    assert (stored.total, stored.scorable, stored.provisional_diagnosis, stored.above_cutpoint) == \
        (12, True, True, False) == (expected.total, expected.scorable,
                                    expected.provisional_diagnosis, expected.above_cutpoint)
    assert stored.subscales == {"B": 2, "C": 2, "D": 4, "E": 4}
    assert stored.source == "patient" and stored.instrument_version
    assert [a.value for a in stored.answers] == PCL5_EXAMPLE
    result = patient_client.get(response.location).data.decode()
    assert "12" in result and "out of 80" in result
    assert "diagnos" not in result.replace("not a diagnosis", "")
    assert 'data-chart="chart-1-data"' in result


def test_pcl5_result_states_the_change_since_baseline(patient_client):
    patient_client.post("/me/questionnaires/pcl5", data=answers_form([3] * 20, key="a"))
    response = patient_client.post("/me/questionnaires/pcl5",
                                   data=answers_form(PCL5_EXAMPLE, key="b"))
    page = patient_client.get(response.location).data.decode()
    assert "was 60: this one is 48 points lower" in page


def test_phq9_result_names_the_band(patient_client):
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([2, 2, 1, 1, 1, 1, 1, 1, 0]))
    page = patient_client.get(response.location).data.decode()
    assert "score is 10 out of 27" in page and "moderate" in page.lower()


def test_submitting_twice_stores_one_assessment(patient_client, session):
    first = patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 9, key="same"))
    second = patient_client.post("/me/questionnaires/phq9", data=answers_form([1] * 9, key="same"))
    assert first.location == second.location
    assert count(session, Assessment) == 1
    assert count(session, AssessmentAnswer) == 9


@pytest.mark.parametrize("item9", [1, 3])
def test_item9_above_zero_shows_crisis_resources_first_and_opens_an_alert(
        patient_client, session, world, item9):
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([0] * 8 + [item9]))
    assert re.fullmatch(r"/me/results/\d+", response.location)  # the URL says nothing of risk
    page = patient_client.get(response.location).data.decode()
    assert 'href="tel:988"' in page and 'href="sms:988"' in page and "911" in page
    assert world.clinic.crisis_phone in page and "has been told" in page
    assert page.index('href="tel:988"') < page.index("score-card")
    alert = session.scalars(select(Alert)).one()
    assert (alert.kind, alert.value, alert.crisis, alert.is_open) == \
        ("suicide_risk", "positive", True, True)


def test_item9_zero_raises_no_alert_and_shows_no_crisis_section(patient_client, session):
    response = patient_client.post("/me/questionnaires/phq9", data=answers_form([3] * 8 + [0]))
    assert 'href="tel:988"' not in patient_client.get(response.location).data.decode()
    assert count(session, Alert) == 0


def test_a_patient_may_leave_item9_blank_and_is_then_shown_resources_and_alerted(
        patient_client, session):
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([1] * 8 + [None]))
    assert response.status_code == 302
    stored = session.scalars(select(Assessment)).one()
    assert stored.flags == {"suicide_risk": "unknown"} and stored.total == 9 and stored.prorated
    assert 'href="tel:988"' in patient_client.get(response.location).data.decode()
    assert session.scalars(select(Alert)).one().value == "unknown"


def test_an_incomplete_form_disclosing_risk_shows_resources_and_alerts_once(
        patient_client, session):
    answers = [1, None, 1, 1, 1, 1, 1, 1, 2]
    for _ in range(2):  # sent twice: one alert
        response = patient_client.post("/me/questionnaires/phq9", data=answers_form(answers))
        assert response.status_code == 422
        page = response.data.decode()
        assert 'href="tel:988"' in page and "has been told" in page
        assert "1 question still needs an answer" in page
    assert count(session, Assessment) == 0
    alert = session.scalars(select(Alert)).one()
    assert (alert.assessment_id, alert.value, alert.is_open) == (None, "positive", True)


def test_an_incomplete_form_with_item9_blank_shows_a_short_line_and_no_panel_or_alert(
        patient_client, session):
    response = patient_client.post("/me/questionnaires/phq9",
                                   data=answers_form([1, None] + [1] * 6 + [None]))
    page = response.data.decode()
    assert response.status_code == 422 and 'class="crisis-line"' in page
    assert 'class="crisis"' not in page and "has been told" not in page
    assert count(session, Alert) == 0 and count(session, Assessment) == 0


def test_the_same_key_with_other_answers_is_a_new_submission_scored_on_its_own(
        patient_client, session):
    first = patient_client.post("/me/questionnaires/pcl5", data=answers_form([1] * 20, "k"))
    risky = patient_client.post("/me/questionnaires/phq9",
                                data=answers_form([0] * 8 + [3], "k"))
    assert risky.location != first.location
    changed = patient_client.post("/me/questionnaires/phq9",
                                  data=answers_form([0] * 8 + [2], "k"))
    assert changed.location != risky.location
    assert count(session, Assessment) == 3
    # One disclosure, one alert: the second positive record is linked to the open one.
    alert = session.scalars(select(Alert)).one()
    assert alert.value == "positive" and len(alert.also_seen_in) == 1


def test_a_made_up_answer_value_is_refused(patient_client, session):
    data = answers_form([1] * 9)
    data["item_3"] = "7"
    assert patient_client.post("/me/questionnaires/phq9", data=data).status_code == 422
    data["item_3"] = "one"
    assert patient_client.post("/me/questionnaires/phq9", data=data).status_code == 422
    assert count(session, Assessment) == 0


def test_questionnaires_outside_the_plan_or_unknown_are_404(patient_client, world, session):
    from outcomes.models import PlanEntry

    assert patient_client.get("/me/questionnaires/gad7").status_code == 200
    for entry in session.scalars(select(PlanEntry).where(
            PlanEntry.patient_id == world.patient.id, PlanEntry.instrument_key == "gad7")):
        entry.active = False
    session.commit()
    assert patient_client.get("/me/questionnaires/gad7").status_code == 404
    assert patient_client.get("/me/questionnaires/nope").status_code == 404


def test_home_lists_the_baseline_questionnaires_as_due(patient_client):
    page = patient_client.get("/me/").data.decode()
    for path in ("/me/questionnaires/pcl5", "/me/questionnaires/phq9", "/me/questionnaires/gad7"):
        assert path in page
    assert "/me/questionnaires/pcl5-weekly" not in page  # first due a week after enrolment
    patient_client.post("/me/questionnaires/gad7", data=answers_form([0] * 7))
    assert "/me/questionnaires/gad7" not in patient_client.get("/me/").data.decode()


@pytest.fixture
def clinician_client(client, world):
    sign_in(client, world.clinician)
    return client


def paper_form(answers, key="paper-1", date="2026-01-05", **extra):
    data = answers_form(answers, key)
    data["administered_on"] = date
    data.update(extra)
    return data


def test_clinician_transcribes_a_paper_form_with_blanks(clinician_client, session, world):
    answers = [2, 2, 2, 2, 2, 2, 2, 2, 1, None]
    response = clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/phq9",
                                     data=paper_form(answers[:4] + [None] + answers[5:]))
    assert response.status_code == 302
    stored = session.scalars(select(Assessment)).one()
    expected = instruments.score("phq9", answers[:4] + [None] + answers[5:])
    assert stored.source == "transcribed" and stored.entered_by_id == world.clinician.id
    assert stored.total == expected.total == 17 and stored.prorated
    assert stored.missing_items == [5]
    assert stored.administered_at.date().isoformat() == "2026-01-05"


def test_paper_form_with_item9_blank_opens_an_unknown_risk_alert_and_shows_resources(
        clinician_client, session, world):
    response = clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/phq9",
                                     data=paper_form([2] * 8 + [None]))
    assert re.fullmatch(r"/clinic/patients/\d+/assessments/\d+", response.location)
    page = clinician_client.get(response.location).data.decode()
    assert "This questionnaire signals risk" in page and 'href="tel:988"' in page
    alert = session.scalars(select(Alert)).one()
    assert (alert.value, alert.is_open) == ("unknown", True)
    stored = session.scalars(select(Assessment)).one()
    assert stored.total == 18 and stored.band == "moderately_severe"


def test_paper_form_cannot_be_dated_in_the_future(clinician_client, session, world):
    response = clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/gad7",
                                     data=paper_form([1] * 7, date="2999-01-01"))
    assert response.status_code == 422
    assert b"cannot be in the future" in response.data
    assert count(session, Assessment) == 0


def test_a_correction_is_a_new_record_pointing_at_the_original(clinician_client, session, world):
    clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/gad7",
                          data=paper_form([1] * 7))
    original = session.scalars(select(Assessment)).one()
    page = clinician_client.get(
        f"/clinic/patients/{world.patient.id}/assessments/{original.id}/correct").data.decode()
    assert re.search(r'id="item_1-1"[^>]*checked|checked[^>]*id="item_1-1"', page)
    without_reason = clinician_client.post(
        f"/clinic/patients/{world.patient.id}/assessments/{original.id}/correct",
        data=paper_form([2] * 7, key="fix-1"))
    assert without_reason.status_code == 422
    clinician_client.post(
        f"/clinic/patients/{world.patient.id}/assessments/{original.id}/correct",
        data=paper_form([2] * 7, key="fix-1", amendment_reason="Misread the paper form"))
    session.expire_all()
    rows = session.scalars(select(Assessment).order_by(Assessment.id)).all()
    assert [(row.total, row.amends_id) for row in rows] == [(7, None), (14, original.id)]
    assert rows[1].amendment_reason == "Misread the paper form"
    actions = session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("assessment.%"))).all()
    assert "assessment.submit" in actions and "assessment.correct" in actions
    record = clinician_client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert "replaced by a correction" in record and "Misread the paper form" in record


def test_an_empty_paper_form_or_a_post_without_its_key_stores_nothing(
        clinician_client, session, world):
    path = f"/clinic/patients/{world.patient.id}/paper/phq9"
    assert clinician_client.post(path, data={}).status_code == 422
    blank = clinician_client.post(path, data=paper_form([None] * 10))
    assert blank.status_code == 422 and b"No question has an answer" in blank.data
    # Item 9 at 0 here: risk on a refused form opens its alert (tests/test_safety_loop.py).
    keyless = paper_form([1] * 8 + [0])
    del keyless["submission_key"]
    response = clinician_client.post(path, data=keyless)
    assert response.status_code == 422 and b"submission key" in response.data
    assert count(session, Assessment) == 0 and count(session, Alert) == 0


def test_weekly_pcl5_is_compared_with_the_past_month_baseline_on_one_chart(patient_client):
    patient_client.post("/me/questionnaires/pcl5", data=answers_form([3] * 20, key="a"))
    response = patient_client.post("/me/questionnaires/pcl5-weekly",
                                   data=answers_form([1] * 20, key="b"))
    page = patient_client.get(response.location).data.decode()
    assert "In the past week" not in page  # the result page, not the form
    assert "Your PCL-5 score is 20 out of 80" in page and "was 60: this one is 40 points lower" in page
    assert page.count('data-chart="') == 1


def test_a_record_is_corrected_once_then_its_correction_is_corrected(
        clinician_client, session, world):
    base = f"/clinic/patients/{world.patient.id}"
    clinician_client.post(f"{base}/paper/gad7", data=paper_form([1] * 7))
    original = session.scalars(select(Assessment)).one()
    fix = paper_form([2] * 7, key="fix", amendment_reason="Misread")
    assert clinician_client.post(f"{base}/assessments/{original.id}/correct",
                                 data=fix).status_code == 302
    again = clinician_client.post(f"{base}/assessments/{original.id}/correct",
                                  data=paper_form([3] * 7, key="fix-2", amendment_reason="x"))
    assert again.status_code == 422 and b"already been corrected" in again.data
    correction = session.scalars(select(Assessment).where(
        Assessment.amends_id == original.id)).one()
    assert clinician_client.post(f"{base}/assessments/{correction.id}/correct",
                                 data=paper_form([3] * 7, key="fix-3",
                                                 amendment_reason="Second look")).status_code == 302


def test_a_paper_form_dated_long_before_enrolment_is_refused(clinician_client, session, world):
    response = clinician_client.post(f"/clinic/patients/{world.patient.id}/paper/gad7",
                                     data=paper_form([1] * 7, date="0001-01-01"))
    assert response.status_code == 422 and b"more than a year before" in response.data
    assert count(session, Assessment) == 0


def test_a_failure_after_the_assessment_is_written_leaves_nothing_behind(
        app, patient_client, session, monkeypatch):
    """The assessment, its answers, alert and audit rows commit together or not at all (on
    SQLite a savepoint must not commit the assessment on its own)."""
    from outcomes.services import assessments

    original = assessments.audit.record

    def failing_record(session, actor, action, **kwargs):
        if action == "alert.raise":
            raise RuntimeError("the disk is full")
        return original(session, actor, action, **kwargs)

    monkeypatch.setattr(assessments.audit, "record", failing_record)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = patient_client.post("/me/questionnaires/phq9", data=answers_form([0] * 8 + [2]))
    assert response.status_code == 500
    assert count(session, Assessment) == 0 and count(session, AssessmentAnswer) == 0
    assert count(session, Alert) == 0


def test_the_same_answers_sent_again_under_a_new_key_soon_after_are_one_submission(
        patient_client, session):
    """The back button can reload the form under a new key while the browser restores the
    answers; sending it again must not store a second record."""
    patient_client.post("/me/questionnaires/gad7", data=answers_form([2] * 7, "first"))
    again = patient_client.post("/me/questionnaires/gad7", data=answers_form([2] * 7, "second"))
    assert again.status_code == 302
    assert count(session, Assessment) == 1


def test_two_paper_forms_with_the_same_answers_on_different_days_are_two_records(
        clinician_client, session, world):
    path = f"/clinic/patients/{world.patient.id}/paper/gad7"
    clinician_client.post(path, data=paper_form([1] * 7, key="a", date="2026-11-01"))
    clinician_client.post(path, data=paper_form([1] * 7, key="b", date="2026-11-08"))
    clinician_client.post(path, data=paper_form([1] * 7, key="c", date="2026-11-08"))
    assert count(session, Assessment) == 2
