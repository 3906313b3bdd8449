"""The summary's measure rows (``patient_measure_summary``): one per patient and measure with a
scorable total, kept by ``services.summaries`` and filled from a 0009-era database by
revision 0010 exactly as a fresh refresh writes them."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from outcomes import migrate
from outcomes.extensions import db
from outcomes.models import MeasureSummary
from outcomes.services import summaries
from outcomes.services.baseline import BASELINE, SINCE_FIRST

from .helpers import DAY, History

COLUMNS = ("patient_id", "measure", "clinic_id", "baseline", "baseline_at", "reference_kind",
           "latest", "latest_at", "improving", "worsening")


@pytest.fixture
def treated(app, session, world):
    """The patient: a course with its first infusion 40 days ago; a PHQ-9 baseline of 20 and a
    response to 9; a PCL-5 only after it (since first) that rose 12 points, a worsening; a
    GAD-7 once; an after-infusion check. The other clinic's patient: one PHQ-9, corrected."""
    history = History(app, session, world.clinician)
    first = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - 40 * DAY
    history.course(world.patient, [first])
    history.score(world.patient, "phq9", 20, first - 3 * DAY)
    history.score(world.patient, "phq9", 9, first + 21 * DAY)
    history.score(world.patient, "pcl5", 30, first + 7 * DAY)
    history.score(world.patient, "pcl5-weekly", 42, first + 28 * DAY)
    history.score(world.patient, "gad7", 11, first + 7 * DAY)
    history.score(world.patient, "after-infusion", 2, first + DAY)
    other = History(app, session, world.other_clinician)
    wrong = other.score(world.other_patient, "phq9", 19, first)
    other.score(world.other_patient, "phq9", 16, first, amends=wrong)
    return first


def measure_rows(connection) -> list[tuple]:
    return [tuple(row) for row in connection.execute(text(
        f"SELECT {', '.join(COLUMNS)} FROM patient_measure_summary "
        "ORDER BY patient_id, measure"))]


def test_a_row_for_every_measure_with_a_score_headline_or_not(session, world, treated):
    rows = {(r.patient_id, r.measure): r for r in session.scalars(select(MeasureSummary))}
    assert sorted(rows) == sorted([
        (world.patient.id, "After-infusion check"), (world.patient.id, "GAD-7"),
        (world.patient.id, "PCL-5"), (world.patient.id, "PHQ-9"),
        (world.other_patient.id, "PHQ-9")])
    phq9, pcl5 = rows[(world.patient.id, "PHQ-9")], rows[(world.patient.id, "PCL-5")]
    assert (phq9.baseline, phq9.reference_kind, phq9.latest, phq9.improving, phq9.worsening) \
        == (20, BASELINE, 9, True, False)
    assert (pcl5.baseline, pcl5.reference_kind, pcl5.latest, pcl5.improving, pcl5.worsening) \
        == (30, SINCE_FIRST, 42, False, True)
    gad7 = rows[(world.patient.id, "GAD-7")]
    assert (gad7.baseline, gad7.latest, gad7.baseline_at) == (11, 11, gad7.latest_at)
    corrected = rows[(world.other_patient.id, "PHQ-9")]
    assert (corrected.baseline, corrected.latest, corrected.clinic_id) == \
        (16, 16, world.other_clinic.id)


def test_a_measure_whose_scores_are_corrected_away_loses_its_row(app, session, world):
    history = History(app, session, world.clinician)
    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - DAY
    gad7 = history.score(world.patient, "gad7", 12, at)
    assert session.get(MeasureSummary, (world.patient.id, "GAD-7")) is not None
    # The correction leaves three items blank: not scorable, so no GAD-7 total is left.
    history.factory.assessment(world.patient, "gad7", [1, 1, 1, 1, None, None, None, None],
                               at=at, by=world.clinician, amends=gad7)
    session.expire_all()
    assert session.get(MeasureSummary, (world.patient.id, "GAD-7")) is None


def test_revision_0010_fills_the_rows_a_fresh_refresh_writes(
        app, session, database_url, world, treated):
    patients = (world.patient.id, world.other_patient.id)
    answer = session.execute(text(
        "SELECT assessment_id, max(item_number) FROM assessment_answer "
        "GROUP BY assessment_id")).first()
    session.commit()
    session.close()
    with app.app_context():
        db.engine.dispose()
    engine = create_engine(database_url)
    try:
        migrate.downgrade(engine, "0009")
        with engine.connect() as connection:
            old = connection.execute(text(
                "SELECT pcl5_baseline, pcl5_reference_kind, pcl5_latest, phq9_baseline, "
                "phq9_reference_kind, phq9_latest, improving, worsening FROM patient_summary "
                "WHERE patient_id = :id"), {"id": patients[0]}).one()
        # The 0009-era row: the two measures' columns, and the flags of either.
        assert tuple(old) == (30, SINCE_FIRST, 42, 20, BASELINE, 9, True, True)
        # Before 0010 the database refuses an answer above 10 whatever the definition says.
        extra = {"id": answer[0], "number": answer[1] + 1}
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("INSERT INTO assessment_answer VALUES (:id, :number, 11)"),
                               extra)
        migrate.upgrade(engine)
        with engine.connect() as connection:
            migrated = measure_rows(connection)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO assessment_answer VALUES (:id, :number, 11)"),
                               extra)
            with pytest.raises(Exception, match="append-only"):
                connection.execute(text("DELETE FROM assessment_answer"))
    finally:
        engine.dispose()
    with app.app_context():
        for patient_id in patients:
            summaries.refresh(db.session, patient_id)
        db.session.commit()
        refreshed = measure_rows(db.session.connection())
    assert len(migrated) == 5 and migrated == refreshed
