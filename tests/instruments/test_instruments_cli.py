"""The command line, run as a subprocess: JSON on stdout, or one error line and exit 2."""

import json

import pytest

import instruments


def test_list_gives_key_version_and_title_of_each(run_cli):
    result = run_cli("list")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == [{"key": i.key, "version": i.version, "title": i.title}
                                         for i in instruments.all()]


@pytest.mark.parametrize("key", ["phq9", "pcl5-weekly", "after-infusion"])
def test_show_prints_the_whole_definition(run_cli, key):
    result = run_cli("show", key)
    assert result.returncode == 0
    shown = json.loads(result.stdout)
    assert shown == json.loads(json.dumps(instruments.get(key).to_dict()))
    for field in ("key", "version", "citations", "licence", "instructions", "stem", "time_frame", "items",
                  "bands", "cutpoint", "missing", "flags", "change_thresholds", "local_policies"):
        assert field in shown


def test_score_prints_the_score_as_json(run_cli):
    result = run_cli("score", "phq9", "--answers", "2,2,2,2,2,2,2,2,")
    assert (result.returncode, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert data["total"] == 18 and data["prorated"] is True and data["flags"] == {"suicide_risk": "unknown"}
    assert data["alerts"][0]["crisis"] is True


def test_change_prints_the_change_as_json(run_cli):
    result = run_cli("change", "phq9", "--baseline", "20", "--current", "10")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"instrument": "phq9", "baseline": 20, "current": 10, "change": -10,
                                         "percent_change": -50.0, "response": True, "remission": False}


@pytest.mark.parametrize("args, message", [
    (["score", "phq9", "--answers", "1,1,1"], "phq9: expected 9 or 10 answers, got 3"),
    (["score", "phq9", "--answers", "0,0,0,0,0,0,0,0,0,0,0"], "phq9: expected 9 or 10 answers, got 11"),
    (["score", "phq9", "--answers", "0,0,0,0,0,0,0,0,4"], "phq9: item 9 answer 4 is outside 0-3"),
    (["score", "phq9", "--answers", "0,0,1.5,0,0,0,0,0,0"], "phq9: item 3 answer '1.5' is not an integer"),
    (["score", "phq9", "--answers", "0,0,two,0,0,0,0,0,0"], "phq9: item 3 answer 'two' is not an integer"),
    (["score", "gad7", "--answers=-1,0,0,0,0,0,0"], "gad7: item 1 answer -1 is outside 0-3"),
    (["score", "pcl5", "--answers", ",".join(["5"] + ["0"] * 19)], "pcl5: item 1 answer 5 is outside 0-4"),
    (["score", "phq10", "--answers", "0"], "unknown instrument 'phq10'"),
    (["show", "phq10"], "unknown instrument 'phq10'"),
    (["change", "phq9", "--baseline", "28", "--current", "10"], "phq9: baseline 28 is outside 0-27"),
    (["change", "pcl5", "--baseline", "10", "--current", "81"], "pcl5: current 81 is outside 0-80"),
    (["change", "gad7", "--baseline", "ten", "--current", "5"], "gad7: baseline 'ten' is not an integer"),
    (["change", "phq10", "--baseline", "1", "--current", "1"], "unknown instrument 'phq10'"),
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["score", "phq9"], "required: --answers"),
    (["change", "phq9", "--baseline", "1"], "required: --current"),
    (["list", "--verbose"], "unrecognized arguments: --verbose"),
])
def test_errors_are_one_line_on_stderr_with_nothing_on_stdout(run_cli, args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert message in result.stderr
