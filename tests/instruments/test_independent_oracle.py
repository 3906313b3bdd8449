"""Independent oracle for the instruments package, written from the clinical reference alone.

The functions below were written from ``shared/clinical-reference.md`` and issue 2 (plus the
local policies the brief names), without reading ``instruments/scoring.py``, ``rules.py`` or
``change.py``. Every field of ``instruments.score(...).to_dict()`` and
``instruments.change(...).to_dict()`` is compared with the oracle:

* GAD-7: all 4^7 = 16,384 complete vectors, and every single-missing pattern of a sample;
* PHQ-9: a large seeded random sample with 0, 1 or 2 missing items (and some with 3+), every
  single- and double-missing pattern of a few fixed vectors, with and without item 10;
* PCL-5 (past month and weekly): every combination of endorsed-item counts per DSM-5 cluster,
  a seeded random sample, and hypothesis (including missing items -> not scorable);
* after-infusion: all 4^7 vectors of items 1-7 (confusion and hallucinations at 0), every
  confusion/hallucination pair over a sample, every one- or two-missing pattern of a sample;
* change: every baseline/current pair in range for PHQ-9 (0..27), PCL-5 (0..80), GAD-7 and
  after-infusion;
* the command line, through subprocess, on a sample, for equality with the Python API;
* bad input: never a number, a specific exception, and exit status 2 in the CLI.

Only facts the reference leaves open are taken from the package's data (not its code): the
definition version string, the item ids (for the mapping form) and each flag's alert reason.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import instruments
from instruments import InvalidAnswers, InvalidScore, UnknownInstrument

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# The oracle: facts from the clinical reference
# ---------------------------------------------------------------------------------------------

PCL5_CLUSTERS = {"B": range(1, 6), "C": range(6, 8), "D": range(8, 15), "E": range(15, 21)}
PCL5_NEEDED = {"B": 1, "C": 1, "D": 2, "E": 2}       # endorsed items (rated 2+) per cluster
PCL5_CUTPOINT = 33                                    # default: upper end of 31-33 (VA)
PCL5_MEANINGFUL = 10                                  # VA: 10 points minimum

PHQ9_BANDS = [(0, 4, "minimal", "Minimal"), (5, 9, "mild", "Mild"), (10, 14, "moderate", "Moderate"),
              (15, 19, "moderately_severe", "Moderately severe"), (20, 27, "severe", "Severe")]
GAD7_BANDS = [(0, 4, "minimal", "Minimal"), (5, 9, "mild", "Mild"), (10, 14, "moderate", "Moderate"),
              (15, 21, "severe", "Severe")]

SPEC = {
    # key: (number of scored items, max per item, total max, bands, cut-point)
    "pcl5": (20, 4, 80, None, PCL5_CUTPOINT),
    "pcl5-weekly": (20, 4, 80, None, PCL5_CUTPOINT),
    "phq9": (9, 3, 27, PHQ9_BANDS, 10),
    "gad7": (7, 3, 21, GAD7_BANDS, 10),
    "after-infusion": (9, 3, 27, None, None),
}
AFTER_CONFUSION, AFTER_HALLUCINATIONS = 8, 9          # item numbers in the list


def half_up(value: Fraction) -> int:
    """Round a non-negative fraction to the nearest integer, halves up (local policy)."""
    return int((value + Fraction(1, 2)) // 1)


@functools.cache
def alert_reason(key: str, flag: str) -> str:
    """The alert text is wording in the definition, not a clinical fact: read it from there."""
    return next(rule.alert_reason for rule in instruments.get(key).flags if rule.key == flag)


def band_of(bands, total):
    if bands is None or total is None:
        return None, None
    for low, high, key, label in bands:
        if low <= total <= high:
            return key, label
    raise AssertionError(f"total {total} outside every band")


def oracle_score(key: str, answers: list[int | None]) -> dict:
    """Everything ``score(key, answers).to_dict()`` should hold, from the reference."""
    n_items, _, _, bands, cutpoint = SPEC[key]
    answers = list(answers)
    if key == "phq9" and len(answers) == 9:
        answers.append(None)                          # item 10 optional, never scored
    if key == "gad7" and len(answers) == 7:
        answers.append(None)                          # item 8 (how difficult) likewise
    scored = answers[:n_items]
    missing = [number for number, value in enumerate(scored, start=1) if value is None]
    given_ = [value for value in scored if value is not None]

    total, prorated, scorable = None, False, False
    if not missing:
        total, scorable = sum(given_), True
    elif key == "phq9" and len(missing) <= 2:
        # NHS Data Dictionary: each missing item replaced by the mean of the answered ones;
        # rounding to the nearest whole point, halves up, is local policy.
        total, scorable, prorated = half_up(Fraction(sum(given_) * 9, len(given_))), True, True
    # any missing PCL-5, GAD-7 (no published rule) or after-infusion item -> not scorable

    band, band_label = band_of(bands, total)
    above = None if cutpoint is None or total is None else total >= cutpoint

    subscales, diagnosis, flags = {}, None, {}
    if key.startswith("pcl5"):
        subscales = {name: (sum(scored[i - 1] for i in items) if scorable else None)
                     for name, items in PCL5_CLUSTERS.items()}
        if scorable:
            diagnosis = all(sum(scored[i - 1] >= 2 for i in PCL5_CLUSTERS[name]) >= need
                            for name, need in PCL5_NEEDED.items())
    alerts = []
    if key == "phq9":
        item9 = scored[8]
        risk = "unknown" if item9 is None else ("positive" if item9 > 0 else "negative")
        flags["suicide_risk"] = risk                  # whatever the total, scorable or not
        if risk != "negative":
            alerts.append({"key": "suicide_risk", "value": risk, "crisis": True,
                           "reason": alert_reason(key, "suicide_risk")})
    if key == "after-infusion":
        review = (any(value == 3 for value in given_)
                  or (scored[AFTER_CONFUSION - 1] or 0) > 0
                  or (scored[AFTER_HALLUCINATIONS - 1] or 0) > 0
                  or bool(missing))                   # declared local policy: missing -> review
        flags["clinician_review"] = review
        if review:
            alerts.append({"key": "clinician_review", "value": True, "crisis": False,
                           "reason": alert_reason(key, "clinician_review")})
    return {
        "instrument": key, "version": instruments.get(key).version, "scorable": scorable,
        "total": total, "prorated": prorated, "band": band, "band_label": band_label,
        "subscales": subscales, "above_cutpoint": above, "provisional_diagnosis": diagnosis,
        "flags": flags, "missing_items": missing, "answers": answers, "alerts": alerts,
    }


def oracle_change(key: str, baseline: int, current: int) -> dict:
    """Everything ``change(key, baseline, current).to_dict()`` should hold (percent exact)."""
    points = current - baseline
    out = {"instrument": key, "baseline": baseline, "current": current, "change": points,
           "percent_change": None if baseline == 0 else Fraction(points * 100, baseline)}
    if key == "phq9":
        # a fall of 50 % or more (exactly 50 counts); undefined when the baseline is 0
        out["response"] = None if baseline == 0 else 2 * (baseline - current) >= baseline
        out["remission"] = current < 5
    if key.startswith("pcl5"):
        out["clinically_meaningful_improvement"] = baseline - current >= PCL5_MEANINGFUL
        out["clinically_meaningful_worsening"] = current - baseline >= PCL5_MEANINGFUL
        out["below_cutpoint"] = current < PCL5_CUTPOINT
    return out


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------

def compare_score(key, answers, mismatches=None):
    got = instruments.score(key, list(answers)).to_dict()
    want = oracle_score(key, answers)
    if got != want:
        diff = {f: (got.get(f), want.get(f)) for f in set(got) | set(want) if got.get(f) != want.get(f)}
        message = f"{key} {list(answers)}: (package, oracle) differ in {diff}"
        if mismatches is None:
            raise AssertionError(message)
        mismatches.append(message)


def one_decimal(exact: Fraction) -> float:
    """Percent shown to one decimal, halves away from zero (the reference gives no rule; this
    is the package's stated display policy, checked on every pair including the halves)."""
    tenths = half_up(abs(exact) * 10)
    return float(Fraction(tenths if exact >= 0 else -tenths, 10))


def percent_matches(got, exact):
    if exact is None or got is None:
        return got is None and exact is None
    return isinstance(got, float) and got == one_decimal(exact)


def compare_change(key, baseline, current, mismatches):
    got = instruments.change(key, baseline, current).to_dict()
    want = oracle_change(key, baseline, current)
    exact = want.pop("percent_change")
    got_percent = got.pop("percent_change", "absent")
    if got != want or not percent_matches(got_percent, exact):
        mismatches.append(f"{key} {baseline}->{current}: package {got} percent {got_percent}; "
                          f"oracle {want} percent {exact and float(exact)}")


def assert_none(mismatches, total):
    assert not mismatches, f"{len(mismatches)} of {total} differ; first: " + "\n".join(mismatches[:10])


# ---------------------------------------------------------------------------------------------
# The oracle agrees with the reference's worked examples (a check on the oracle itself)
# ---------------------------------------------------------------------------------------------

def test_oracle_reproduces_the_worked_examples():
    a = oracle_score("pcl5", [2, 0, 0, 0, 0, 2, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0])
    assert (a["total"], a["subscales"], a["provisional_diagnosis"], a["above_cutpoint"]) == (
        12, {"B": 2, "C": 2, "D": 4, "E": 4}, True, False)
    b = oracle_score("pcl5", [4] * 5 + [1, 1] + [4] * 13)
    assert (b["total"], b["provisional_diagnosis"], b["above_cutpoint"]) == (74, False, True)
    c = oracle_score("phq9", [0] * 8 + [1])
    assert (c["total"], c["band"], c["flags"]) == (1, "minimal", {"suicide_risk": "positive"})
    d = oracle_score("phq9", [2] * 8 + [None])
    assert (d["total"], d["prorated"], d["band"], d["flags"]) == (
        18, True, "moderately_severe", {"suicide_risk": "unknown"})
    assert oracle_score("phq9", [1] * 6 + [None] * 3)["scorable"] is False
    e = oracle_change("phq9", 20, 10)
    assert (e["response"], e["remission"]) == (True, False)


# ---------------------------------------------------------------------------------------------
# GAD-7
# ---------------------------------------------------------------------------------------------

def test_gad7_every_complete_vector():
    mismatches = []
    vectors = list(itertools.product(range(4), repeat=7))
    for vector in vectors:
        compare_score("gad7", vector, mismatches)
    assert len(vectors) == 16_384
    assert_none(mismatches, len(vectors))


def test_gad7_any_missing_item_is_not_scorable():
    rng = random.Random(7)
    mismatches, cases = [], 0
    for _ in range(300):
        vector = [rng.randint(0, 3) for _ in range(7)]
        for k in (1, 2, 7):
            for gap in itertools.combinations(range(7), k):
                answers = [None if i in gap else v for i, v in enumerate(vector)]
                compare_score("gad7", answers, mismatches)
                cases += 1
    assert_none(mismatches, cases)


# ---------------------------------------------------------------------------------------------
# PHQ-9
# ---------------------------------------------------------------------------------------------

PHQ9_FIXED = [[0] * 9, [3] * 9, [2] * 9, [1, 2, 3, 0, 1, 2, 3, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 1],
              [3, 3, 3, 3, 3, 3, 3, 3, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0], [2, 1, 1, 1, 1, 1, 1, 1, 1],
              [1, 0, 1, 0, 1, 0, 1, 0, 0], [3, 0, 3, 0, 3, 0, 3, 0, 3]]


def test_phq9_every_single_and_double_missing_pattern_of_fixed_vectors():
    mismatches, cases = [], 0
    for vector in PHQ9_FIXED:
        for k in (0, 1, 2, 3):
            for gap in itertools.combinations(range(9), k):
                answers = [None if i in gap else v for i, v in enumerate(vector)]
                for item10 in ("absent", None, 0, 3):
                    full = answers if item10 == "absent" else answers + [item10]
                    compare_score("phq9", full, mismatches)
                    cases += 1
    assert_none(mismatches, cases)


def test_phq9_proration_halves_round_up():
    # one missing, sum of eight = 4, 12, 20 -> 4.5, 13.5, 22.5 -> 5, 14, 23 (band edges 5 and 20)
    for answers, total, band in (([1, 1, 1, 1] + [0] * 4 + [None], 5, "mild"),
                                 ([2, 2, 2, 2, 1, 1, 1, 1, None], 14, "moderate"),
                                 ([3, 3, 3, 3, 2, 2, 2, 2, None], 23, "severe"),
                                 ([None, 1, 1, 1, 1, 0, 0, 0, 0], 5, "mild")):
        got = instruments.score("phq9", answers).to_dict()
        assert (got["total"], got["band"], got["prorated"]) == (total, band, True), answers


def test_phq9_large_random_sample_with_up_to_two_missing():
    rng = random.Random(9)
    mismatches, cases = [], 0
    for _ in range(25_000):
        vector = [rng.randint(0, 3) for _ in range(9)]
        k = rng.choice((0, 0, 1, 1, 2, 2, 3, 4, 9))
        for i in rng.sample(range(9), k):
            vector[i] = None
        item10 = rng.choice(("absent", None, 0, 1, 2, 3))
        compare_score("phq9", vector if item10 == "absent" else vector + [item10], mismatches)
        cases += 1
    assert_none(mismatches, cases)


def test_phq9_every_complete_total_and_band_edge():
    # every total 0..27 reached with item 9 at 0 and above 0
    mismatches = []
    for total in range(28):
        for item9 in range(min(3, total) + 1):
            rest, vector = total - item9, []
            for _ in range(8):
                vector.append(min(3, rest))
                rest -= vector[-1]
            if rest == 0:
                compare_score("phq9", vector + [item9], mismatches)
    assert_none(mismatches, 28)


# ---------------------------------------------------------------------------------------------
# PCL-5 (past month and weekly: identical items and scoring)
# ---------------------------------------------------------------------------------------------

def cluster_vector(counts, endorsed_value, other_value):
    vector = []
    for name, items in PCL5_CLUSTERS.items():
        vector += [endorsed_value if j < counts[name] else other_value for j in range(len(items))]
    return vector


def test_pcl5_every_combination_of_endorsed_counts_per_cluster():
    mismatches, cases = [], 0
    for b, c, d, e in itertools.product(range(6), range(3), range(8), range(7)):
        counts = {"B": b, "C": c, "D": d, "E": e}
        for endorsed, other in ((2, 1), (4, 0), (2, 0), (3, 1)):
            vector = cluster_vector(counts, endorsed, other)
            for key in ("pcl5", "pcl5-weekly"):
                compare_score(key, vector, mismatches)
                cases += 1
    assert_none(mismatches, cases)


def test_pcl5_random_sample_and_every_single_missing_item():
    rng = random.Random(5)
    mismatches, cases = [], 0
    for _ in range(5_000):
        vector = [rng.choice((0, 0, 1, 1, 2, 2, 3, 4)) for _ in range(20)]
        for key in ("pcl5", "pcl5-weekly"):
            compare_score(key, vector, mismatches)
            cases += 1
    for _ in range(50):
        vector = [rng.randint(0, 4) for _ in range(20)]
        for i in range(20):
            compare_score("pcl5", vector[:i] + [None] + vector[i + 1:], mismatches)
            cases += 1
    assert_none(mismatches, cases)


def test_pcl5_every_total_at_the_cutpoint_edges():
    for total in (30, 31, 32, 33, 34, 0, 80):
        vector = [min(4, max(0, total - 4 * i)) for i in range(20)]
        assert sum(vector) == total
        compare_score("pcl5", vector)
        compare_score("pcl5-weekly", vector)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 4), min_size=20, max_size=20), st.sampled_from(["pcl5", "pcl5-weekly"]))
def test_pcl5_hypothesis_complete(answers, key):
    compare_score(key, answers)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.integers(0, 4), st.none()), min_size=20, max_size=20)
       .filter(lambda answers: None in answers),
       st.sampled_from(["pcl5", "pcl5-weekly"]))
def test_pcl5_hypothesis_missing_items_are_not_scorable(answers, key):
    got = instruments.score(key, answers).to_dict()
    assert got["scorable"] is False and got["total"] is None
    assert got["provisional_diagnosis"] is None and got["above_cutpoint"] is None
    compare_score(key, answers)


# ---------------------------------------------------------------------------------------------
# After-infusion local checklist
# ---------------------------------------------------------------------------------------------

def test_after_infusion_complete_vectors():
    # every vector of items 1-7 with confusion and hallucinations at 0 (the only case where
    # items 1-7 decide the flag), then every confusion/hallucination pair over a sample
    mismatches, cases = [], 0
    for vector in itertools.product(range(4), repeat=7):
        compare_score("after-infusion", vector + (0, 0), mismatches)
        cases += 1
    rng = random.Random(13)
    for _ in range(200):
        head = [rng.randint(0, 3) for _ in range(7)]
        for tail in itertools.product(range(4), repeat=2):
            compare_score("after-infusion", head + list(tail), mismatches)
            cases += 1
    assert_none(mismatches, cases)


def test_after_infusion_missing_items_flag_review():
    rng = random.Random(11)
    mismatches, cases = [], 0
    for _ in range(100):
        vector = [rng.randint(0, 2) if i < 7 else 0 for i in range(9)]   # nothing else flags
        for k in (1, 2):
            for gap in itertools.combinations(range(9), k):
                compare_score("after-infusion", [None if i in gap else v for i, v in enumerate(vector)],
                              mismatches)
                cases += 1
    assert_none(mismatches, cases)


# ---------------------------------------------------------------------------------------------
# Change between two administrations: every pair in range
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["phq9", "pcl5", "pcl5-weekly", "gad7", "after-infusion"])
def test_change_every_pair_in_range(key):
    top = SPEC[key][2]
    mismatches = []
    for baseline in range(top + 1):
        for current in range(top + 1):
            compare_change(key, baseline, current, mismatches)
    assert_none(mismatches, (top + 1) ** 2)


def test_change_worked_example_and_edges():
    assert instruments.change("phq9", 20, 10).to_dict()["response"] is True     # exactly 50 %
    assert instruments.change("phq9", 21, 11).to_dict()["response"] is False    # 47.6 %
    assert instruments.change("phq9", 10, 5).to_dict()["remission"] is False    # 5 is not remission
    assert instruments.change("phq9", 10, 4).to_dict()["remission"] is True
    pcl = instruments.change("pcl5", 43, 33).to_dict()
    assert (pcl["clinically_meaningful_improvement"], pcl["below_cutpoint"]) == (True, False)
    pcl = instruments.change("pcl5", 42, 33).to_dict()
    assert (pcl["clinically_meaningful_improvement"], pcl["below_cutpoint"]) == (False, False)
    assert instruments.change("pcl5", 32, 42).to_dict()["clinically_meaningful_worsening"] is True
    assert instruments.change("pcl5", 32, 41).to_dict()["clinically_meaningful_worsening"] is False


@pytest.mark.parametrize("key,baseline,current", [
    ("phq9", -1, 0), ("phq9", 0, 28), ("phq9", 28, 0), ("gad7", 22, 0), ("pcl5", 0, 81),
    ("pcl5-weekly", 81, 0), ("after-infusion", 0, 28), ("phq9", True, 0), ("phq9", 10.0, 0),
    ("phq9", "10", 0), ("phq9", None, 3),
])
def test_change_out_of_range_never_gives_a_number(key, baseline, current):
    with pytest.raises(InvalidScore):
        instruments.change(key, baseline, current)


# ---------------------------------------------------------------------------------------------
# Bad answers: a specific exception, never a number
# ---------------------------------------------------------------------------------------------

BAD_ANSWERS = [
    ("phq9", [0] * 8 + [4]), ("phq9", [-1] + [0] * 8), ("phq9", [0] * 9 + [4]),
    ("phq9", [0] * 8), ("phq9", [0] * 11), ("phq9", [True] + [0] * 8), ("phq9", [1.0] + [0] * 8),
    ("phq9", ["1"] + [0] * 8), ("gad7", [4] + [0] * 6), ("gad7", [0] * 6), ("gad7", [0] * 9), ("gad7", [0] * 7 + [4]),
    ("pcl5", [5] + [0] * 19), ("pcl5", [0] * 19), ("pcl5", [0] * 21), ("pcl5-weekly", [1] * 19 + [5]),
    ("after-infusion", [4] + [0] * 8), ("after-infusion", [0] * 8), ("gad7", [2.5] + [0] * 6),
    ("phq9", {"nope": 1}),
]


@pytest.mark.parametrize("key,answers", BAD_ANSWERS)
def test_bad_answers_raise(key, answers):
    with pytest.raises(InvalidAnswers):
        instruments.score(key, answers)


def test_unknown_instrument_raises():
    with pytest.raises(UnknownInstrument):
        instruments.score("phq8", [0] * 8)
    with pytest.raises(UnknownInstrument):
        instruments.change("phq8", 1, 1)


def test_mapping_form_equals_item_order_form():
    rng = random.Random(3)
    for key in SPEC:
        ids = [item.id for item in instruments.get(key).items]
        for _ in range(50):
            vector = [rng.choice((None, 0, 1, 2, 3)) for _ in ids]
            if key == "phq9":
                vector[9] = rng.choice((None, 0, 3))
            mapped = instruments.score(key, dict(zip(ids, vector))).to_dict()
            assert mapped == oracle_score(key, vector), (key, vector)


# ---------------------------------------------------------------------------------------------
# Command line: same answers as the Python API, errors as one line on stderr with exit 2
# ---------------------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "instruments", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def cli_text(answers):
    return ",".join("" if value is None else str(value) for value in answers)


CLI_SCORE_SAMPLE = [
    ("pcl5", [2, 0, 0, 0, 0, 2, 0, 2, 2, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0]),
    ("pcl5-weekly", [4] * 5 + [1, 1] + [4] * 13),
    ("pcl5", [None] + [3] * 19),
    ("phq9", [0] * 8 + [1]),
    ("phq9", [2] * 8 + [None]),
    ("phq9", [1] * 4 + [0] * 4 + [None]),
    ("phq9", [1] * 6 + [None] * 3),
    ("phq9", [3] * 9 + [2]),
    ("phq9", [1] * 8 + [0, None]),
    ("gad7", [2, 2, 2, 2, 1, 1, 0]),
    ("gad7", [None, 1, 1, 1, 1, 1, 1]),
    ("after-infusion", [0] * 7 + [1, 0]),
    ("after-infusion", [0] * 3 + [None] + [0] * 5),
    ("after-infusion", [2] * 9),
]


@pytest.mark.parametrize("key,answers", CLI_SCORE_SAMPLE)
def test_cli_score_equals_api_and_oracle(key, answers):
    done = run_cli("score", key, "--answers", cli_text(answers))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == instruments.score(key, answers).to_dict() == oracle_score(key, answers)


@pytest.mark.parametrize("key,baseline,current", [("phq9", 20, 10), ("phq9", 0, 4), ("pcl5", 50, 40),
                                                  ("pcl5-weekly", 30, 40), ("gad7", 3, 2)])
def test_cli_change_equals_api(key, baseline, current):
    done = run_cli("change", key, "--baseline", str(baseline), "--current", str(current))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == instruments.change(key, baseline, current).to_dict()


@pytest.mark.parametrize("args", [
    ("score", "phq9", "--answers", "0,0,0,0,0,0,0,0,4"),
    ("score", "phq9", "--answers", "0,0,0,0,0,0,0,0"),
    ("score", "pcl5", "--answers", ",".join(["1"] * 19 + ["5"])),
    ("score", "gad7", "--answers", "1,1,1,1,1,1,x"),
    ("score", "gad7", "--answers", "1,1,1,1,1,1,1.0"),
    ("score", "nope", "--answers", "1"),
    ("change", "phq9", "--baseline", "28", "--current", "1"),
    ("change", "pcl5", "--baseline", "10", "--current", "-1"),
])
def test_cli_bad_input_one_line_exit_2(args):
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Definitions against the reference: texts, options, LOINC codes, sources, nothing invented
# ---------------------------------------------------------------------------------------------

REFERENCE = REPO.parent / "shared" / "clinical-reference.md"

PHQ9_OPTIONS = [(0, "Not at all", "LA6568-5"), (1, "Several days", "LA6569-3"),
                (2, "More than half the days", "LA6570-1"), (3, "Nearly every day", "LA6571-9")]
PCL5_OPTIONS = [(0, "Not at all"), (1, "A little bit"), (2, "Moderately"), (3, "Quite a bit"),
                (4, "Extremely")]


def reference_text():
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not present")
    return REFERENCE.read_text(encoding="utf-8")


def reference_items(section_start, section_end):
    """(text, LOINC) of each item listed as 'N text (code)' in a reference section."""
    section = reference_text().split(section_start)[1].split(section_end)[0]
    return re.findall(r"\d (.+?) \((\d+-\d)\)", section.replace("\n  ", " "))


def test_pcl5_item_texts_are_the_reference_texts():
    texts = re.findall(r"^  \d+\. (.+)$", reference_text(), re.M)
    assert len(texts) == 20
    for key in ("pcl5", "pcl5-weekly"):
        instrument = instruments.get(key)
        assert [item.text for item in instrument.items] == texts
        for item in instrument.items:
            assert [(o.value, o.label) for o in item.options] == PCL5_OPTIONS
    assert instruments.get("pcl5").stem == "In the past month, how much were you bothered by:"
    assert instruments.get("pcl5-weekly").stem == "In the past week, how much were you bothered by:"


def test_phq9_and_gad7_items_options_and_codes_are_the_reference_ones():
    phq9 = instruments.get("phq9")
    assert [(i.text, i.loinc) for i in phq9.items[:9]] == reference_items("## PHQ-9", "Item 10 (")
    assert phq9.items[9].loinc == "69722-7" and not phq9.items[9].scored
    assert [o.label for o in phq9.items[9].options] == [
        "Not difficult at all", "Somewhat difficult", "Very difficult", "Extremely difficult"]
    assert all([(o.value, o.label, o.loinc) for o in i.options] == PHQ9_OPTIONS for i in phq9.items[:9])
    gad7 = instruments.get("gad7")
    assert [(i.text, i.loinc) for i in gad7.items[:7]] == reference_items("## GAD-7", "- Total 0–21")
    for item in gad7.items[:7]:  # "Not at all sure" is a known reproduction error
        assert [(o.value, o.label) for o in item.options] == [(v, t) for v, t, _ in PHQ9_OPTIONS]
    # The published GAD-7 closes with the PHQ-9's "how difficult" question, unscored.
    assert (gad7.items[7].text, gad7.items[7].options) == (phq9.items[9].text, phq9.items[9].options)
    assert not gad7.items[7].scored and not gad7.items[7].required
    assert phq9.stem == ("Over the last 2 weeks, how often have you been bothered by any of the "
                         "following problems?")
    # Each as published: the GAD-7's stem has no "any of".
    assert gad7.stem == "Over the last 2 weeks, how often have you been bothered by the following problems?"


def test_panel_and_total_codes():
    codes = {key: (instruments.get(key).loinc_panel, instruments.get(key).loinc_total) for key in SPEC}
    assert codes["pcl5"] == ("101697-1", "101698-9")
    assert codes["phq9"] == ("44249-1", "44261-6")
    assert codes["gad7"] == ("69737-5", "70274-6")
    assert codes["after-infusion"] == (None, None)


def test_nothing_invented_and_every_threshold_sourced():
    for key in SPEC:
        instrument = instruments.get(key)
        if instrument.bands:
            assert instrument.bands_source
        if instrument.cutpoint is not None:
            assert instrument.cutpoint_source
        for rule in (instrument.missing, instrument.diagnosis, *instrument.flags, *instrument.change_thresholds):
            assert rule is None or rule.source
    assert instruments.get("pcl5").bands == () and instruments.get("pcl5-weekly").bands == ()
    assert [(b.key, b.min, b.max) for b in instruments.get("phq9").bands] == [(b[2], b[0], b[1]) for b in PHQ9_BANDS]
    assert [(b.key, b.min, b.max) for b in instruments.get("gad7").bands] == [(b[2], b[0], b[1]) for b in GAD7_BANDS]
    after = instruments.get("after-infusion")
    assert after.validated is False and "local checklist" in after.title and after.local_policies
    assert after.cutpoint is None and after.bands == ()
    assert any("halves up" in policy for policy in instruments.get("phq9").local_policies)
    assert any("missing" in policy for policy in instruments.get("gad7").local_policies)
    for key in ("pcl5", "pcl5-weekly"):
        assert any("missing" in policy for policy in instruments.get(key).local_policies)
