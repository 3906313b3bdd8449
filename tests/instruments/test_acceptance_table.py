"""An independent acceptance table, run through ``python -m instruments``.

Every expectation was worked out by hand from the published rules in the clinical reference
(never by running the engine): PHQ-9 proration is sum x 9 / answered, halves up; percent
change is rounded to one decimal, halves away from zero. Every listed field must match.
"""

import json

import pytest

import instruments



def phq9(answers, total, band, above, risk, prorated=False, missing=()):
    return ("phq9", answers, dict(scorable=total is not None, total=total, prorated=prorated, band=band,
                                  subscales={}, above_cutpoint=above, provisional_diagnosis=None,
                                  flags={"suicide_risk": risk}, missing_items=list(missing)))


def gad7(answers, total, band, above, missing=()):
    return ("gad7", answers, dict(scorable=total is not None, total=total, prorated=False, band=band,
                                  subscales={}, above_cutpoint=above, provisional_diagnosis=None,
                                  flags={}, missing_items=list(missing)))


def pcl5(answers, total, clusters, diagnosis, above, missing=(), key="pcl5"):
    subscales = dict(zip("BCDE", clusters)) if clusters else dict.fromkeys("BCDE")
    return (key, answers, dict(scorable=total is not None, total=total, prorated=False, band=None,
                               subscales=subscales, above_cutpoint=above, provisional_diagnosis=diagnosis,
                               flags={}, missing_items=list(missing)))


def after(answers, total, review, missing=()):
    return ("after-infusion", answers, dict(scorable=total is not None, total=total, prorated=False, band=None,
                                            subscales={}, above_cutpoint=None, provisional_diagnosis=None,
                                            flags={"clinician_review": review}, missing_items=list(missing)))


SCORE_CASES = [
    # PHQ-9: complete answers and band edges 4/5, 9/10, 14/15, 19/20
    phq9("0,0,0,0,0,0,0,0,0", 0, "minimal", False, "negative"),
    phq9("0,0,0,0,0,0,0,0,1", 1, "minimal", False, "positive"),
    phq9("0,0,0,0,0,0,0,0,3", 3, "minimal", False, "positive"),
    phq9("1,1,1,1,0,0,0,0,0", 4, "minimal", False, "negative"),
    phq9("1,1,1,1,1,0,0,0,0", 5, "mild", False, "negative"),
    phq9("1,1,1,1,1,1,1,1,1", 9, "mild", False, "positive"),
    phq9("2,1,1,1,1,1,1,1,1", 10, "moderate", True, "positive"),
    phq9("2,2,2,2,2,1,1,1,1", 14, "moderate", True, "positive"),
    phq9("2,2,2,2,2,2,1,1,1", 15, "moderately_severe", True, "positive"),
    phq9("3,3,3,2,2,2,2,2,0", 19, "moderately_severe", True, "negative"),
    phq9("3,3,3,3,2,2,2,2,0", 20, "severe", True, "negative"),
    phq9("3,3,3,3,3,3,3,3,3", 27, "severe", True, "positive"),
    # PHQ-9 item 10: never in the total, never missing
    phq9("3,3,3,3,3,3,3,3,3,3", 27, "severe", True, "positive"),
    phq9("0,0,0,0,0,0,0,0,0,3", 0, "minimal", False, "negative"),
    phq9("1,1,1,1,1,1,1,1,0,", 8, "mild", False, "negative"),
    # PHQ-9 one missing: sum x 9 / 8
    phq9("2,2,2,2,2,2,2,2,", 18, "moderately_severe", True, "unknown", True, [9]),          # 144/8 = 18
    phq9("2,2,2,2,2,2,2,2,,1", 18, "moderately_severe", True, "unknown", True, [9]),        # item 10 given
    phq9(",1,1,1,1,1,1,1,0", 8, "mild", False, "negative", True, [1]),                      # 63/8 = 7.875
    phq9("3,3,3,2,2,2,2,0,", 19, "moderately_severe", True, "unknown", True, [9]),          # 153/8 = 19.125
    phq9("3,3,3,2,2,2,2,,0", 19, "moderately_severe", True, "negative", True, [8]),         # 153/8 = 19.125
    phq9("1,1,1,1,,0,0,0,0", 5, "mild", False, "negative", True, [5]),                      # 36/8 = 4.5 -> 5
    phq9("2,2,2,2,2,2,,0,0", 14, "moderate", True, "negative", True, [7]),                  # 108/8 = 13.5 -> 14
    phq9("3,3,3,3,2,2,2,,2", 23, "severe", True, "positive", True, [8]),                    # 180/8 = 22.5 -> 23
    phq9("0,0,0,0,0,0,0,0,", 0, "minimal", False, "unknown", True, [9]),                    # 0/8 = 0
    # PHQ-9 two missing: sum x 9 / 7
    phq9(",,1,1,1,1,1,1,1", 9, "mild", False, "positive", True, [1, 2]),                    # 63/7 = 9.0
    phq9("2,2,2,2,2,,,0,0", 13, "moderate", True, "negative", True, [6, 7]),                # 90/7 = 12.857
    phq9(",,2,2,1,1,1,1,0", 10, "moderate", True, "negative", True, [1, 2]),                # 72/7 = 10.286
    phq9("1,1,1,0,0,0,0,,", 4, "minimal", False, "unknown", True, [8, 9]),                  # 27/7 = 3.857
    phq9(",,0,0,0,0,0,0,1", 1, "minimal", False, "positive", True, [1, 2]),                 # 9/7 = 1.286
    phq9("3,3,3,3,3,3,3,,", 27, "severe", True, "unknown", True, [8, 9]),                   # 189/7 = 27
    # PHQ-9 three or more missing: not scorable, flag still computed
    phq9(",,,1,1,1,1,1,1", None, None, None, "positive", False, [1, 2, 3]),
    phq9("1,1,1,1,1,1,,,", None, None, None, "unknown", False, [7, 8, 9]),
    phq9(",,,0,0,0,0,0,0", None, None, None, "negative", False, [1, 2, 3]),
    phq9(",,,,,,,,", None, None, None, "unknown", False, range(1, 10)),
    # GAD-7: band edges 4/5, 9/10, 14/15; cut-point 10
    gad7("0,0,0,0,0,0,0", 0, "minimal", False),
    gad7("1,1,1,1,0,0,0", 4, "minimal", False),
    gad7("1,1,1,1,1,0,0", 5, "mild", False),
    gad7("2,2,2,1,1,1,0", 9, "mild", False),
    gad7("2,2,2,2,1,1,0", 10, "moderate", True),
    gad7("2,2,2,2,2,2,2", 14, "moderate", True),
    gad7("3,2,2,2,2,2,2", 15, "severe", True),
    gad7("3,3,3,3,3,3,3", 21, "severe", True),
    gad7("1,1,1,1,1,1,", None, None, None, [7]),
    gad7(",0,0,0,0,0,0", None, None, None, [1]),
    # GAD-7 item 8 (how difficult): asked, never scored, never required
    gad7("3,3,3,3,3,3,3,3", 21, "severe", True),
    gad7("0,0,0,0,0,0,0,2", 0, "minimal", False),
    gad7("1,1,1,1,1,1,,3", None, None, None, [7]),
    # PCL-5: clusters B 1-5, C 6-7, D 8-14, E 15-20; endorsed at 2+; needs 1 B, 1 C, 2 D, 2 E
    pcl5("2,0,0,0,0,2,0,2,2,0,0,0,0,0,2,2,0,0,0,0", 12, (2, 2, 4, 4), True, False),
    pcl5("4,4,4,4,4,1,1,4,4,4,4,4,4,4,4,4,4,4,4,4", 74, (20, 2, 28, 24), False, True),
    pcl5("0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", 0, (0, 0, 0, 0), False, False),
    pcl5("4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4", 80, (20, 8, 28, 24), True, True),
    pcl5("1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", 20, (5, 2, 7, 6), False, False),
    pcl5("2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2", 40, (10, 4, 14, 12), True, True),
    pcl5("2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,0,0,0,0", 32, (10, 4, 14, 4), True, False),    # cut-point edge
    pcl5("2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,1,0,0,0", 33, (10, 4, 14, 5), True, True),
    pcl5("1,1,1,1,1,4,4,1,1,1,1,1,1,1,3,3,3,1,1,2", 33, (5, 8, 7, 13), False, True),    # no B endorsed
    pcl5("2,0,0,0,0,2,0,2,1,1,1,1,1,1,2,2,0,0,0,0", 16, (2, 2, 8, 4), False, False),   # one D endorsed
    pcl5("2,0,0,0,0,2,0,2,2,0,0,0,0,0,2,1,1,1,1,1", 15, (2, 2, 4, 7), False, False),   # one E endorsed
    pcl5("1,1,1,1,1,2,0,2,2,0,0,0,0,0,2,2,0,0,0,0", 15, (5, 2, 4, 4), False, False),   # no B endorsed
    pcl5("4,4,4,4,4,4,4,4,4,4,4,4,4,4,1,1,1,1,1,1", 62, (20, 8, 28, 6), False, True),   # no E endorsed
    pcl5("3,0,0,0,0,0,3,0,0,3,3,0,0,0,0,0,0,0,3,3", 18, (3, 3, 6, 6), True, False),
    pcl5("2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,", None, None, None, None, [20]),
    pcl5(",,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", None, None, None, None, [1, 2]),
    pcl5("2,0,0,0,0,2,0,2,2,0,0,0,0,0,2,2,0,0,0,0", 12, (2, 2, 4, 4), True, False, key="pcl5-weekly"),
    pcl5("4,4,4,4,4,1,1,4,4,4,4,4,4,4,4,4,4,4,4,4", 74, (20, 2, 28, 24), False, True, key="pcl5-weekly"),
    # After-infusion: review when any item is 3, confusion (8) or hallucinations (9) above 0,
    # or any item unanswered; total shown without bands or cut-point
    after("0,0,0,0,0,0,0,0,0", 0, False),
    after("2,2,2,2,2,2,2,0,0", 14, False),
    after("1,2,1,2,1,2,1,0,0", 10, False),
    after("2,2,2,2,2,2,2,2,2", 18, True),
    after("0,3,0,0,0,0,0,0,0", 3, True),
    after("0,0,0,0,0,0,3,0,0", 3, True),
    after("0,0,0,0,0,0,0,1,0", 1, True),
    after("0,0,0,0,0,0,0,0,1", 1, True),
    after("3,3,3,3,3,3,3,3,3", 27, True),
    after("0,0,,0,0,0,0,0,0", None, True, [3]),
    after("1,1,1,1,1,1,1,0,", None, True, [9]),
    after(",,,,,,,,", None, True, range(1, 10)),
]

def pcl5_change(baseline, current, points, percent, improvement, worsening, below, key="pcl5"):
    return (key, baseline, current, points, percent,
            dict(clinically_meaningful_improvement=improvement, clinically_meaningful_worsening=worsening,
                 below_cutpoint=below))


CHANGE_CASES = [
    # (instrument, baseline, current, change, percent_change, change fields)
    # PHQ-9: response is a fall of 50 % or more (exactly 50 % counts); remission is below 5
    ("phq9", 20, 10, -10, -50.0, dict(response=True, remission=False)),
    ("phq9", 20, 11, -9, -45.0, dict(response=False, remission=False)),
    ("phq9", 10, 4, -6, -60.0, dict(response=True, remission=True)),
    ("phq9", 10, 5, -5, -50.0, dict(response=True, remission=False)),
    ("phq9", 8, 4, -4, -50.0, dict(response=True, remission=True)),
    ("phq9", 6, 3, -3, -50.0, dict(response=True, remission=True)),
    ("phq9", 0, 0, 0, None, dict(response=None, remission=True)),
    ("phq9", 0, 3, 3, None, dict(response=None, remission=True)),
    ("phq9", 9, 4, -5, -55.6, dict(response=True, remission=True)),
    ("phq9", 3, 1, -2, -66.7, dict(response=True, remission=True)),
    ("phq9", 7, 3, -4, -57.1, dict(response=True, remission=True)),
    ("phq9", 7, 4, -3, -42.9, dict(response=False, remission=True)),
    ("phq9", 5, 10, 5, 100.0, dict(response=False, remission=False)),
    ("phq9", 16, 15, -1, -6.3, dict(response=False, remission=False)),
    ("phq9", 16, 17, 1, 6.3, dict(response=False, remission=False)),
    ("phq9", 15, 8, -7, -46.7, dict(response=False, remission=False)),
    ("phq9", 27, 14, -13, -48.1, dict(response=False, remission=False)),
    ("phq9", 27, 13, -14, -51.9, dict(response=True, remission=False)),
    # PCL-5: improvement a fall of 10+, worsening a rise of 10+, below the cut-point 33
    pcl5_change(50, 40, -10, -20.0, True, False, False),
    pcl5_change(50, 41, -9, -18.0, False, False, False),
    pcl5_change(40, 50, 10, 25.0, False, True, False),
    pcl5_change(40, 49, 9, 22.5, False, False, False),
    pcl5_change(40, 32, -8, -20.0, False, False, True),
    pcl5_change(43, 33, -10, -23.3, True, False, False),
    pcl5_change(33, 33, 0, 0.0, False, False, False),
    pcl5_change(0, 80, 80, None, False, True, False),
    pcl5_change(45, 30, -15, -33.3, True, False, True, key="pcl5-weekly"),
    ("gad7", 10, 5, -5, -50.0, {}),
    ("gad7", 21, 0, -21, -100.0, {}),
    ("after-infusion", 4, 2, -2, -50.0, {}),
]

ERROR_CASES = [
    ["score", "phq9", "--answers", "0,0,0,0,0,0,0,0"],
    ["score", "phq9", "--answers", "0,0,0,0,0,0,0,0,0,0,0"],
    ["score", "phq9", "--answers", "0,0,0,0,0,0,0,0,0,4"],
    ["score", "gad7", "--answers", "0,0,0,0,0,0,0,0,0"],
    ["score", "gad7", "--answers", "0,0,0,0,0,0,0,4"],
    ["score", "gad7", "--answers", "0,0,0,0,0,0,x"],
    ["score", "pcl5", "--answers", ",".join(["1"] * 20).replace("1", "5", 1)],
    ["score", "after-infusion", "--answers", "0,0,0,0,0,0,0,0,4"],
    ["score", "pcl-5", "--answers", "0"],
    ["change", "phq9", "--baseline", "27", "--current", "28"],
    ["change", "gad7", "--baseline", "-1", "--current", "0"],
    ["change", "after-infusion", "--baseline", "3.5", "--current", "0"],
]

SCORE_KEYS = {"instrument", "version", "scorable", "total", "prorated", "band", "subscales",
              "above_cutpoint", "provisional_diagnosis", "flags", "missing_items"}


def test_the_table_is_large():
    assert len(SCORE_CASES) + len(CHANGE_CASES) + len(ERROR_CASES) >= 100


@pytest.mark.parametrize("key, answers, expected", SCORE_CASES, ids=[f"{c[0]}:{c[1]}" for c in SCORE_CASES])
def test_score_case(run_cli, key, answers, expected):
    result = run_cli("score", key, "--answers", answers)
    assert (result.returncode, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert SCORE_KEYS <= set(data)
    assert (data["instrument"], data["version"]) == (key, instruments.get(key).version)
    assert {field: data[field] for field in expected} == expected


@pytest.mark.parametrize("key, baseline, current, points, percent, fields", CHANGE_CASES,
                         ids=[f"{c[0]}:{c[1]}->{c[2]}" for c in CHANGE_CASES])
def test_change_case(run_cli, key, baseline, current, points, percent, fields):
    result = run_cli("change", key, "--baseline", str(baseline), "--current", str(current))
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == dict(instrument=key, baseline=baseline, current=current,
                                             change=points, percent_change=percent, **fields)


@pytest.mark.parametrize("args", ERROR_CASES, ids=[" ".join(args) for args in ERROR_CASES])
def test_error_case(run_cli, args):
    result = run_cli(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1
