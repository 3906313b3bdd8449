"""Measures are declared by the definitions (issue 10 item 3): marking GAD-7 headline in
``gad7.toml`` alone puts it on the dashboard, the outcomes page and its chart; and answers are
checked by the engine against the definition's options, not by a fixed database range."""
from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid

import pytest
from sqlalchemy import func, select

import instruments
from instruments.catalog import DEFINITIONS_DIR, DEFINITIONS_ENV
from outcomes.extensions import db
from outcomes.models import Assessment, AssessmentAnswer, Patient
from outcomes.services.assessments import SubmissionError, submit_assessment
from outcomes.services.audit import Actor

from .conftest import sign_in
from .helpers import DAY, History, figures_on, traces


@pytest.fixture
def definitions(tmp_path):
    """A copy of the shipped definitions, to change and then serve (``use``)."""
    folder = tmp_path / "definitions"
    shutil.copytree(DEFINITIONS_DIR, folder)
    return folder


def use(monkeypatch, folder) -> None:
    """Serve the definitions of ``folder`` from now on (the documented variable)."""
    monkeypatch.setenv(DEFINITIONS_ENV, str(folder))


def text_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return " ".join(response.data.decode().split())


def test_marking_gad7_headline_in_its_definition_shows_it_everywhere(
        app, client, session, world, definitions, monkeypatch):
    history = History(app, session, world.clinician)
    first = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - 30 * DAY
    history.course(world.patient, [first])
    history.score(world.patient, "gad7", 15, first - 2 * DAY)
    history.score(world.patient, "gad7", 9, first + 14 * DAY)
    history.score(world.patient, "phq9", 12, first - 2 * DAY)
    sign_in(client, world.clinician)

    dashboard = text_of(client, "/clinic/patients")
    assert "PCL-5 from → latest" in dashboard and "PHQ-9 from → latest" in dashboard
    assert "GAD-7 from → latest" not in dashboard and 'value="gad7_change"' not in dashboard
    assert client.get("/clinic/patients?sort=gad7_change").status_code == 400
    outcomes = text_of(client, "/clinic/outcomes")
    assert "GAD-7" not in outcomes

    gad7 = definitions / "gad7.toml"
    gad7.write_text(gad7.read_text(encoding="utf-8").replace("headline = false", "headline = true"),
                    encoding="utf-8")
    use(monkeypatch, definitions)
    # Nothing is recomputed: the summary already had a GAD-7 row.
    dashboard = text_of(client, "/clinic/patients?sort=gad7_change")
    headers = re.findall(r'<th scope="col" class="number">([^<]+) from → latest</th>', dashboard)
    assert headers == ["PCL-5", "PHQ-9", "GAD-7"]
    assert 'value="gad7_change"' in dashboard and "GAD-7 change" in dashboard
    [cell] = re.findall(r'<td class="number" data-label="GAD-7">(.*?)</td>', dashboard)
    assert " ".join(re.sub(r"<[^>]+>", " ", cell).split()) == "baseline 15 → 9 (-6)"
    outcomes = text_of(client, "/clinic/outcomes")
    assert "Mean GAD-7 by week since the first infusion" in outcomes
    assert "<h3>GAD-7</h3>" in outcomes
    [weekly] = [f for f in figures_on(outcomes) if traces(f, "Mean GAD-7")]
    assert traces(weekly, "Mean GAD-7")[0]["line"]["color"] == "#2e6b30"
    assert traces(weekly, "Mean GAD-7")[0]["y"] == [15, 9]
    # The patient's charts, in the definitions' order and colour.
    page = text_of(client, f"/clinic/patients/{world.patient.id}")
    assert page.index("PHQ-9 total") < page.index("GAD-7 total")
    [total] = [f for f in figures_on(page) if traces(f, "GAD-7 total")]
    assert traces(total, "GAD-7 total")[0]["line"]["color"] == "#2e6b30"


def test_answers_outside_the_definitions_options_are_refused_with_a_clear_message(
        app, client, session, world):
    with app.app_context():
        patient = db.session.get(Patient, world.patient.id)
        actor = Actor(db.session.get(type(world.patient_user), world.patient_user.id))
        with pytest.raises(SubmissionError, match=r"^phq9: item 2 answer 11 is outside 0-3$"):
            submit_assessment(db.session, actor, patient, "phq9", [0, 11] + [0] * 7, "k1")
        with pytest.raises(SubmissionError, match=r"^phq9: item 1 answer 4 is outside 0-3$"):
            submit_assessment(db.session, actor, patient, "phq9", [4] + [0] * 8, "k2")
        db.session.rollback()
    sign_in(client, world.patient_user)
    form = {"submission_key": uuid.uuid4().hex,
            **{f"item_{number}": "0" for number in range(1, 10)}, "item_2": "11"}
    response = client.post("/me/questionnaires/phq9", data=form)
    assert response.status_code == 422
    assert "Nothing has been saved yet" in response.data.decode()
    assert session.scalar(select(func.count()).select_from(Assessment)) == 0


WIDE_SCALE = '''
key = "wide-10"
version = "0.1"
title = "A made-up scale of 0 to 20"
short_title = "Wide-10"
citations = ["Test fixture, not a real instrument."]
licence = "None."
instructions = ""
stem = "How much, from 0 to 20?"
time_frame = "past week"
validated = false
local_policies = ["Test fixture."]

[option_sets.twenty]
min = 0
max = 20
options = [%s]

[[items]]
id = "q1"
number = 1
text = "How much?"
options = "twenty"

[missing]
rule = "none_allowed"
source = "Test fixture."
''' % ", ".join(f'{{ value = {n}, label = "{n}" }}' for n in range(21))


def test_a_definition_with_a_wider_scale_stores_its_answers(
        app, session, world, definitions, monkeypatch):
    (definitions / "wide-10.toml").write_text(WIDE_SCALE, encoding="utf-8")
    use(monkeypatch, definitions)
    assert instruments.get("wide-10").total_max == 20
    with app.app_context():
        patient = db.session.get(Patient, world.patient.id)
        actor = Actor(db.session.get(type(world.patient_user), world.patient_user.id))
        with pytest.raises(SubmissionError, match=r"item 1 answer 21 is outside 0-20"):
            submit_assessment(db.session, actor, patient, "wide-10", [21], "k0")
        stored = submit_assessment(db.session, actor, patient, "wide-10", [17], "k1")
        db.session.commit()
        assessment_id = stored.assessment.id
    answer = session.scalars(select(AssessmentAnswer).where(
        AssessmentAnswer.assessment_id == assessment_id)).one()
    assert (answer.item_number, answer.value) == (1, 17)
