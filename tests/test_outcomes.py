"""Clinic outcomes: the statistics against hand-computed values, the clinic's figures from a
small history worked out by hand, and the page (definitions, audit, access, statements)."""
from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo

import pytest
from markupsafe import escape
from sqlalchemy import select

from outcomes.extensions import db
from outcomes.models import Assessment, AuditEvent, Course
from outcomes.services import courses
from outcomes.services.outcomes import (
    Score,
    clinic_outcomes,
    course_change,
    course_rates,
    course_window,
    epoch_seconds,
    improvement_thresholds,
    mean_ci,
    t_central_probability,
    t_quantile,
    week_of,
    weekly_means,
)

from .conftest import sign_in, statements
from .helpers import DAY, T0, History

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


# --- the t distribution and means ---------------------------------------------------------

@pytest.mark.parametrize("df, expected", [
    (1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228), (20, 2.086),
    (30, 2.042), (60, 2.000), (100, 1.984), (120, 1.980), (1000, 1.962), (10**6, 1.960),
])
def test_t_quantile_matches_the_published_table(df, expected):
    assert round(t_quantile(0.975, df), 3) == expected


@pytest.mark.parametrize("df, expected", [(1, 63.657), (2, 9.925), (10, 3.169), (200, 2.601)])
def test_t_quantile_at_99_percent(df, expected):
    assert round(t_quantile(0.995, df), 3) == expected


def test_t_central_probability_matches_the_closed_forms_for_one_and_two_df():
    for t in (0.1, 1.0, 2.5, 12.7):
        assert math.isclose(t_central_probability(t, 1), 2 / math.pi * math.atan(t))
        assert math.isclose(t_central_probability(t, 2), t / math.sqrt(2 + t * t))


def test_exact_and_expanded_t_quantiles_agree_where_they_meet():
    from outcomes.services.outcomes import EXACT_T_MAX_DF, _cornish_fisher

    for df in range(EXACT_T_MAX_DF - 10, EXACT_T_MAX_DF + 1):
        assert abs(t_quantile(0.975, df) - _cornish_fisher(0.975, df)) < 1e-7
    assert t_quantile(0.5, 7) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError):
        t_quantile(0.975, 0)
    with pytest.raises(ValueError):
        t_quantile(1.0, 5)


def test_mean_and_confidence_interval_of_10_12_14_by_hand():
    # mean 12, s = 2, 12 ± 4.303 × 2 / √3 = 12 ± 4.969
    result = mean_ci([10, 12, 14])
    assert (result.n, result.mean) == (3, 12)
    assert result.low == pytest.approx(12 - 4.303 * 2 / math.sqrt(3), abs=1e-3)
    assert result.high == pytest.approx(16.969, abs=1e-3)


def test_two_values_use_t_with_one_degree_of_freedom_and_one_value_has_no_interval():
    # 30 and 24: mean 27, s = √18, half-width 12.706 × √18 / √2 = 38.12
    result = mean_ci([30, 24])
    assert (result.low, result.high) == (pytest.approx(-11.119, abs=1e-3),
                                         pytest.approx(65.119, abs=1e-3))
    assert mean_ci([7]) == mean_ci([7])
    assert (mean_ci([7]).low, mean_ci([7]).high, mean_ci([7]).mean) == (None, None, 7)
    assert mean_ci([5, 5, 5]).low == mean_ci([5, 5, 5]).high == 5
    with pytest.raises(ValueError):
        mean_ci([])


# --- weeks since the first infusion -------------------------------------------------------

def score(patient_id, key, at, total, number=0) -> Score:
    return Score(patient_id, key, at.timestamp(), total, number)


@pytest.mark.parametrize("offset, week", [
    (-10 * DAY, 0), (dt.timedelta(0), 0), (dt.timedelta(minutes=1), 1), (3 * DAY, 1),
    (10 * DAY, 1), (dt.timedelta(days=10, hours=13), 2), (6 * DAY + dt.timedelta(hours=20), 1),
    (7 * DAY + dt.timedelta(hours=9), 1), (13 * DAY, 2), (60 * DAY, 9),
])
def test_a_score_falls_in_the_nearest_week_since_the_first_infusion(offset, week):
    assert week_of(T0.timestamp(), (T0 + offset).timestamp()) == week


def test_weekly_means_count_each_patient_once_a_week_by_their_last_score():
    first = {1: T0.timestamp(), 2: (T0 + DAY).timestamp()}
    scores = [
        score(1, "pcl5", T0 - 10 * DAY, 60, 1),   # an older baseline: not the one that counts
        score(1, "pcl5", T0 - DAY, 50, 2),
        score(2, "pcl5", T0, 40, 3),               # at the first infusion: still week 0
        score(1, "pcl5-weekly", T0 + 13 * DAY, 34, 4),
        score(1, "pcl5-weekly", T0 + 15 * DAY, 30, 5),
        score(2, "pcl5-weekly", T0 + 15 * DAY, 24, 6),
        score(3, "pcl5", T0, 70, 7),               # no infusion: left out
    ]
    weeks = weekly_means(scores, first, NEW_YORK)
    assert [(w.week, w.n, w.mean) for w in weeks] == [(0, 2, 45), (2, 2, 27)]
    assert weeks[1].low == pytest.approx(-11.119, abs=1e-3)


def test_of_two_scores_given_at_the_same_moment_the_later_record_counts():
    first = {1: T0.timestamp()}
    scores = [score(1, "pcl5", T0 - DAY, 50, 9), score(1, "pcl5", T0 - DAY, 44, 8)]
    assert weekly_means(scores, first, NEW_YORK)[0].mean == 50
    assert weekly_means(list(reversed(scores)), first, NEW_YORK)[0].mean == 50


# --- course change and rates --------------------------------------------------------------

def test_a_courses_change_runs_from_the_last_score_before_it_to_the_last_in_its_window():
    window = course_window(1, 1, T0.timestamp(), (T0 + 2 * DAY).date(), NEW_YORK)
    # The end day (4 weeks after the course ended) counts whole, in the clinic's zone.
    assert window.ends_at == dt.datetime(2026, 4, 2, 0, 0, tzinfo=NEW_YORK).timestamp()
    scores = [score(1, "phq9", T0 - 5 * DAY, 22, 1), score(1, "phq9", T0 - DAY, 20, 2),
              score(1, "phq9", T0 + 14 * DAY, 8, 3),
              score(1, "phq9", dt.datetime(2026, 4, 1, 23, 30, tzinfo=NEW_YORK), 9, 4),
              score(1, "phq9", dt.datetime(2026, 4, 2, 0, 30, tzinfo=NEW_YORK), 25, 5)]
    baseline, outcome = course_change(scores, window)
    assert (baseline.total, outcome.total) == (20, 9)
    assert course_change(scores[2:], window) is None  # no baseline
    assert course_change(scores[:2], window) is None  # no later score


def test_rates_use_the_instruments_thresholds_and_leave_undefined_judgements_out():
    def pair(key, baseline, current):
        return (score(1, key, T0, baseline), score(1, key, T0 + DAY, current))

    rates = {r.key: r for r in course_rates("phq9", [
        pair("phq9", 20, 10),   # exactly 50 %: response; 10 is not below 5
        pair("phq9", 10, 4),    # response and remission
        pair("phq9", 8, 5),     # neither: 5 is not below 5, fall 37.5 %
        pair("phq9", 0, 0),     # response undefined from 0; remission yes
    ])}
    assert (rates["response"].met, rates["response"].evaluable) == (2, 3)
    assert (rates["remission"].met, rates["remission"].evaluable) == (2, 4)
    assert rates["remission"].percent == 50
    assert [r.key for r in rates.values()] == [t.key for t in improvement_thresholds("phq9")]
    [pcl] = course_rates("pcl5", [pair("pcl5", 50, 40), pair("pcl5-weekly", 50, 41),
                                  pair("pcl5", 30, 45)])
    assert (pcl.key, pcl.met, pcl.evaluable) == ("clinically_meaningful_improvement", 1, 3)
    assert pcl.label == "Clinically meaningful improvement" and "10 points" in pcl.source
    assert course_rates("pcl5", [])[0].percent is None


# --- the clinic's figures from the database -----------------------------------------------

@pytest.fixture
def clinic_history(app, session, world, factory):
    """Three patients of one clinic with infusions, one without, one in another clinic.

    Worked out by hand:
    PCL-5 week 0: 50, 40, 45 -> mean 45, s 5; week 1: 40, 36, 43; week 2: 30, 24 (the
    correction of 26) -> mean 27; week 9: 55 (A, after A's course window).
    Completed courses A and B: PCL-5 50 -> 30 and 40 -> 24, both meaningful improvement;
    PHQ-9 20 -> 8 (response) and 10 -> 4 (response and remission). C's course was stopped.
    """
    history = History(app, session, world.clinician)
    a, b, c = world.patient, factory.patient(world.clinic, world.clinician, name="Bo B"), \
        factory.patient(world.clinic, world.clinician, name="Cy C")
    d = factory.patient(world.clinic, world.clinician, name="Di D")
    first_a, first_b, first_c = T0, T0 + dt.timedelta(hours=5), T0 + 3 * DAY
    history.course(a, [first_a, first_a + 2 * DAY], "completed", (first_a + 2 * DAY).date())
    history.course(b, [first_b, first_b + 2 * DAY], "completed", (first_b + 2 * DAY).date())
    history.course(c, [first_c], "stopped", (first_c + DAY).date())
    for patient, key, total, at in [
        (a, "pcl5", 60, first_a - 10 * DAY), (a, "pcl5", 50, first_a - DAY),
        (a, "pcl5-weekly", 40, first_a + 7 * DAY), (a, "pcl5-weekly", 34, first_a + 13 * DAY),
        (a, "pcl5-weekly", 30, first_a + 15 * DAY), (a, "pcl5-weekly", 55, first_a + 60 * DAY),
        (a, "phq9", 20, first_a - DAY), (a, "phq9", 8, first_a + 14 * DAY),
        (b, "pcl5", 40, first_b - 2 * DAY), (b, "pcl5-weekly", 36, first_b + 7 * DAY),
        (b, "phq9", 10, first_b - 2 * DAY), (b, "phq9", 4, first_b + 14 * DAY),
        (c, "pcl5", 45, first_c - DAY), (c, "pcl5-weekly", 43, first_c + 3 * DAY),
        (d, "pcl5", 70, T0),
    ]:
        history.score(patient, key, total, at)
    wrong = history.score(b, "pcl5-weekly", 26, first_b + 14 * DAY)
    history.score(b, "pcl5-weekly", 24, first_b + 14 * DAY, amends=wrong)
    other = History(app, session, world.other_clinician)
    other.course(world.other_patient, [T0], "completed", T0.date())
    other.score(world.other_patient, "pcl5", 10, T0 - DAY)
    other.score(world.other_patient, "pcl5-weekly", 80, T0 + 7 * DAY)
    return history


def test_clinic_figures_match_the_hand_computed_values(app, world, clinic_history):
    with app.app_context():
        report = clinic_outcomes(db.session, world.clinic.id, NEW_YORK)
    assert (report.patients_with_infusion, report.completed_courses,
            report.stopped_courses) == (3, 2, 1)
    pcl, phq = report.measures
    assert (pcl.measure, phq.measure) == ("PCL-5", "PHQ-9")
    assert [(w.week, w.n, round(w.mean, 3)) for w in pcl.weeks] == [
        (0, 3, 45), (1, 3, 39.667), (2, 2, 27), (9, 1, 55)]
    week0 = pcl.weeks[0]  # 45 ± 4.303 × 5 / √3
    assert (week0.low, week0.high) == (pytest.approx(32.579, abs=1e-3),
                                       pytest.approx(57.421, abs=1e-3))
    # week 1: s² = (0.111 + 13.444 + 11.111) / 2 = 12.333; 39.667 ± 4.303 × 3.512 / √3
    assert pcl.weeks[1].high == pytest.approx(39.667 + 8.724, abs=1e-2)
    assert pcl.weeks[3].low is None
    assert pcl.patients == 3 and pcl.courses_evaluated == 2
    assert [(r.key, r.met, r.evaluable) for r in pcl.rates] == [
        ("clinically_meaningful_improvement", 2, 2)]
    assert [(r.key, r.met, r.evaluable) for r in phq.rates] == [
        ("response", 2, 2), ("remission", 1, 2)]
    assert [(w.week, w.n, w.mean) for w in phq.weeks] == [(0, 2, 15), (2, 2, 6)]


def test_the_database_gives_stored_times_as_posix_seconds(app, clinic_history):
    with app.app_context():
        rows = db.session.execute(select(Assessment.administered_at,
                                         epoch_seconds(Assessment.administered_at))).all()
    assert len(rows) == 19
    for moment, seconds in rows:
        assert seconds == pytest.approx(moment.timestamp(), abs=1e-3)


def test_a_corrected_infusion_time_moves_the_weeks(app, session, world, clinic_history):
    course = session.scalars(select(Course).where(Course.patient_id == world.patient.id)).one()
    first = course.infusions[0]
    with app.app_context():
        values = courses.version_values(first.current) | {"administered_at": T0 - 3 * DAY}
        courses.correct_infusion(session, clinic_history.actor, first, values, "Wrong day")
        session.commit()
        report = clinic_outcomes(db.session, world.clinic.id, NEW_YORK)
    # A's first infusion is now 3 days earlier: the score of T0 - 1 day is after it (week 1).
    week0 = report.measures[0].weeks[0]
    assert (week0.n, week0.mean) == (3, (60 + 40 + 45) / 3)


# --- the page -----------------------------------------------------------------------------

def test_the_page_shows_means_intervals_rates_and_definitions_and_is_audited(
        client, world, clinic_history, session):
    sign_in(client, world.clinician)
    response = client.get("/clinic/outcomes")
    assert response.status_code == 200
    page = " ".join(response.data.decode().split())
    assert "Mean PCL-5 by week since the first infusion" in page
    assert "Mean PHQ-9 by week since the first infusion" in page
    assert "From 3 patients; n for each week is on hover and in the table." in page
    assert re.search(r"<th scope=\"row\">0 \(baseline\)</th><td class=\"number\">3</td>"
                     r"<td class=\"number\">45.0</td><td class=\"number\">32.6 to 57.4</td>", page)
    assert "— (n &lt; 2)" in page
    assert "2 of 2 courses" in page and "(100%)" in page and "1 of 2 courses" in page
    for measure in ("phq9", "pcl5"):
        for threshold in improvement_thresholds(measure):
            assert threshold.label in page
            assert str(escape(threshold.source)) in page
    assert "1 stopped course is not included" in page
    assert "up to 4 weeks after the day the course ended" in page
    assert 'href="/clinic/outcomes"' in page
    assert page.count('data-chart="') == 2
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "clinic_outcomes.view")).one()
    assert (event.actor_id, event.object_type, event.object_id, event.clinic_id) == (
        world.clinician.id, "clinic", str(world.clinic.id), world.clinic.id)


def test_another_clinics_figures_are_its_own(client, world, clinic_history):
    sign_in(client, world.other_clinician)
    page = " ".join(client.get("/clinic/outcomes").data.decode().split())
    assert "1 patient of this clinic has had at least one infusion" in page
    assert '<td class="number">80.0</td>' in page and "45.0" not in page


def test_an_empty_clinic_gets_a_page_without_charts(client, world, factory):
    clinician = factory.staff(factory.clinic())
    sign_in(client, clinician)
    page = " ".join(client.get("/clinic/outcomes").data.decode().split())
    assert "No PCL-5 scores of patients who have had an infusion yet." in page
    assert "no course to judge yet" in page and "data-chart" not in page
    assert "plotly" not in page


def test_patients_cannot_open_the_outcomes_page(client, world):
    sign_in(client, world.patient_user)
    assert client.get("/clinic/outcomes").status_code == 404


def test_the_page_issues_the_same_statements_however_many_patients(
        app, client, world, factory, clinic_history):
    sign_in(client, world.clinician)
    with statements(app) as before:
        assert client.get("/clinic/outcomes").status_code == 200
    for number in range(4):
        patient = factory.patient(world.clinic, world.clinician, name=f"Ex {number}")
        clinic_history.course(patient, [T0 + number * DAY], "completed", T0.date())
        clinic_history.score(patient, "pcl5", 30 + number, T0 - DAY)
        clinic_history.score(patient, "pcl5-weekly", 20 + number, T0 + 7 * DAY)
    with statements(app) as after:
        assert client.get("/clinic/outcomes").status_code == 200
    assert len(before) == len(after)
    reads = [sql for sql, _ in after if "assessment" in sql and sql.lstrip().startswith("SELECT")]
    assert len(reads) == 2  # the outcome figures' and questionnaire completion's
    # Only the columns the figures need: no answers, no whole records.
    for read in reads:
        assert "assessment_answer" not in read and "flags" not in read
