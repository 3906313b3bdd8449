"""The worked examples of the clinical reference, each checked field by field."""

import instruments


def test_pcl5_total_12_meets_provisional_diagnosis():
    result = instruments.score("pcl5", [2, 0, 0, 0, 0, 2, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0])
    assert result.scorable is True
    assert result.total == 12
    assert result.subscales == {"B": 2, "C": 2, "D": 4, "E": 4}
    assert result.provisional_diagnosis is True
    assert result.above_cutpoint is False
    assert result.band is None


def test_pcl5_total_74_misses_diagnosis_without_a_c_item():
    answers = [4] * 20
    answers[5] = answers[6] = 1  # items 6 and 7
    result = instruments.score("pcl5", answers)
    assert result.total == 74
    assert result.provisional_diagnosis is False
    assert result.above_cutpoint is True


def test_phq9_item_9_alone_is_minimal_with_risk_positive():
    result = instruments.score("phq9", [0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert (result.total, result.band, result.prorated) == (1, "minimal", False)
    assert result.flags == {"suicide_risk": "positive"}
    [alert] = result.alerts
    assert (alert.key, alert.value, alert.crisis) == ("suicide_risk", "positive", True)


def test_phq9_item_9_missing_is_prorated_to_18_with_risk_unknown():
    result = instruments.score("phq9", [2, 2, 2, 2, 2, 2, 2, 2, None])
    assert (result.total, result.prorated, result.band) == (18, True, "moderately_severe")
    assert result.flags == {"suicide_risk": "unknown"}
    assert result.missing_items == [9]
    assert [alert.value for alert in result.alerts] == ["unknown"]


def test_phq9_three_missing_is_not_scorable():
    result = instruments.score("phq9", [1, 1, 1, 1, 1, 1, None, None, None])
    assert result.scorable is False
    assert (result.total, result.band, result.above_cutpoint, result.prorated) == (None, None, None, False)
    assert result.missing_items == [7, 8, 9]
    assert result.flags == {"suicide_risk": "unknown"}


def test_phq9_change_20_to_10_is_response_without_remission():
    result = instruments.change("phq9", 20, 10)
    assert (result.change, result.percent_change) == (-10, -50.0)
    assert result.fields == {"response": True, "remission": False}
