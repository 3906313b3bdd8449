"""Charts: the figures built from plain data (traces, shapes, colours, hover), the plain
sentence and tables of the patient's view, the pages that show them, and that a patient's chart
page reads only that patient's rows."""
from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo

import pytest
from sqlalchemy import select

import instruments
from outcomes.charts import (
    PALETTE,
    RANGE_BUTTONS,
    InfusionMark,
    Point,
    Series,
    Vitals,
    clinician_charts,
    patient_charts,
    parts_figure,
    total_figure,
    weekly_mean_chart,
)
from outcomes.extensions import db
from outcomes.models import Alert, Assessment, AssessmentAnswer, Course, Infusion
from outcomes.services.courses import SIDE_EFFECTS
from outcomes.services.outcomes import WeekMean
from outcomes.services.baseline import baseline_window, choose_reference
from outcomes.services.results import (
    infusion_marks,
    parts_of,
    progress_sentence,
)

from .conftest import sign_in, statements
from .helpers import DAY, History, figures_on, traces

ZONE = zoneinfo.ZoneInfo("America/New_York")
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)
PCL5 = instruments.get("pcl5")
PHQ9 = instruments.get("phq9")
GAD7 = instruments.get("gad7")


def series_of(instrument, totals, start=T0, step=7 * DAY, flagged=(), parts=False) -> Series:
    points = [Point(start + index * step, total, index + 1,
                    alerts=("suicide risk (item 9): positive",) if index in flagged else (),
                    subscales={"B": total // 4, "C": total // 10, "D": total // 3,
                               "E": total // 4} if parts else {})
              for index, total in enumerate(totals)]
    return Series(instrument.measure, instrument.title, instrument.total_max,
                  instrument.cutpoint, instrument.bands, points,
                  parts_of(instrument) if parts else ())


def mark(number, at, side_effects=("Dissociation", "Nausea")) -> InfusionMark:
    return InfusionMark(f"Infusion {number}", at, 0.5, 40.0, Vitals(122, 78, 72, 98),
                        Vitals(140, 90, 84, None), Vitals(126, 80, 74, 98), side_effects)


INFUSIONS = [mark(1, T0 + DAY), mark(2, T0 + 3 * DAY, ())]


def shapes(figure, kind):
    found = figure["layout"].get("shapes", [])
    if kind == "vertical":
        return [s for s in found if s["type"] == "line" and s["x0"] == s["x1"]]
    if kind == "horizontal":
        return [s for s in found if s["type"] == "line" and s["y0"] == s["y1"]]
    return [s for s in found if s["type"] == kind]


def annotation_texts(figure):
    return [a["text"] for a in figure["layout"].get("annotations", [])]


# --- figures ------------------------------------------------------------------------------

def test_pcl5_total_has_its_labelled_cutpoint_infusion_marks_and_no_bands():
    figure = total_figure(series_of(PCL5, [52, 44, 31]), INFUSIONS, ZONE)
    assert [t["name"] for t in figure["data"]] == ["PCL-5 total", "Infusion"]
    assert traces(figure, "PCL-5 total")[0]["y"] == [52, 44, 31]
    assert len(shapes(figure, "rect")) == 0  # the PCL-5 definition has no bands
    [cutpoint] = shapes(figure, "horizontal")
    assert cutpoint["y0"] == 33 and cutpoint["line"]["color"] == PALETTE["cutpoint"]
    assert annotation_texts(figure) == ["cut-point 33"]
    assert len(shapes(figure, "vertical")) == 2
    assert figure["layout"]["xaxis"]["rangeselector"]["buttons"] == list(RANGE_BUTTONS)


@pytest.mark.parametrize("instrument", [PHQ9, GAD7], ids=["phq9", "gad7"])
def test_severity_bands_are_exactly_the_definitions_shaded_and_labelled(instrument):
    figure = total_figure(series_of(instrument, [12, 8]), [], ZONE)
    bands = shapes(figure, "rect")
    assert len(bands) == len(instrument.bands)
    for band, shape in zip(instrument.bands, bands):
        assert shape["fillcolor"] == PALETTE[f"band {band.key}"]
        assert shape["y0"] <= band.min and shape["y1"] >= band.max
    assert annotation_texts(figure) == [band.label for band in instrument.bands] + [
        f"cut-point {instrument.cutpoint}"]
    assert not traces(figure, "Infusion") and not shapes(figure, "vertical")


def test_infusion_marks_show_dose_vitals_and_side_effects_on_hover():
    figure = total_figure(series_of(PHQ9, [18, 12]), INFUSIONS, ZONE)
    [infusions] = traces(figure, "Infusion")
    assert infusions["x"] == ["2026-03-03 10:00", "2026-03-05 10:00"]  # New York time
    first, second = infusions["hovertext"]
    assert first.split("<br>") == [
        "Infusion 1, 3 Mar 2026 10:00", "Dose 0.5 mg/kg, 40 mg in total",
        "Before: BP 122/78, HR 72, SpO2 98%", "Peak: BP 140/90, HR 84, SpO2 —",
        "After: BP 126/80, HR 74, SpO2 98%", "Side effects: Dissociation, Nausea"]
    assert second.endswith("Side effects: none recorded")
    lines = shapes(figure, "vertical")
    assert [line["x0"] for line in lines] == infusions["x"]
    # Each spans the plot's full height, whatever the y range.
    assert {(line["yref"], line["y0"], line["y1"]) for line in lines} == {("y domain", 0, 1)}


def test_item9_positives_are_marked_on_the_phq9_line():
    figure = total_figure(series_of(PHQ9, [18, 14, 9], flagged=(1,)), [], ZONE)
    [flags] = traces(figure, "Safety flag")
    assert flags["y"] == [14] and flags["x"] == ["2026-03-09 11:00"]  # EDT from 8 March
    assert flags["hovertext"] == ["9 Mar 2026: suicide risk (item 9): positive"]
    assert flags["marker"]["color"] == PALETTE["alert"]


def test_clusters_have_one_line_each_told_apart_without_colour_alone():
    series = series_of(PCL5, [52, 40], parts=True)
    figure = parts_figure(series, INFUSIONS, ZONE)
    clusters = [t for t in figure["data"] if t["name"] != "Infusion"]
    assert [t["name"] for t in clusters] == [
        "B Intrusion", "C Avoidance", "D Negative alterations in cognitions and mood",
        "E Alterations in arousal and reactivity"]
    assert [t["y"] for t in clusters] == [[13, 10], [5, 4], [17, 13], [13, 10]]
    assert len({t["line"]["color"] for t in clusters}) == 4
    assert len({t["line"]["dash"] for t in clusters}) == 4
    assert [t["line"]["color"] for t in clusters] == [PALETTE[f"part {n}"] for n in (1, 2, 3, 4)]
    assert figure["layout"]["yaxis"]["range"] == [0, 28]  # D: 7 items of 0-4
    assert len(traces(figure, "Infusion")) == 1 and len(shapes(figure, "vertical")) == 2


def test_parts_of_pcl5_are_its_dsm5_clusters_with_their_maxima():
    assert [(p.key, p.max) for p in parts_of(PCL5)] == [("B", 20), ("C", 8), ("D", 28),
                                                       ("E", 24)]
    assert parts_of(PHQ9) == ()


def test_the_same_meaning_has_the_same_colour_on_every_chart():
    series = [series_of(PHQ9, [18, 12], flagged=(0,)), series_of(GAD7, [14, 9]),
              series_of(PCL5, [50, 40], parts=True)]
    charts = clinician_charts(series, INFUSIONS, ZONE) + patient_charts(series, INFUSIONS, ZONE)
    seen: dict[str, set[str]] = {}
    for chart in charts:
        for trace in chart.figure["data"]:
            name = trace["name"].replace(" total", "").replace("Your score", "")
            key = name or chart.title.split()[1]  # the patient's "Your PCL-5 scores"
            seen.setdefault(key, set()).add(trace["marker"]["color"])
        for shape in chart.figure["layout"].get("shapes", []):
            if shape["type"] == "rect":
                seen.setdefault(f"band {shape['fillcolor']}", set()).add(shape["fillcolor"])
            elif shape["x0"] == shape["x1"]:
                seen.setdefault("Infusion", set()).add(shape["line"]["color"])
    for key in ("PCL-5", "PHQ-9", "GAD-7", "Infusion", "Safety flag"):
        assert len(seen[key]) == 1, (key, seen[key])
    # Each measure in its definition's colour: today's PCL-5 blue, PHQ-9 brown, GAD-7 green.
    assert seen["PCL-5"] == {"#1f5fa8"} and seen["Infusion"] == {PALETTE["infusion"]}
    assert seen["PHQ-9"] == {"#8a3b12"} and seen["GAD-7"] == {"#2e6b30"}
    # Both PHQ-9 and GAD-7 have a "minimal" band: one shade.
    phq, gad = (total_figure(s, [], ZONE) for s in series[:2])
    assert shapes(phq, "rect")[0]["fillcolor"] == shapes(gad, "rect")[0]["fillcolor"]


def test_palette_colours_are_distinct_and_contrast_with_white():
    def luminance(colour):
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    marks = {k: v for k, v in PALETTE.items()
             if not k.startswith(("band", "button", "grid", "text", "label"))}
    marks |= {m.name: m.colour for m in instruments.measures()}  # the definitions' colours
    assert len(set(marks.values())) == len(marks)
    for meaning, colour in marks.items():
        assert 1.05 / (luminance(colour) + 0.05) >= 3, meaning  # WCAG 1.4.11
    for key, shade in PALETTE.items():
        if key.startswith("band"):
            assert (luminance(shade) + 0.05) / (luminance(PALETTE["label"]) + 0.05) >= 4.5


def test_clinician_charts_come_in_measure_order_with_clusters_after_pcl5():
    series = [series_of(GAD7, [14]), series_of(PHQ9, [18]),
              series_of(PCL5, [50, 40], parts=True)]
    titles = [c.title for c in clinician_charts(series, INFUSIONS, ZONE)]
    assert titles == ["PCL-5 total", "PCL-5 clusters", "PHQ-9 total", "GAD-7 total"]


def test_the_patients_chart_is_plain_with_infusions_and_no_bands_or_flags():
    series = series_of(PHQ9, [18, 12, 7], flagged=(1,))
    [chart] = patient_charts([series], INFUSIONS, ZONE, {"PHQ-9": "A sentence."})
    figure = chart.figure
    assert [t["name"] for t in figure["data"]] == ["Your score", "Infusion"]
    assert not shapes(figure, "rect") and not shapes(figure, "horizontal")
    assert not figure["layout"].get("annotations")
    assert "rangeselector" not in figure["layout"]["xaxis"]
    assert traces(figure, "Infusion")[0]["hovertext"] == ["Infusion 1, 3 Mar 2026",
                                                          "Infusion 2, 5 Mar 2026"]
    assert chart.summary == "A sentence."
    scores, infusions = chart.tables
    assert [c.label for c in scores.columns] == ["Date", "Total (0–27)"]
    assert scores.rows == (("2 Mar 2026", "18"), ("9 Mar 2026", "12"), ("16 Mar 2026", "7"))
    assert infusions.rows == (("3 Mar 2026", "Infusion 1"), ("5 Mar 2026", "Infusion 2"))


def test_clinician_tables_hold_what_the_charts_show():
    series = series_of(PHQ9, [18, 12], flagged=(0,))
    [chart] = clinician_charts([series], INFUSIONS, ZONE)
    scores, infusions = chart.tables
    assert scores.rows == (("2 Mar 2026", "18", "Moderately severe",
                            "suicide risk (item 9): positive"),
                           ("9 Mar 2026", "12", "Moderate", ""))
    assert infusions.rows[0] == ("3 Mar 2026", "Infusion 1", "0.5 mg/kg, 40 mg",
                                 "BP 122/78, HR 72, SpO2 98%", "BP 140/90, HR 84, SpO2 —",
                                 "BP 126/80, HR 74, SpO2 98%", "Dissociation, Nausea")
    [_, clusters] = clinician_charts([series_of(PCL5, [52], parts=True)], [], ZONE)
    assert [c.label for c in clusters.tables[0].columns][1] == "B Intrusion (0–20)"
    assert clusters.tables[0].rows == (("2 Mar 2026", "13", "5", "17", "13"),)


def test_weekly_means_have_error_bars_only_where_there_is_an_interval():
    weeks = [WeekMean(3, 45.0, 32.58, 57.42, 0), WeekMean(1, 55.0, None, None, 9)]
    chart = weekly_mean_chart("PCL-5", 80, weeks)
    [trace] = chart.figure["data"]
    assert trace["x"] == [0, 9] and trace["y"] == [45.0, 55.0]
    assert trace["error_y"]["array"] == [12.42, None]
    assert trace["hovertext"] == ["Week 0: mean 45.0 (95% CI 32.6 to 57.4), n = 3",
                                  "Week 9: mean 55.0, n = 1"]
    assert trace["line"]["color"] == instruments.get("pcl5").display.colour
    assert chart.tables[0].rows == (("0 (baseline)", "3", "45.0", "32.6 to 57.4"),
                                    ("9", "1", "55.0", "— (n < 2)"))


def test_figures_use_only_what_the_basic_plotly_bundle_draws():
    series = [series_of(PHQ9, [18, 12], flagged=(0,)), series_of(PCL5, [50], parts=True)]
    charts = clinician_charts(series, INFUSIONS, ZONE) + patient_charts(series, INFUSIONS, ZONE)
    charts.append(weekly_mean_chart("PHQ-9", 27, [WeekMean(2, 10, 5, 15, 0)]))
    for chart in charts:
        assert {t["type"] for t in chart.figure["data"]} == {"scatter"}
        assert {s["type"] for s in chart.figure["layout"].get("shapes", [])} <= {"line", "rect"}
        assert "template" not in chart.figure["layout"]
        json.dumps(chart.figure)  # plain JSON


# --- the patient's sentence ---------------------------------------------------------------

NOW = T0 + 60 * DAY


@pytest.mark.parametrize("totals, first_infusion, expected", [
    ([52, 40, 31], T0 + DAY,
     "Your PCL-5 score went from 52 before your first infusion to 31 this week."),
    ([31, 40, 38], T0 + DAY,
     "Your PCL-5 score went from 31 before your first infusion to 38 this week."),
    ([40, 35, 40], T0 + DAY,
     "Your PCL-5 score was 40 before your first infusion, and it was 40 again this week."),
    ([52], T0 + DAY,
     "Your PCL-5 score was 52 before your first infusion; your next scores will show how "
     "it changes."),
    ([52], None, "Your PCL-5 score was 52 on 2 March; your next scores will show how it "
                 "changes."),
    ([52, 31], None, "Your PCL-5 score went from 52 on 2 March (your first score) to 31 "
                     "this week."),
    ([40, 35, 40], None, "Your PCL-5 score was 40 this week, the same as your first score "
                         "on 2 March."),
])
def test_the_sentence_is_right_whether_the_score_fell_rose_or_stayed(
        totals, first_infusion, expected):
    # The last score is 2 days before NOW; the others are weeks earlier.
    series = series_of(PCL5, totals, step=(NOW - 2 * DAY - T0) / max(1, len(totals) - 1))
    referenced(series, first_infusion)
    assert progress_sentence(series, NOW, ZONE) == expected
    assert "diagnos" not in expected and "PTSD" not in expected


def referenced(series: Series, first_infusion: dt.datetime | None) -> Series:
    """The series with its reference, as ``trend_series`` sets it."""
    if series.points:
        series.reference = choose_reference(
            series.points, lambda point: point.administered_at,
            [baseline_window(first_infusion, ZONE)] if first_infusion else [],
            series.points[-1].administered_at)
    return series


def test_the_sentence_names_last_week_or_the_date_for_older_scores():
    series = referenced(series_of(PHQ9, [20, 9], step=40 * DAY), T0)
    assert progress_sentence(series, T0 + 50 * DAY, ZONE).endswith("to 9 last week.")
    assert progress_sentence(series, T0 + 60 * DAY, ZONE).endswith("to 9 on 11 April.")
    assert progress_sentence(series, T0 + 40 * DAY + dt.timedelta(hours=1), ZONE
                             ).endswith("to 9 today.")
    assert progress_sentence(referenced(series_of(PHQ9, []), T0), NOW, ZONE) == ""


# --- from the records to the charts -------------------------------------------------------

def test_infusion_marks_take_each_infusions_latest_version():
    def course(number, start, times):
        course = Course(id=number, start_date=start.date(), patient_id=1)
        course.infusions = []
        for index, at in enumerate(times, start=1):
            infusion = Infusion(id=number * 10 + index, number=index)
            infusion.versions = [version(at + dt.timedelta(hours=2), 1),
                                 version(at, 2, ["raised_heart_rate"])]
            course.infusions.append(infusion)
        return course

    def version(at, number, side_effects=()):
        from outcomes.models import InfusionVersion
        return InfusionVersion(version=number, administered_at=at, dose_mg_per_kg=0.5,
                               total_dose_mg=40, systolic_before=120, diastolic_before=80,
                               heart_rate_before=70, spo2_before=98, systolic_peak=None,
                               diastolic_peak=None, heart_rate_peak=None, spo2_peak=None,
                               systolic_after=121, diastolic_after=79, heart_rate_after=71,
                               spo2_after=97, side_effects=list(side_effects))

    marks = infusion_marks([course(2, T0 + 90 * DAY, [T0 + 90 * DAY]),
                            course(1, T0, [T0, T0 + 2 * DAY])])
    assert [m.label for m in marks] == ["Course 1, infusion 1", "Course 1, infusion 2",
                                        "Course 2, infusion 1"]
    assert marks[0].administered_at == T0
    assert marks[0].side_effects == (SIDE_EFFECTS["raised_heart_rate"],)
    assert marks[0].peak == Vitals(None, None, None, None)
    assert [m.label for m in infusion_marks([course(1, T0, [T0])])] == ["Infusion 1"]


@pytest.fixture
def charted(app, session, world, factory):
    """The world's patient with a course of two infusions, PCL-5, PHQ-9 (one with item 9
    above 0) and GAD-7 scores and a corrected PCL-5; a second patient of the same clinic with
    a history of their own."""
    history = History(app, session, world.clinician)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    first = now - 30 * DAY
    history.course(world.patient, [first, first + 2 * DAY])
    for key, total, at in [("pcl5", 52, first - DAY), ("phq9", 18, first - DAY),
                           ("gad7", 14, first - DAY), ("pcl5-weekly", 44, first + 7 * DAY),
                           ("pcl5-weekly", 38, first + 14 * DAY), ("phq9", 9, first + 14 * DAY)]:
        history.score(world.patient, key, total, at)
    history.score(world.patient, "phq9", 12, first + 7 * DAY, item9=1)
    wrong = history.score(world.patient, "pcl5-weekly", 77, now - 2 * DAY)
    history.score(world.patient, "pcl5-weekly", 31, now - 2 * DAY, amends=wrong)
    neighbour = factory.patient(world.clinic, world.clinician, name="Nell Neighbour")
    history.course(neighbour, [first + DAY])
    history.score(neighbour, "pcl5", 70, first)
    history.score(neighbour, "phq9", 25, first + 3 * DAY, item9=2)
    return history, neighbour


def test_the_clinicians_page_charts_the_patients_course(client, world, charted):
    sign_in(client, world.clinician)
    page = client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert re.findall(r'<h3 id="chart-\d-title">([^<]+)</h3>', page) == [
        "PCL-5 total", "PCL-5 clusters", "PHQ-9 total", "GAD-7 total"]
    pcl, clusters, phq, gad = figures_on(page)
    # The corrected record counts once, with its corrected total.
    assert traces(pcl, "PCL-5 total")[0]["y"] == [52, 44, 38, 31]
    for figure in (pcl, clusters, phq, gad):
        [infusions] = traces(figure, "Infusion")
        assert len(infusions["x"]) == 2 and "0.5 mg/kg" in infusions["hovertext"][0]
        assert "Side effects: Dissociation, Nausea" in infusions["hovertext"][0]
    assert traces(phq, "Safety flag")[0]["y"] == [12]
    assert len(shapes(phq, "rect")) == 5 and len(shapes(gad, "rect")) == 4
    assert not shapes(pcl, "rect")
    assert "PCL-5 total as a table" in page and "Infusions marked on the chart" in page
    assert "vendor/plotly.min.js" in page and "js/charts.js" in page


def test_the_patients_home_and_result_show_the_plain_charts_and_sentence(
        client, world, charted, session):
    sign_in(client, world.patient_user)
    page = " ".join(client.get("/me/").data.decode().split())
    assert ("Your PCL-5 score went from 52 before your first infusion to 31 this week."
            in page)
    assert "Your PHQ-9 score went from 18 before your first infusion to 9 on" in page
    assert "Your GAD-7 score was 14 before your first infusion; your next scores" in page
    assert "Your PCL-5 scores as a table" in page and "<caption>Your infusions</caption>" in page
    figures = figures_on(page)
    assert [t["name"] for t in figures[0]["data"]] == ["Your score", "Infusion"]
    assert traces(figures[0], "Your score")[0]["y"] == [52, 44, 38, 31]
    latest = session.scalars(select(Assessment).where(
        Assessment.patient_id == world.patient.id, Assessment.amends_id.is_not(None))).one()
    result = " ".join(client.get(f"/me/results/{latest.id}").data.decode().split())
    assert result.count('data-chart="') == 1
    assert "Your PCL-5 score went from 52 before your first infusion to 31 this week." in result
    assert "Safety flag" not in page + result and "cut-point" not in page + result


def test_a_patient_without_scores_sees_no_chart(client, world):
    sign_in(client, world.patient_user)
    page = client.get("/me/").data.decode()
    assert "Your scores will appear here after your first questionnaire." in page
    assert "data-chart" not in page and "plotly" not in page


#: Tables holding a patient's records, and the columns that say whose a row is.
PATIENT_TABLES = {"assessment", "assessment_answer", "alert", "course", "infusion",
                  "infusion_version", "plan_entry", "patient_summary"}


def owned_ids(session, patient_id: int) -> dict[str, set[int]]:
    session.expire_all()
    assessments = set(session.scalars(select(Assessment.id).where(
        Assessment.patient_id == patient_id)))
    course_ids = set(session.scalars(select(Course.id).where(Course.patient_id == patient_id)))
    infusions = set(session.scalars(select(Infusion.id).where(Infusion.course_id.in_(
        course_ids))))
    return {"patient_id": {patient_id}, "course_id": course_ids, "infusion_id": infusions,
            "assessment_id": assessments}


def assert_reads_only(app, seen, owned) -> int:
    """Every read of a patient table is filtered and, run again, returns only rows of the
    patient whose ids ``owned`` holds. Returns how many such reads there were."""
    checked = 0
    with app.app_context(), db.engine.connect() as connection:
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            tables = set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", statement)) & PATIENT_TABLES
            if not tables:
                continue
            assert re.search(r"\bWHERE\b", statement), statement
            result = connection.exec_driver_sql(statement, parameters)
            names = [column[0] for column in result.cursor.description]
            owners = [(index, name) for index, name in enumerate(names) if name in owned]
            assert owners, f"a read that does not say whose rows it returns: {statement}"
            for row in result:
                for index, name in owners:
                    assert row[index] is None or row[index] in owned[name], (statement, row)
            checked += 1
    return checked


def test_the_clinicians_chart_page_reads_only_that_patients_rows(
        app, client, world, charted, session):
    _, neighbour = charted
    sign_in(client, world.clinician)
    with statements(app) as seen:
        assert client.get(f"/clinic/patients/{world.patient.id}").status_code == 200
    assert assert_reads_only(app, seen, owned_ids(session, world.patient.id)) >= 6
    # The check itself tells the neighbour's rows apart.
    with pytest.raises(AssertionError):
        assert_reads_only(app, seen, owned_ids(session, neighbour.id))


@pytest.mark.parametrize("page", ["home", "result"])
def test_the_patients_own_chart_pages_read_only_their_rows(
        app, client, world, charted, session, page):
    sign_in(client, world.patient_user)
    assessment = session.scalars(select(Assessment).where(
        Assessment.patient_id == world.patient.id)).first()
    path = "/me/" if page == "home" else f"/me/results/{assessment.id}"
    with statements(app) as seen:
        assert client.get(path).status_code == 200
    assert assert_reads_only(app, seen, owned_ids(session, world.patient.id)) >= 5


def test_the_neighbours_records_exist_for_the_isolation_tests(session, world, charted):
    _, neighbour = charted
    for model in (Assessment, Alert, Course):
        assert session.scalars(select(model).where(model.patient_id == neighbour.id)).first()
    assert session.scalars(select(AssessmentAnswer).join(Assessment).where(
        Assessment.patient_id == neighbour.id)).first()
