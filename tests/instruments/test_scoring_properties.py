"""Properties that must hold for every possible answer set, checked with hypothesis.

The oracles here are written from the clinical reference, not from the engine's code.
"""

import math
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import instruments

ALL_KEYS = [instrument.key for instrument in instruments.all()]
STRICT_KEYS = ["gad7", "pcl5", "pcl5-weekly", "after-infusion"]  # any missing item: not scorable
PCL5_CLUSTERS = {"B": range(1, 6), "C": range(6, 8), "D": range(8, 15), "E": range(15, 21)}
PCL5_MINIMUM = {"B": 1, "C": 1, "D": 2, "E": 2}


def complete_answers(key):
    items = instruments.get(key).items
    return st.tuples(*(st.integers(item.min_value, item.max_value) for item in items)).map(list)


def answers_with_missing(key):
    items = instruments.get(key).items
    return st.tuples(*(st.none() | st.integers(item.min_value, item.max_value) for item in items)).map(list)


def scored_sum(key, answers):
    return sum(answer for item, answer in zip(instruments.get(key).items, answers) if item.scored)


def draw_item(data, key):
    """An item index and its item, drawn at random."""
    items = instruments.get(key).items
    index = data.draw(st.integers(0, len(items) - 1))
    return index, items[index]


def half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


@pytest.mark.parametrize("key", ALL_KEYS)
@given(data=st.data())
def test_complete_answers_total_is_the_item_sum_within_range(key, data):
    answers = data.draw(complete_answers(key))
    result = instruments.score(key, answers)
    instrument = instruments.get(key)
    assert result.scorable and not result.prorated and result.missing_items == []
    assert result.total == scored_sum(key, answers)
    assert instrument.total_min <= result.total <= instrument.total_max


@pytest.mark.parametrize("key", ALL_KEYS)
@given(data=st.data())
def test_band_and_cutpoint_agree_with_the_total(key, data):
    result = instruments.score(key, data.draw(answers_with_missing(key)))
    instrument = instruments.get(key)
    if not result.scorable:
        assert (result.total, result.band, result.above_cutpoint) == (None, None, None)
        return
    assert instrument.total_min <= result.total <= instrument.total_max
    if instrument.bands:
        band = instrument.band_for(result.total)
        assert band.min <= result.total <= band.max and result.band == band.key
    else:
        assert result.band is None
    expected = None if instrument.cutpoint is None else result.total >= instrument.cutpoint
    assert result.above_cutpoint == expected


@pytest.mark.parametrize("key", ALL_KEYS)
@given(data=st.data())
def test_total_never_falls_when_an_answer_rises(key, data):
    answers = data.draw(answers_with_missing(key))
    index, item = draw_item(data, key)
    assume(answers[index] is not None and answers[index] < item.max_value)
    before = instruments.score(key, answers)
    raised = list(answers)
    raised[index] += data.draw(st.integers(1, item.max_value - answers[index]))
    after = instruments.score(key, raised)
    assert after.scorable == before.scorable
    if before.scorable:
        assert after.total >= before.total
        for subscale, value in before.subscales.items():
            assert value is None or after.subscales[subscale] >= value


@pytest.mark.parametrize("key", ["pcl5", "pcl5-weekly"])
@given(data=st.data())
def test_pcl5_diagnosis_and_subscales_agree_with_cluster_counts(key, data):
    answers = data.draw(complete_answers(key))
    result = instruments.score(key, answers)
    endorsed = {c: sum(1 for n in items if answers[n - 1] >= 2) for c, items in PCL5_CLUSTERS.items()}
    sums = {c: sum(answers[n - 1] for n in items) for c, items in PCL5_CLUSTERS.items()}
    assert result.provisional_diagnosis == all(endorsed[c] >= PCL5_MINIMUM[c] for c in PCL5_CLUSTERS)
    assert result.subscales == sums
    assert sum(sums.values()) == result.total


@given(answers=complete_answers("pcl5"))
def test_pcl5_weekly_scores_exactly_like_pcl5(answers):
    monthly, weekly = instruments.score("pcl5", answers), instruments.score("pcl5-weekly", answers)
    assert dataclass_fields(monthly, drop=("instrument",)) == dataclass_fields(weekly, drop=("instrument",))


def dataclass_fields(result, drop):
    return {k: v for k, v in result.to_dict().items() if k not in drop}


@pytest.mark.parametrize("key", STRICT_KEYS)
@given(data=st.data())
def test_any_missing_item_makes_strict_instruments_unscorable(key, data):
    answers = data.draw(answers_with_missing(key))
    # An optional unscored item (GAD-7 item 8, how difficult) may be left out freely.
    required = [item.required for item in instruments.get(key).items]
    assume(any(answer is None for answer, needed in zip(answers, required) if needed))
    result = instruments.score(key, answers)
    assert result.scorable is False and result.prorated is False
    assert result.total is None and result.band is None and result.above_cutpoint is None
    assert result.provisional_diagnosis is None
    assert all(value is None for value in result.subscales.values())
    assert result.missing_items == [n for n, (answer, needed) in enumerate(zip(answers, required), start=1)
                                    if answer is None and needed]


@given(answers=answers_with_missing("phq9"), give_item_10=st.booleans())
def test_phq9_proration_follows_the_nhs_rule_with_halves_up(answers, give_item_10):
    given_answers = answers if give_item_10 else answers[:9]
    result = instruments.score("phq9", given_answers)
    core = answers[:9]
    answered = [a for a in core if a is not None]
    missing = 9 - len(answered)
    assert result.missing_items == [n for n, a in enumerate(core, start=1) if a is None]
    if missing <= 2:
        assert result.scorable is True
        assert result.total == half_up(Fraction(sum(answered) * 9, len(answered)))
        assert result.prorated is (missing > 0)
    else:
        assert result.scorable is False and result.total is None and result.prorated is False


@given(answers=answers_with_missing("phq9"))
def test_phq9_suicide_risk_comes_from_item_9_only_even_when_unscorable(answers):
    result = instruments.score("phq9", answers)
    item9 = answers[8]
    expected = "unknown" if item9 is None else ("positive" if item9 > 0 else "negative")
    assert result.flags == {"suicide_risk": expected}
    assert [alert.key for alert in result.alerts] == ([] if expected == "negative" else ["suicide_risk"])


@given(answers=answers_with_missing("after-infusion"))
def test_after_infusion_review_is_never_cleared_by_a_missing_answer(answers):
    result = instruments.score("after-infusion", answers)
    confusion, hallucinations = answers[7], answers[8]
    expected = (None in answers or any(a == 3 for a in answers)
                or confusion > 0 or hallucinations > 0)
    assert result.flags == {"clinician_review": expected}
    assert [alert.value for alert in result.alerts] == ([True] if expected else [])


@pytest.mark.parametrize("key", ALL_KEYS)
@given(data=st.data())
def test_change_is_points_and_rounded_percent(key, data):
    instrument = instruments.get(key)
    totals = st.integers(instrument.total_min, instrument.total_max)
    baseline, current = data.draw(totals), data.draw(totals)
    result = instruments.change(key, baseline, current)
    assert result.change == current - baseline
    if baseline == 0:
        assert result.percent_change is None
    else:
        exact = Fraction(100 * (current - baseline), baseline)
        assert abs(Fraction(str(result.percent_change)) - exact) <= Fraction(1, 20)


@given(baseline=st.integers(0, 27), current=st.integers(0, 27))
def test_phq9_response_and_remission(baseline, current):
    fields = instruments.change("phq9", baseline, current).fields
    assert fields["response"] == (None if baseline == 0 else 2 * (baseline - current) >= baseline)
    assert fields["remission"] == (current < 5)


@given(baseline=st.integers(0, 80), current=st.integers(0, 80))
def test_pcl5_change_fields(baseline, current):
    fields = instruments.change("pcl5", baseline, current).fields
    assert fields == {"clinically_meaningful_improvement": baseline - current >= 10,
                      "clinically_meaningful_worsening": current - baseline >= 10,
                      "below_cutpoint": current < 33}


@pytest.mark.parametrize("key", ALL_KEYS)
@given(data=st.data())
def test_any_answer_outside_the_options_is_refused(key, data):
    answers = data.draw(complete_answers(key))
    index, item = draw_item(data, key)
    answers[index] = data.draw(st.integers(max_value=item.min_value - 1) | st.integers(min_value=item.max_value + 1))
    with pytest.raises(instruments.InvalidAnswers, match=f"^{key}: item {item.number} answer "):
        instruments.score(key, answers)
