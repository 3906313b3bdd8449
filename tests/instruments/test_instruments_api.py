"""The public API: catalogue, result shapes, input errors, and isolation from the web app."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import instruments

REPO = Path(__file__).resolve().parents[2]
KEYS = ["after-infusion", "gad7", "pcl5", "pcl5-weekly", "phq9"]


def test_all_is_sorted_by_key_and_get_finds_each():
    assert [instrument.key for instrument in instruments.all()] == KEYS
    for key in KEYS:
        assert instruments.get(key).key == key


def test_unknown_instrument_is_an_instrument_error_and_a_value_error():
    with pytest.raises(instruments.UnknownInstrument, match="unknown instrument 'phq10'"):
        instruments.get("phq10")
    for error in (instruments.UnknownInstrument, instruments.InvalidAnswers,
                  instruments.InvalidScore, instruments.DefinitionError):
        assert issubclass(error, instruments.InstrumentError)
    assert issubclass(instruments.InstrumentError, ValueError)


def test_definitions_are_frozen():
    phq9 = instruments.get("phq9")
    with pytest.raises(dataclasses.FrozenInstanceError):
        phq9.cutpoint = 5
    with pytest.raises(TypeError):
        phq9.flags[0].params["at_least"] = 2


def test_shipped_definitions_match_the_reference_shape():
    phq9, gad7, pcl5, weekly, after = (instruments.get(key) for key in ("phq9", "gad7", "pcl5", "pcl5-weekly", "after-infusion"))
    assert (phq9.total_min, phq9.total_max, len(phq9.items), len(phq9.scored_items)) == (0, 27, 10, 9)
    assert (gad7.total_max, pcl5.total_max, after.total_max) == (21, 80, 27)
    assert [band.key for band in phq9.bands] == ["minimal", "mild", "moderate", "moderately_severe", "severe"]
    assert [(band.min, band.max) for band in phq9.bands] == [(0, 4), (5, 9), (10, 14), (15, 19), (20, 27)]
    assert [(band.key, band.min, band.max) for band in gad7.bands] == [
        ("minimal", 0, 4), ("mild", 5, 9), ("moderate", 10, 14), ("severe", 15, 21)]
    assert pcl5.bands == () and after.bands == ()
    assert (phq9.cutpoint, gad7.cutpoint, pcl5.cutpoint, after.cutpoint) == (10, 10, 33, None)
    assert all(i.cutpoint_source for i in (phq9, gad7, pcl5))
    assert [s.items for s in pcl5.subscales] == [
        tuple(f"q{n}" for n in range(1, 6)), ("q6", "q7"),
        tuple(f"q{n}" for n in range(8, 15)), tuple(f"q{n}" for n in range(15, 21))]
    assert [s.key for s in pcl5.subscales] == ["B", "C", "D", "E"]
    assert (phq9.loinc_panel, phq9.loinc_total) == ("44249-1", "44261-6")
    assert (gad7.loinc_panel, gad7.loinc_total) == ("69737-5", "70274-6")
    assert (pcl5.loinc_panel, pcl5.loinc_total) == ("101697-1", "101698-9")
    assert after.validated is False and all(i.validated for i in (phq9, gad7, pcl5, weekly))
    assert after.local_policies and phq9.local_policies and gad7.local_policies


def test_phq9_item_10_is_unscored_optional_with_its_own_options():
    item10 = instruments.get("phq9").items[9]
    assert (item10.number, item10.scored, item10.required, item10.loinc) == (10, False, False, "69722-7")
    assert [(o.value, o.label) for o in item10.options] == [
        (0, "Not difficult at all"), (1, "Somewhat difficult"), (2, "Very difficult"), (3, "Extremely difficult")]
    assert [o.loinc for o in instruments.get("phq9").items[0].options] == [
        "LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


def test_gad7_has_the_published_stem_and_an_unscored_difficulty_item():
    gad7 = instruments.get("gad7")
    assert gad7.stem == ("Over the last 2 weeks, how often have you been bothered by the "
                         "following problems?")
    assert (len(gad7.items), len(gad7.scored_items)) == (8, 7)
    item8 = gad7.items[7]
    assert (item8.number, item8.scored, item8.required) == (8, False, False)
    assert item8.text == instruments.get("phq9").items[9].text
    assert item8.options == instruments.get("phq9").items[9].options
    assert instruments.score("gad7", [3] * 7 + [3]).total == 21
    assert instruments.score("gad7", [3] * 7).total == 21


def test_pcl5_weekly_differs_from_pcl5_only_in_time_frame_texts():
    pcl5, weekly = instruments.get("pcl5"), instruments.get("pcl5-weekly")
    assert weekly.items == pcl5.items and weekly.subscales == pcl5.subscales
    assert weekly.diagnosis == pcl5.diagnosis and weekly.change_thresholds == pcl5.change_thresholds
    assert (weekly.cutpoint, weekly.missing) == (pcl5.cutpoint, pcl5.missing)
    assert (pcl5.time_frame, weekly.time_frame) == ("past month", "past week")
    assert weekly.stem == "In the past week, how much were you bothered by:"
    assert weekly.instructions == pcl5.instructions.replace("past month", "past week")
    assert "choose one answer" in pcl5.instructions and "circle" not in pcl5.instructions


def test_flag_rules_say_what_the_app_must_do():
    [risk] = instruments.get("phq9").flags
    assert (risk.key, risk.alert_values, risk.crisis) == ("suicide_risk", ("positive", "unknown"), True)
    assert "item 9" in risk.alert_reason
    [review] = instruments.get("after-infusion").flags
    assert (review.key, review.alert_values, review.crisis) == ("clinician_review", (True,), False)


def test_score_to_dict_has_the_cli_keys_and_is_json():
    data = instruments.score("phq9", [1] * 9).to_dict()
    for key in ("instrument", "version", "scorable", "total", "prorated", "band", "subscales",
                "above_cutpoint", "provisional_diagnosis", "flags", "missing_items"):
        assert key in data
    assert json.loads(json.dumps(data)) == data


def test_nine_phq9_answers_are_padded_with_a_missing_item_10():
    result = instruments.score("phq9", [0] * 9)
    assert result.answers == (0,) * 9 + (None,)
    assert result.missing_items == []


def test_answers_may_be_given_by_item_id():
    by_id = instruments.score("after-infusion", {"dizziness": 2, "confusion": 0, "detached": 0, "nausea": 0,
                                                  "headache": 0, "blurred_vision": 0, "anxiety": 0,
                                                  "drowsiness": 0, "hallucinations": 0})
    assert (by_id.total, by_id.flags) == (2, {"clinician_review": False})
    partial = instruments.score("phq9", {"q1": 3, "q9": 0})
    assert partial.missing_items == [2, 3, 4, 5, 6, 7, 8]
    with pytest.raises(instruments.InvalidAnswers, match="^phq9: unknown item 'q11'$"):
        instruments.score("phq9", {"q11": 1})


@pytest.mark.parametrize("key, answers, message", [
    ("phq9", [0] * 8, "phq9: expected 9 or 10 answers, got 8"),
    ("phq9", [0] * 11, "phq9: expected 9 or 10 answers, got 11"),
    ("pcl5", [0] * 19, "pcl5: expected 20 answers, got 19"),
    ("phq9", [0, 0, 7, 0, 0, 0, 0, 0, 0], "phq9: item 3 answer 7 is outside 0-3"),
    ("phq9", [0] * 9 + [4], "phq9: item 10 answer 4 is outside 0-3"),
    ("pcl5", [5] + [0] * 19, "pcl5: item 1 answer 5 is outside 0-4"),
    ("gad7", [0, -1, 0, 0, 0, 0, 0], "gad7: item 2 answer -1 is outside 0-3"),
    ("gad7", [0, 1.0, 0, 0, 0, 0, 0], "gad7: item 2 answer 1.0 is not an integer"),
    ("gad7", [0, "1", 0, 0, 0, 0, 0], "gad7: item 2 answer '1' is not an integer"),
    ("gad7", [True, 0, 0, 0, 0, 0, 0], "gad7: item 1 answer True is not an integer"),
    ("gad7", "0000000", "gad7: answers must be a list of integers or None, got str"),
    ("gad7", 7, "gad7: answers must be a list of integers or None, got int"),
])
def test_bad_answers_never_yield_a_number(key, answers, message):
    with pytest.raises(instruments.InvalidAnswers) as caught:
        instruments.score(key, answers)
    assert str(caught.value) == message


@pytest.mark.parametrize("key, baseline, current, message", [
    ("phq9", 28, 10, "phq9: baseline 28 is outside 0-27"),
    ("phq9", 10, -1, "phq9: current -1 is outside 0-27"),
    ("pcl5", 81, 0, "pcl5: baseline 81 is outside 0-80"),
    ("gad7", 10, 22, "gad7: current 22 is outside 0-21"),
    ("gad7", 10.0, 5, "gad7: baseline 10.0 is not an integer"),
    ("gad7", 10, True, "gad7: current True is not an integer"),
])
def test_bad_totals_raise_invalid_score(key, baseline, current, message):
    with pytest.raises(instruments.InvalidScore) as caught:
        instruments.change(key, baseline, current)
    assert str(caught.value) == message


def test_change_to_dict_flattens_fields():
    assert instruments.change("pcl5", 50, 38).to_dict() == {
        "instrument": "pcl5", "baseline": 50, "current": 38, "change": -12, "percent_change": -24.0,
        "clinically_meaningful_improvement": True, "clinically_meaningful_worsening": False,
        "below_cutpoint": False}


def test_importing_and_using_instruments_pulls_in_no_web_code():
    script = (
        "import sys, instruments, instruments.cli\n"
        "instruments.score('phq9', [0] * 9); instruments.change('pcl5', 40, 30)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'outcomes', 'werkzeug', 'sqlalchemy'))\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_both_pcl5_versions_share_one_measure_and_others_default_to_their_short_title():
    assert instruments.get("pcl5").measure == instruments.get("pcl5-weekly").measure == "PCL-5"
    assert instruments.get("phq9").measure == instruments.get("phq9").short_title
