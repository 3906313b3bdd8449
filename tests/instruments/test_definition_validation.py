"""Every malformed or inconsistent definition fails at load, naming the file and the field.

Each case starts from a shipped definition, breaks one thing, writes the result as TOML into
a temporary folder and loads it.
"""

import copy
import json
import re
import shutil
import tomllib

import pytest

import instruments
from instruments import catalog
from instruments.catalog import DEFINITIONS_DIR


def read(key):
    with (DEFINITIONS_DIR / f"{key}.toml").open("rb") as file:
        return tomllib.load(file)


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_key(key):
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def write(path, data):
    path.write_text("".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items()), encoding="utf-8")
    return path


def load_broken(tmp_path, key, change):
    data = copy.deepcopy(read(key))
    change(data)
    return instruments.load_definition(write(tmp_path / f"{key}.toml", data))


def setter(path, value):
    """A change that sets data[path...] = value; path like ("items", 1, "id")."""
    def change(data):
        target = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


def deleter(*path):
    def change(data):
        target = data
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return change


CASES = [
    # (instrument, change, field named in the message, problem in the message)
    ("phq9", setter(("items", 1, "id"), "q1"), "items[1].id", "'q1' duplicates items[0]"),
    ("phq9", setter(("items", 1, "number"), 1), "items[1].number", "1 duplicates items[0]"),
    ("phq9", setter(("items", 1, "number"), 3), "items[1].number", "3 is out of order"),
    ("phq9", setter(("items", 2, "id"), "3rd"), "items[2].id", "must start with a letter"),
    ("phq9", setter(("bands", 2, "min"), 9), "bands[2]", "overlaps bands[1] (5-9 vs 9-14)"),
    ("phq9", setter(("bands", 2, "min"), 11), "bands[2]", "leaves a gap after bands[1] (5-9 vs 11-14)"),
    ("phq9", setter(("bands", 0, "min"), 1), "bands[0]", "starts at 1, but the total range starts at 0"),
    ("phq9", setter(("bands", 4, "max"), 26), "bands[4]", "ends at 26, but the total range ends at 27"),
    ("phq9", setter(("bands", 4, "max"), 28), "bands[4]", "ends at 28, but the total range ends at 27"),
    ("phq9", setter(("bands", 1, "max"), 4), "bands[1]", "max 4 is below min 5"),
    ("phq9", setter(("bands", 3, "key"), "mild"), "bands[3].key", "'mild' duplicates bands[1]"),
    ("phq9", deleter("bands_source"), "bands_source", "bands need their source"),
    ("pcl5", setter(("subscales", 0, "items", 0), "q99"), "subscales[0].items[0]", "unknown or unscored item 'q99'"),
    ("pcl5", setter(("subscales", 1, "items"), ["q6", "q6"]), "subscales[1].items[1]", "item 'q6' listed twice"),
    ("pcl5", setter(("subscales", 1, "key"), "B"), "subscales[1].key", "'B' duplicates subscales[0]"),
    ("phq9", setter(("subscales",), [{"key": "x", "label": "X", "items": ["q10"]}]), "subscales[0].items[0]",
     "unknown or unscored item 'q10'"),
    ("phq9", setter(("option_sets", "frequency", "options", 3, "value"), 7),
     "option_sets.frequency.options[3].value", "7 is outside the scale 0-3"),
    ("phq9", setter(("option_sets", "frequency", "options", 1, "value"), 0),
     "option_sets.frequency.options[1].value", "0 duplicates option_sets.frequency.options[0]"),
    ("phq9", deleter("option_sets", "frequency", "options", 3), "option_sets.frequency.options",
     "no option for value 3 of the scale 0-3"),
    ("phq9", setter(("option_sets", "frequency", "options", 0, "loinc"), "LA65685"),
     "option_sets.frequency.options[0].loinc", "'LA65685' is not a LOINC code"),
    ("phq9", setter(("option_sets", "spare"), {"min": 0, "max": 0, "options": [{"value": 0, "label": "x"}]}),
     "option_sets.spare", "not used by any item"),
    ("phq9", setter(("items", 0, "options"), "frequncy"), "items[0].options", "unknown option set 'frequncy'"),
    ("phq9", setter(("items", 0, "required"), False), "items[0].required", "a scored item must be required"),
    ("phq9", setter(("items", 0, "loinc"), "44250-8"), "items[0].loinc", "'44250-8' has a wrong check digit"),
    ("phq9", setter(("loinc", "panel"), "44249"), "loinc.panel", "'44249' is not a LOINC code"),
    ("phq9", setter(("items",), []), "items", "no item is scored"),
    ("phq9", setter(("missing", "rule"), "prorate_median"), "missing.rule",
     "unknown missing-answer rule 'prorate_median' (known: none_allowed, prorate_mean)"),
    ("phq9", setter(("missing", "max_missing"), 9), "missing.max_missing", "9 is outside 1-8"),
    ("phq9", setter(("missing", "rounding"), "half_even"), "missing.rounding", "unknown rounding 'half_even'"),
    ("phq9", deleter("missing", "source"), "missing.source", "missing required field"),
    ("phq9", setter(("flags", 0, "rule"), "item_above"), "flags[0].rule", "unknown flag rule 'item_above'"),
    ("phq9", setter(("flags", 0, "item"), "q11"), "flags[0].item", "unknown item 'q11'"),
    ("phq9", setter(("flags", 0, "at_least"), 4), "flags[0].at_least", "4 is outside 1-3"),
    ("phq9", setter(("flags", 0, "at_least"), 0), "flags[0].at_least", "0 is outside 1-3"),
    ("phq9", setter(("flags", 0, "alert_values"), ["positve"]), "flags[0].alert_values[0]",
     "'positve' is not a value this flag can take"),
    ("phq9", setter(("flags", 0, "values", "undetermined"), "negative"), "flags[0].values",
     "'undetermined' must differ from 'not_met'"),
    ("phq9", setter(("flags", 0, "values", "met"), "negative"), "flags[0].values", "'met' and 'not_met' must differ"),
    ("phq9", deleter("flags", 0, "values"), "flags[0].values", "missing required field"),
    ("phq9", deleter("flags", 0, "crisis"), "flags[0].crisis", "missing required field"),
    ("phq9", setter(("flags", 0, "at_leats"), 1), "flags[0].at_leats", "unknown field 'at_leats' (did you mean 'at_least'?)"),
    ("after-infusion", setter(("flags", 0, "alert_values"), [1]), "flags[0].alert_values[0]",
     "1 is not a value this flag can take"),
    ("after-infusion", setter(("flags", 0, "conditions", 1, "items", 0), "confusoin"),
     "flags[0].conditions[1].items[0]", "unknown item 'confusoin'"),
    ("after-infusion", setter(("flags", 0, "conditions", 0, "at_least"), 4), "flags[0].conditions[0].at_least",
     "4 is outside 1-3"),
    ("after-infusion", setter(("flags", 0, "conditions"), []), "flags[0].conditions", "at least one condition"),
    ("after-infusion", setter(("local_policies",), []), "local_policies", "must declare its local policies"),
    ("phq9", setter(("change", 0, "rule"), "percent_drop"), "change[0].rule", "unknown change rule 'percent_drop'"),
    ("phq9", setter(("change", 0, "percent"), 150), "change[0].percent", "150 is outside 1-100"),
    ("phq9", setter(("change", 1, "value"), 0), "change[1].value", "0 is outside 1-27"),
    ("phq9", setter(("change", 1, "key"), "response"), "change[1].key", "'response' duplicates change[0]"),
    ("pcl5", deleter("cutpoint"), "change[2].rule", "rule 'below_cutpoint' needs a cutpoint"),
    ("pcl5", setter(("change", 0, "points"), 0), "change[0].points", "0 is outside 1-80"),
    ("phq9", setter(("change", 0, "signals"), "better"), "change[0].signals", "'better' is not one of improvement, worsening, status"),
    ("phq9", deleter("change", 0, "label"), "change[0].label", "missing required field"),
    ("pcl5", setter(("diagnosis", "rule"), "cluster_sums"), "diagnosis.rule", "unknown diagnosis rule 'cluster_sums'"),
    ("pcl5", setter(("diagnosis", "minimum", "F"), 1), "diagnosis.minimum.F", "unknown subscale 'F'"),
    ("pcl5", setter(("diagnosis", "minimum", "C"), 3), "diagnosis.minimum.C", "3 is outside 0-2"),
    ("pcl5", setter(("diagnosis", "endorsed_at_least"), 5), "diagnosis.endorsed_at_least", "5 is outside 1-4"),
    ("phq9", setter(("cutpoint", "value"), 28), "cutpoint.value", "28 is outside 1-27"),
    ("phq9", deleter("cutpoint", "source"), "cutpoint.source", "missing required field"),
    ("phq9", setter(("total_max",), 30), "total_max", "declared 30, but the scored items give 27"),
    ("phq9", deleter("title"), "title", "missing required field"),
    ("phq9", deleter("items"), "items", "missing required field"),
    ("phq9", setter(("citations",), []), "citations", "must not be empty"),
    ("phq9", setter(("stem",), "  "), "stem", "must not be empty"),
    ("phq9", setter(("local_policy",), ["x"]), "local_policy", "unknown field 'local_policy' (did you mean 'local_policies'?)"),
    ("phq9", setter(("items", 0, "scroed"), True), "items[0].scroed", "unknown field 'scroed' (did you mean 'scored'?)"),
    ("phq9", setter(("version",), 1), "version", "must be a string, got 1"),
    ("phq9", setter(("validated",), "yes"), "validated", "must be true or false, got 'yes'"),
    ("phq9", setter(("items", 0, "number"), "1"), "items[0].number", "must be an integer, got '1'"),
    ("phq9", setter(("items", 0, "number"), True), "items[0].number", "must be an integer, got true"),
    ("phq9", setter(("items", 0), "q1"), "items[0]", "must be a table, got 'q1'"),
    ("phq9", setter(("bands",), {"minimal": 4}), "bands", "must be an array, got a table"),
    ("phq9", setter(("key",), "phq-9"), "key", "'phq-9' does not match the file name 'phq9'"),
    ("phq9", setter(("key",), "PHQ9"), "key", "must be lower-case letters and digits"),
    ("phq9", setter(("display", "colour"), "#ffff00"), "display.colour",
     "'#ffff00' has a contrast of 1.1:1 on white; charts need 4.5:1 (WCAG AA)"),
    ("phq9", setter(("display", "colour"), "#888888"), "display.colour", "has a contrast of 3.5:1 on white"),
    ("phq9", setter(("display", "colour"), "brown"), "display.colour", "'brown' is not a colour written #rrggbb"),
    ("phq9", setter(("display", "colour"), "#8a3b1"), "display.colour", "is not a colour written #rrggbb"),
    ("phq9", deleter("display", "colour"), "display.colour", "missing required field"),
    ("phq9", setter(("display", "order"), 0), "display.order", "0 is outside 1 or more"),
    ("phq9", setter(("display", "order"), "2"), "display.order", "must be an integer, got '2'"),
    ("phq9", setter(("display", "headline"), "yes"), "display.headline", "must be true or false, got 'yes'"),
    ("phq9", setter(("display", "color"), "#8a3b12"), "display.color",
     "unknown field 'color' (did you mean 'colour'?)"),
    ("phq9", setter(("display",), "headline"), "display", "must be a table, got 'headline'"),
]


@pytest.mark.parametrize("key, change, field, problem", CASES, ids=[f"{c[0]}:{c[2]}:{c[3][:30]}" for c in CASES])
def test_malformed_definition_names_file_and_field(tmp_path, key, change, field, problem):
    with pytest.raises(instruments.DefinitionError) as caught:
        load_broken(tmp_path, key, change)
    message = str(caught.value)
    assert message.startswith(f"{key}.toml: {field}: "), message
    assert problem in message, message
    assert "\n" not in message


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('key = "broken"\ntitle = \n', encoding="utf-8")
    with pytest.raises(instruments.DefinitionError, match=r"^broken\.toml: invalid TOML: .*line 2"):
        instruments.load_definition(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(instruments.DefinitionError, match=r"^absent\.toml: cannot read"):
        instruments.load_definition(tmp_path / "absent.toml")


def test_extends_needs_its_base_next_to_it(tmp_path):
    path = tmp_path / "pcl5-weekly.toml"
    shutil.copy(DEFINITIONS_DIR / "pcl5-weekly.toml", path)
    with pytest.raises(instruments.DefinitionError, match=r"^pcl5-weekly\.toml: extends: no file 'pcl5\.toml'"):
        instruments.load_definition(path)


def test_extends_reports_errors_in_the_base_under_the_base_name(tmp_path):
    shutil.copy(DEFINITIONS_DIR / "pcl5-weekly.toml", tmp_path / "pcl5-weekly.toml")
    base = read("pcl5")
    base["cutpoint"]["value"] = 81
    write(tmp_path / "pcl5.toml", base)
    with pytest.raises(instruments.DefinitionError, match=r"^pcl5\.toml: cutpoint\.value: 81 is outside 1-80$"):
        instruments.load_definition(tmp_path / "pcl5-weekly.toml")


def test_extends_is_one_level_only(tmp_path):
    for key in ("pcl5", "pcl5-weekly"):
        shutil.copy(DEFINITIONS_DIR / f"{key}.toml", tmp_path / f"{key}.toml")
    child = read("pcl5-weekly") | {"key": "pcl5-daily", "extends": "pcl5-weekly.toml"}
    write(tmp_path / "pcl5-daily.toml", child)
    with pytest.raises(instruments.DefinitionError, match=r"^pcl5-daily\.toml: extends: .*itself extends"):
        instruments.load_definition(tmp_path / "pcl5-daily.toml")


@pytest.mark.parametrize("path", sorted(DEFINITIONS_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_definitions_survive_a_round_trip_through_the_test_writer(tmp_path, path):
    # Guards the writer used above: an unchanged definition must load to the same Instrument.
    if path.stem == "pcl5-weekly":
        shutil.copy(DEFINITIONS_DIR / "pcl5.toml", tmp_path / "pcl5.toml")
    copy_path = write(tmp_path / path.name, read(path.stem))
    assert instruments.load_definition(copy_path) == instruments.get(path.stem)


@pytest.fixture
def definitions_dir(tmp_path, monkeypatch):
    """A copy of the shipped definitions folder that the catalogue reads instead."""
    folder = tmp_path / "definitions"
    shutil.copytree(DEFINITIONS_DIR, folder)
    monkeypatch.setenv(catalog.DEFINITIONS_ENV, str(folder))
    return folder


def test_a_new_instrument_is_a_dropped_in_file(definitions_dir):
    """A made-up three-item scale using only existing rules is served with no code change."""
    path = definitions_dir / "demo-3.toml"
    path.write_text('''
key = "demo-3"
version = "0.1"
title = "Demo three-item scale"
short_title = "Demo-3"
citations = ["Test fixture, not a real instrument."]
licence = "None."
instructions = ""
stem = "How often?"
time_frame = "past week"
validated = false
local_policies = ["Test fixture."]
bands_source = "Test fixture."

[option_sets.often]
min = 0
max = 2
options = [{ value = 0, label = "Never" }, { value = 1, label = "Sometimes" }, { value = 2, label = "Often" }]

[[items]]
id = "a"
number = 1
text = "A"
options = "often"

[[items]]
id = "b"
number = 2
text = "B"
options = "often"

[[items]]
id = "c"
number = 3
text = "C"
options = "often"

[[bands]]
key = "low"
label = "Low"
min = 0
max = 3

[[bands]]
key = "high"
label = "High"
min = 4
max = 6

[missing]
rule = "prorate_mean"
max_missing = 1
rounding = "half_up"
source = "Test fixture."

[[flags]]
key = "c_often"
rule = "item_threshold"
item = "c"
at_least = 2
values = { met = "yes", not_met = "no", undetermined = "unknown" }
alert_values = []
crisis = false
source = "Test fixture."

[[change]]
key = "low_now"
label = "Low now"
signals = "status"
rule = "at_or_below"
value = 3
source = "Test fixture."
''', encoding="utf-8")
    assert [i.key for i in instruments.all()] == ["after-infusion", "demo-3", "gad7", "pcl5", "pcl5-weekly", "phq9"]
    demo = instruments.get("demo-3")
    assert (demo.total_min, demo.total_max, demo.cutpoint) == (0, 6, None)
    # Item b missing: 2 answered summing 3 -> 3 x 3 / 2 = 4.5 -> 5 (halves up), band high.
    result = instruments.score("demo-3", [1, None, 2])
    assert (result.total, result.prorated, result.band, result.flags) == (5, True, "high", {"c_often": "yes"})
    assert result.alerts == []
    assert instruments.change("demo-3", 5, 3).fields == {"low_now": True}


def test_a_broken_file_in_the_folder_is_reported_not_skipped(definitions_dir):
    (definitions_dir / "demo-3.toml").write_text('key = "demo-3"\n', encoding="utf-8")
    with pytest.raises(instruments.DefinitionError, match=r"^demo-3\.toml: "):
        instruments.get("phq9")


# --- how the measures are shown: checked across the folder --------------------------------

def test_the_shipped_measures_are_shown_in_order_with_their_colours():
    assert [(m.name, m.key, m.order, m.colour, m.headline) for m in instruments.measures()] == [
        ("PCL-5", "pcl5", 1, "#1f5fa8", True), ("PHQ-9", "phq9", 2, "#8a3b12", True),
        ("GAD-7", "gad7", 3, "#2e6b30", False)]
    assert [m.name for m in instruments.headline_measures()] == ["PCL-5", "PHQ-9"]
    # The weekly PCL-5 takes the display with the rest of pcl5.toml.
    assert instruments.get("pcl5-weekly").display == instruments.get("pcl5").display
    assert instruments.get("after-infusion").display is None


def test_marking_a_measure_headline_is_a_change_to_its_file_alone(definitions_dir):
    gad7 = definitions_dir / "gad7.toml"
    gad7.write_text(gad7.read_text(encoding="utf-8").replace("headline = false", "headline = true"),
                    encoding="utf-8")
    assert [m.name for m in instruments.headline_measures()] == ["PCL-5", "PHQ-9", "GAD-7"]


def test_definitions_of_one_measure_must_show_it_alike(definitions_dir):
    weekly = definitions_dir / "pcl5-weekly.toml"
    weekly.write_text(weekly.read_text(encoding="utf-8")
                      + '\n[display]\norder = 1\ncolour = "#1f5fa8"\nheadline = false\n',
                      encoding="utf-8")
    with pytest.raises(instruments.DefinitionError) as caught:
        instruments.get("phq9")
    assert str(caught.value) == (
        "pcl5-weekly.toml: display: order 1, colour #1f5fa8, not headline, but pcl5.toml, of the "
        "same measure PCL-5, has order 1, colour #1f5fa8, headline; definitions of one measure "
        "must show it alike")


def test_a_measure_without_a_display_may_not_share_one_with_a_measure_that_has_one(definitions_dir):
    base = read("pcl5")
    del base["display"]
    write(definitions_dir / "pcl5.toml", base)
    weekly = definitions_dir / "pcl5-weekly.toml"
    weekly.write_text(weekly.read_text(encoding="utf-8")
                      + '\n[display]\norder = 1\ncolour = "#1f5fa8"\nheadline = true\n',
                      encoding="utf-8")
    with pytest.raises(instruments.DefinitionError,
                       match=r"^pcl5-weekly\.toml: display: order 1, .* but pcl5\.toml, .* has none;"):
        instruments.measures()


@pytest.mark.parametrize("field, value, message", [
    ("order", 2, "phq9.toml: display.order: 2 is already the order of GAD-7 (gad7.toml)"),
    ("colour", "#8a3b12", "phq9.toml: display.colour: #8a3b12 is already the colour of GAD-7 (gad7.toml)"),
])
def test_two_measures_may_not_share_an_order_or_a_colour(definitions_dir, field, value, message):
    gad7 = read("gad7")
    gad7["display"][field] = value
    write(definitions_dir / "gad7.toml", gad7)
    with pytest.raises(instruments.DefinitionError) as caught:
        instruments.get("gad7")
    assert str(caught.value) == message


def test_the_served_folder_is_the_one_the_environment_names(definitions_dir, monkeypatch):
    assert catalog.definitions_dir() == definitions_dir
    (definitions_dir / "gad7.toml").unlink()
    with pytest.raises(instruments.UnknownInstrument):
        instruments.get("gad7")
    monkeypatch.delenv(catalog.DEFINITIONS_ENV)
    assert catalog.definitions_dir() == DEFINITIONS_DIR and instruments.get("gad7").key == "gad7"
