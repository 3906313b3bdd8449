"""One baseline (docs/baseline.md): the rule's cases, and the same value on the dashboard,
the patient's sentence, the clinician's chart and the outcomes page."""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import NamedTuple

import pytest
from sqlalchemy import select

from outcomes.extensions import db
from outcomes.models import Assessment, MeasureSummary
from outcomes.services.baseline import (
    BASELINE,
    BASELINE_WINDOW_DAYS,
    SINCE_FIRST,
    baseline_window,
    choose_reference,
    reference_for,
    reference_total,
)
from outcomes.services.outcomes import Score, clinic_outcomes, course_change, course_window

from .conftest import sign_in, statements
from .helpers import History, figures_on, traces

ZONE = zoneinfo.ZoneInfo("America/New_York")
#: The first infusion: 10:00 on 2 March 2026, New York.
FIRST = dt.datetime(2026, 3, 2, 10, 0, tzinfo=ZONE).astimezone(dt.timezone.utc)
DAY = dt.timedelta(days=1)


class Rec(NamedTuple):
    at: dt.datetime
    total: int


def reference(records, firsts, at=None):
    """The reference for a score at ``at`` (default: the last record)."""
    ordered = sorted(records)
    return choose_reference(ordered, lambda r: r.at, [baseline_window(f, ZONE) for f in firsts],
                            at or ordered[-1].at)


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A clinic time ``day`` days after 2 March 2026."""
    return dt.datetime.combine(dt.date(2026, 3, 2) + dt.timedelta(days=day),
                               dt.time(hour, minute), ZONE).astimezone(dt.timezone.utc)


# --- the rule -----------------------------------------------------------------------------

def test_the_window_is_30_clinic_days_up_to_the_end_of_the_first_infusion_day():
    window = baseline_window(FIRST, ZONE)
    assert BASELINE_WINDOW_DAYS == 30
    assert window.opens == dt.datetime(2026, 1, 31, 0, 0, tzinfo=ZONE)
    assert window.closes == dt.datetime(2026, 3, 3, 0, 0, tzinfo=ZONE)


def test_a_score_within_30_days_before_the_first_infusion_is_the_baseline():
    ref = reference([Rec(local(-5, 9), 50), Rec(local(14, 9), 30)], [FIRST])
    assert (ref.kind, ref.record.total, ref.is_baseline, ref.course) == (BASELINE, 50, True, 1)


def test_the_day_of_the_first_infusion_counts_in_clinic_time():
    # Answered at 23:30 New York on the infusion day (04:30 UTC the next day): still the day.
    late = Rec(local(0, 23, 30), 44)
    assert late.at.date() == dt.date(2026, 3, 3)
    assert reference([late, Rec(local(7, 9), 30)], [FIRST]).record == late
    # The next clinic day is treated, not a baseline.
    assert reference([Rec(local(1, 0, 10), 44), Rec(local(7, 9), 30)], [FIRST]).kind == \
        SINCE_FIRST


def test_a_score_older_than_30_days_is_not_a_baseline_and_change_runs_since_first():
    old = Rec(local(-31, 12), 60)
    ref = reference([old, Rec(local(7, 9), 40), Rec(local(14, 9), 30)], [FIRST])
    assert (ref.kind, ref.record) == (SINCE_FIRST, old)
    assert not ref.is_baseline
    # Exactly 30 days before is inside the window.
    edge = Rec(local(-30, 0, 1), 58)
    assert reference([old, edge, Rec(local(7, 9), 30)], [FIRST]).record == edge


def test_of_several_scores_before_the_infusion_the_last_is_the_baseline():
    records = [Rec(local(-20, 9), 60), Rec(local(-3, 9), 55), Rec(local(0, 8), 52),
               Rec(local(7, 9), 40)]
    assert reference(records, [FIRST]).record.total == 52


def test_without_a_course_or_a_score_before_it_change_runs_since_first():
    records = [Rec(local(3, 9), 40), Rec(local(10, 9), 30)]
    assert (reference(records, []).kind, reference(records, []).record.total) == (SINCE_FIRST, 40)
    ref = reference(records, [FIRST])
    assert (ref.kind, ref.record.total, ref.course) == (SINCE_FIRST, 40, 1)
    assert choose_reference([], lambda r: r.at, [], FIRST) is None


def test_a_score_inside_the_window_is_its_own_reference():
    records = [Rec(local(-10, 9), 60), Rec(local(-2, 9), 50)]
    assert reference(records, [FIRST]).record.total == 50
    assert reference(records, [FIRST], at=local(-10, 9)).record.total == 60


def test_two_courses_each_have_their_own_baseline():
    second = FIRST + 120 * DAY
    records = [Rec(local(-2, 9), 50), Rec(local(14, 9), 30), Rec(local(100, 9), 45),
               Rec(local(118, 9), 48), Rec(local(130, 9), 35)]
    ref = reference(records, [FIRST, second])
    assert (ref.kind, ref.record.total, ref.course) == (BASELINE, 48, 2)
    # During course 1 its own baseline counts, and after course 1 too, until course 2's
    # window opens.
    assert reference(records, [FIRST, second], at=local(14, 9)).record.total == 50
    assert reference(records, [FIRST, second], at=local(60, 9)).record.total == 50
    # Inside course 2's window, before its first infusion: a score is its own reference.
    assert reference(records, [FIRST, second], at=local(100, 9)).record.total == 45
    # Course 2 without a score in its window: since first (the patient's first score).
    ref = reference([r for r in records if r.total != 48 and r.total != 45], [FIRST, second])
    assert (ref.kind, ref.record.total, ref.course) == (SINCE_FIRST, 50, 2)


def test_course_response_uses_the_course_baseline_only():
    window = course_window(1, 1, FIRST.timestamp(), (FIRST + 14 * DAY).date(), ZONE)

    def score(at, total, number):
        return Score(1, "phq9", at.timestamp(), total, number)

    within = [score(local(-3, 9), 20, 1), score(local(14, 9), 8, 2)]
    assert [s.total for s in course_change(within, window)] == [20, 8]
    assert course_change([score(local(-40, 9), 20, 1), score(local(14, 9), 8, 2)],
                         window) is None  # no baseline: no response to judge
    # A score on the infusion day itself is the baseline, not the outcome.
    same_day = [score(local(0, 15), 18, 1), score(local(14, 9), 8, 2)]
    assert [s.total for s in course_change(same_day, window)] == [18, 8]


# --- one value everywhere -----------------------------------------------------------------

@pytest.fixture
def treated(app, session, world):
    """The world's patient: an old PHQ-9 (40 days before), a corrected one 3 days before the
    first infusion (baseline 16, corrected from 19), a completed course, and later scores."""
    history = History(app, session, world.clinician)
    first = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - 40 * DAY
    history.course(world.patient, [first, first + 2 * DAY], "completed",
                   (first + 2 * DAY).astimezone(ZONE).date())
    history.score(world.patient, "phq9", 24, first - 40 * DAY)
    wrong = history.score(world.patient, "phq9", 19, first - 3 * DAY)
    history.score(world.patient, "phq9", 16, first - 3 * DAY, amends=wrong)
    history.score(world.patient, "phq9", 12, first + 7 * DAY)
    latest = history.score(world.patient, "phq9", 7, first + 21 * DAY)
    return history, first, latest


def test_a_corrected_baseline_counts_with_its_corrected_total(app, session, world, treated):
    _, first, latest = treated
    with app.app_context():
        assert reference_total(db.session, world.patient.id, "PHQ-9", latest.administered_at) == 16
        records = db.session.scalars(select(Assessment)).all()
        current = [a for a in records if a.id not in {r.amends_id for r in records}]
        from outcomes.services.records import patient_courses
        ref = reference_for(current, patient_courses(db.session, world.patient.id), ZONE,
                            "PHQ-9")
    assert (ref.kind, ref.record.total) == (BASELINE, 16)


def test_dashboard_sentence_chart_and_outcomes_use_the_same_baseline(
        app, client, session, world, treated):
    _, first, latest = treated
    summary = session.get(MeasureSummary, (world.patient.id, "PHQ-9"))
    assert (summary.baseline, summary.latest) == (16, 7)

    sign_in(client, world.patient_user)
    home = " ".join(client.get("/me/").data.decode().split())
    assert "Your PHQ-9 score went from 16 before your first infusion to 7" in home
    result = " ".join(client.get(f"/me/results/{latest.id}").data.decode().split())
    assert re.search(r"Your score before your first infusion, on \d+ \w+, was 16: this one "
                     r"is 9 points lower\.", result)
    client.post("/logout")

    sign_in(client, world.clinician)
    page = " ".join(client.get(f"/clinic/patients/{world.patient.id}").data.decode().split())
    assert re.search(r"Baseline of course 1: 16 on \d+ \w+ \d{4}, the last score within 30 "
                     r"days before the first infusion; latest 7 \(-9\)\.", page)
    phq = next(f for f in figures_on(page) if traces(f, "PHQ-9 total"))
    assert traces(phq, "Baseline")[0]["y"] == [16]
    assert "(baseline)" in page

    with app.app_context():
        report = clinic_outcomes(db.session, world.clinic.id, ZONE)
    phq9 = report.measures[1]
    assert phq9.courses_evaluated == 1
    assert [w.mean for w in phq9.weeks if w.week == 0] == [16]
    # 16 -> 7: a fall of 56 %, a response; 7 is not below 5
    assert [(r.key, r.met) for r in phq9.rates] == [("response", 1), ("remission", 0)]
    outcomes_page = " ".join(client.get("/clinic/outcomes").data.decode().split())
    assert "within the 30 days before it" in outcomes_page and "since first" in outcomes_page


def test_since_first_is_never_called_a_baseline(app, client, session, world):
    history = History(app, session, world.clinician)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    history.score(world.patient, "phq9", 20, now - 20 * DAY)
    latest = history.score(world.patient, "phq9", 11, now - DAY)
    sign_in(client, world.patient_user)
    result = " ".join(client.get(f"/me/results/{latest.id}").data.decode().split())
    assert re.search(r"Your first score, on \d+ \w+, was 20: this one is 9 points lower\.",
                     result)
    assert "before your first infusion" not in result
    client.post("/logout")
    sign_in(client, world.clinician)
    page = " ".join(client.get(f"/clinic/patients/{world.patient.id}").data.decode().split())
    assert re.search(r"Since first \(no course has begun\): 20 on \d+ \w+ \d{4}; latest 11 "
                     r"\(-9\)\.", page)
    phq = next(f for f in figures_on(page) if traces(f, "PHQ-9 total"))
    assert traces(phq, "Since first")[0]["y"] == [20] and not traces(phq, "Baseline")
    summary = session.get(MeasureSummary, (world.patient.id, "PHQ-9"))
    assert (summary.baseline, summary.latest) == (20, 11)


# --- the dashboard names the reference; the scores export carries it ------------------------

def dashboard_row(client, patient) -> str:
    """The text of ``patient``'s row on the dashboard, whitespace collapsed."""
    html = client.get("/clinic/patients").data.decode()
    row = next(row for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)
               if patient.display_name in row)
    return " ".join(re.sub(r"<[^>]+>", " ", row).split())


def test_the_dashboard_names_a_course_baseline_baseline(client, session, world, treated):
    sign_in(client, world.clinician)
    page = " ".join(client.get("/clinic/patients").data.decode().split())
    assert "PHQ-9 from → latest" in page and "baseline → latest" not in page
    assert "baseline 16 → 7 (-9)" in dashboard_row(client, world.patient)
    assert session.get(MeasureSummary, (world.patient.id, "PHQ-9")).reference_kind == BASELINE
    assert session.get(MeasureSummary, (world.patient.id, "PCL-5")) is None


def test_the_dashboard_says_since_first_without_a_course_baseline(client, session, app, world):
    history = History(app, session, world.clinician)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    history.score(world.patient, "phq9", 20, now - 20 * DAY)
    history.score(world.patient, "phq9", 11, now - DAY)
    sign_in(client, world.clinician)
    row = dashboard_row(client, world.patient)
    assert "since first 20 → 11 (-9)" in row and "baseline" not in row
    assert session.get(MeasureSummary, (world.patient.id, "PHQ-9")).reference_kind == SINCE_FIRST


def scores_export(client) -> list[dict[str, str]]:
    from .helpers import as_dicts, post_export
    return as_dicts(post_export(client, kind="scores").data)


def test_the_scores_export_carries_the_reference_the_patients_pages_show(
        client, world, treated):
    _, first, latest = treated
    sign_in(client, world.clinician)
    rows = {int(row["assessment_id"]): row for row in scores_export(client)}
    client.post("/logout")
    columns = ("reference_kind", "reference_total", "change_from_reference")
    by_total = {(row["total"], row["amends_assessment_id"] != ""): row for row in rows.values()}
    old, wrong = by_total[("24", False)], by_total[("19", False)]
    baseline = by_total[("16", True)]
    # The old score came before any course: the first score, its own reference.
    assert (old["reference_assessment_id"], *(old[c] for c in columns)) == (
        old["assessment_id"], SINCE_FIRST, "24", "")
    # A replaced record has none; its correction is the course's baseline.
    assert [wrong[c] for c in ("reference_assessment_id", *columns)] == ["", "", "", ""]
    assert (baseline["reference_assessment_id"], *(baseline[c] for c in columns)) == (
        baseline["assessment_id"], BASELINE, "16", "")
    compared = [row for row in rows.values() if row["change_from_reference"]]
    assert {int(row["total"]) for row in compared} == {12, 7}
    sign_in(client, world.patient_user)
    for row in compared:
        assert row["reference_assessment_id"] == baseline["assessment_id"]
        change = int(row["change_from_reference"])
        assert change == int(row["total"]) - 16
        page = " ".join(client.get(f"/me/results/{row['assessment_id']}").data.decode().split())
        assert re.search(rf"Your score before your first infusion, on \d+ \w+, was "
                         rf"{row['reference_total']}: this one is {abs(change)} points lower\.",
                         page), row


def test_the_scores_export_reads_the_references_in_three_statements(app, world, treated):
    from outcomes.services import exports

    request = exports.ExportRequest(kind="scores", clinic_id=world.clinic.id,
                                    timezone="America/New_York")
    with statements() as ran, app.app_context(), \
            exports.read_connection(db.engine) as connection:
        rows = list(exports.export_rows(connection, request, batch=2))
    seen = [sql for sql, _ in ran  # not PostgreSQL's statement timeout
            if sql.lstrip().upper().startswith("SELECT") and "FROM" in sql]
    assert len(rows) == 1 + 5 and len(seen) == 3, seen


def test_revision_0009_fills_the_reference_kind_of_existing_rows(
        app, session, database_url, world, treated):
    from sqlalchemy import create_engine, text

    from outcomes import migrate

    patient_id = world.patient.id
    session.commit()
    session.close()
    with app.app_context():
        db.engine.dispose()
    engine = create_engine(database_url)
    try:
        migrate.downgrade(engine, "0008")
        with engine.begin() as connection:
            # As a row written before the one rule: the first score called the baseline.
            connection.execute(text("UPDATE patient_summary SET phq9_baseline = 24, "
                                    "improving = :no"), {"no": False})
        migrate.upgrade(engine, "0009")  # the columns it fills go in 0010
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT phq9_baseline, phq9_reference_kind, phq9_latest, pcl5_reference_kind, "
                "improving FROM patient_summary WHERE patient_id = :id"),
                {"id": patient_id}).one()
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    # 16 -> 7 is a response (a fall of 50 % or more): the improving flag is recomputed too.
    assert tuple(row) == (16, BASELINE, 7, None, True)
