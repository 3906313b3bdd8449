"""``python -m instruments import-fhir``: FHIR R4 Questionnaires into definition files.

The two public PHQ-9 Questionnaires in ``shared/fhir/`` (beside the repository) are imported,
completed the way a reviewer would (the PHQ-9's bands, suicide-risk flag, missing-item rule,
cut-point and change thresholds copied from ``phq9.toml``), and must then score every answer
vector exactly as the built-in ``phq9`` does. Pure Python: no Flask, no ``outcomes``.
"""

import itertools
import json
import random
import subprocess
import sys
import tomllib
from operator import attrgetter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import instruments
from instruments.fhir import importer as fhir
from instruments.catalog import DEFINITIONS_DIR
from instruments.cli import main
from instruments.scoring import score_answers

SHARED_FHIR = Path(__file__).resolve().parents[3] / "shared" / "fhir"
PUBLIC_FILES = ("lforms-phq9.json", "argonaut-phq9.json")
needs_shared = pytest.mark.skipif(
    not all((SHARED_FHIR / name).is_file() for name in PUBLIC_FILES),
    reason=f"the public FHIR Questionnaires are not in {SHARED_FHIR} (CI clones shared/ beside the repository)")

# What a reviewer adds from phq9.toml: everything FHIR does not express.
COMPLETION = ("bands_source", "bands", "cutpoint", "missing", "flags", "change")
# Every field of a Score but the instrument's key and version.
SCORE_FIELDS = attrgetter("scorable", "total", "prorated", "band", "band_label", "subscales", "above_cutpoint",
                          "provisional_diagnosis", "flags", "missing_items", "answers", "triggered")
OMIT = object()  # item 10 left out of the answer list altogether
ITEM_10 = (OMIT, None, 0, 1, 2, 3)


def read_toml(path):
    with Path(path).open("rb") as file:
        return tomllib.load(file)


def run(args, capsys):
    """Run the command line in-process; return (exit status, stdout, stderr lines)."""
    status = main(["import-fhir", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines()


# --------------------------------------------------------------------------- the public files


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each public file imported as written by the command: {file name: (path, result)}."""
    folder = tmp_path_factory.mktemp("imported")
    return {name: fhir.import_fhir(SHARED_FHIR / name, output=folder / f"{Path(name).stem}.toml")
            for name in PUBLIC_FILES}


@pytest.fixture(scope="module")
def completed(imported, tmp_path_factory):
    """Each imported definition completed with the PHQ-9's scoring tables, loaded, with the
    translation of phq9's answer values into its own: {file name: (Instrument, translate)}."""
    folder = tmp_path_factory.mktemp("completed")
    phq9 = read_toml(DEFINITIONS_DIR / "phq9.toml")
    loaded = {}
    for name, result in imported.items():
        data = read_toml(result.path)
        data.update({field: phq9[field] for field in COMPLETION})
        path = folder / result.path.name
        path.write_text(fhir.dumps(data), encoding="utf-8")
        instrument = instruments.load_definition(path)
        loaded[name] = (instrument, value_tables(instrument))
    return loaded


def value_tables(instrument):
    """For each item, phq9's answer value → this instrument's value for the same answer.

    An answer is the same when its LOINC answer code is (phq9's item 10 has none: then its
    label), so a value the importer mapped wrongly (say, ordinals read backwards) makes the
    scores differ, not just the labels.
    """
    tables = []
    for ours, theirs in zip(instruments.get("phq9").items, instrument.items, strict=True):
        by_code = {option.loinc: option.value for option in theirs.options if option.loinc}
        by_label = {option.label: option.value for option in theirs.options}
        table = {None: None}
        for option in ours.options:
            table[option.value] = by_code[option.loinc] if option.loinc else by_label[option.label]
        tables.append(table)
    return tables


def translate(tables, answers):
    """phq9 answers (a sequence, or a mapping by item id) in another instrument's values."""
    if isinstance(answers, dict):
        return {key: tables[int(key[1:]) - 1][value] for key, value in answers.items()}
    return tuple(table[answer] for table, answer in zip(tables, answers))


@needs_shared
@pytest.mark.parametrize("name", PUBLIC_FILES)
def test_public_file_imports_into_a_definition_that_loads_as_written(imported, name):
    result = imported[name]
    instrument = instruments.load_definition(result.path)
    phq9 = instruments.get("phq9")
    assert [item.loinc for item in instrument.items] == [item.loinc for item in phq9.items]
    assert [(item.scored, item.required) for item in instrument.items] == \
        [(item.scored, item.required) for item in phq9.items]
    assert [(o.value, o.label, o.loinc) for o in instrument.items[0].options] == \
        [(o.value, o.label, o.loinc) for o in phq9.items[0].options]
    assert [o.value for o in instrument.items[9].options] == [0, 1, 2, 3]
    assert [o.label for o in instrument.items[9].options] == [o.label for o in phq9.items[9].options]
    assert (instrument.total_min, instrument.total_max, instrument.loinc_panel) == (0, 27, "44249-1")
    # Nothing FHIR does not express is invented: no bands, flags, cut-point or change rules.
    assert (instrument.bands, instrument.flags, instrument.cutpoint, instrument.change_thresholds) == \
        ((), (), None, ())
    assert instrument.missing.rule == "none_allowed" and instrument.validated is False


@needs_shared
def test_the_calculated_total_is_dropped_and_its_code_kept(imported):
    lforms = instruments.load_definition(imported["lforms-phq9.json"].path)
    assert len(lforms.items) == 10 and lforms.loinc_total == "44261-6"
    notes = [str(note) for note in imported["lforms-phq9.json"].notes]
    assert any(n.startswith("dropped: item '/44261-6' (LOINC 44261-6) is calculated") for n in notes)
    # lforms marks item 9 not required, yet it is scored: it must stay a scored, required item.
    assert any(n.startswith("decided: item 9 (linkId '/44260-8'") and "scored and required" in n for n in notes)


@needs_shared
def test_nested_groups_and_contained_value_sets_resolve(imported):
    result = imported["argonaut-phq9.json"]
    definition = read_toml(result.path)
    assert definition["stem"].startswith("Over the last 2 weeks") and definition["time_frame"] == "last 2 weeks"
    assert [item["options"] for item in definition["items"]] == ["phq_9"] * 9 + ["phq_10"]
    notes = [str(note) for note in result.notes]
    # Item 9 names the value set by its canonical URL rather than by '#PHQ-9'.
    assert any("item 'g1.q9': answerValueSet 'http://fhir.org/guides/argonaut-questionnaire/ValueSet/PHQ-9' "
               "is the contained ValueSet '#PHQ-9'" in n for n in notes)
    # Argonaut marks the difficulty item required; it is still unscored and not required.
    assert any(n.startswith("decided: item 10 (linkId 'g2.q1', LOINC 69722-7) is unscored and not required")
               and "FHIR marks it required" in n for n in notes)
    assert any(n.startswith("dropped: display item 'g1.s' (LOINC 44261-6)") for n in notes)


@needs_shared
def test_every_complete_answer_vector_scores_like_phq9(completed):
    """All 4^9 complete vectors, item 10 cycling through left out, blank and each answer."""
    phq9 = instruments.get("phq9")
    # Each copy walks the same product in its own values, in step with phq9's (fast: no
    # per-vector translation).
    copies = [(name, instrument, tables[9],
               itertools.product(*([table[value] for value in range(4)] for table in tables[:9])))
              for name, (instrument, tables) in completed.items()]
    count = 0
    for vector, item10 in zip(itertools.product(range(4), repeat=9), itertools.cycle(ITEM_10)):
        answers = vector if item10 is OMIT else (*vector, item10)
        expected = SCORE_FIELDS(score_answers(phq9, answers))
        for name, instrument, item10_table, theirs in copies:
            translated = next(theirs)
            if item10 is not OMIT:
                translated = (*translated, item10_table[item10])
            if SCORE_FIELDS(score_answers(instrument, translated)) != expected:
                pytest.fail(f"{name}: {translated} scores {score_answers(instrument, translated)}; "
                            f"phq9 scores {answers} {score_answers(phq9, answers)}")
        count += 1
    assert count == 4 ** 9


@needs_shared
@pytest.mark.parametrize("missing_count", [1, 2, 3])
def test_vectors_with_missing_items_score_like_phq9(completed, missing_count):
    """Every choice of 1, 2 or 3 blank items, each with 120 seeded fills plus the extremes,
    and every state of item 10 for each."""
    phq9 = instruments.get("phq9")
    rng = random.Random(f"phq9-missing-{missing_count}")
    checked = 0
    for blanks in itertools.combinations(range(9), missing_count):
        fills = [[0] * 9, [3] * 9] + [[rng.randrange(4) for _ in range(9)] for _ in range(120)]
        for fill in fills:
            vector = tuple(None if position in blanks else value for position, value in enumerate(fill))
            for item10 in ITEM_10:
                answers = vector if item10 is OMIT else (*vector, item10)
                expected = SCORE_FIELDS(score_answers(phq9, answers))
                for name, (instrument, tables) in completed.items():
                    got = SCORE_FIELDS(score_answers(instrument, translate(tables, answers)))
                    if got != expected:
                        pytest.fail(f"{name}: {answers} scores {got}, phq9 {expected}")
                checked += 1
    assert checked > 9 * 120


@needs_shared
def test_answers_by_item_id_score_like_phq9(completed):
    phq9 = instruments.get("phq9")
    for answers in ({"q9": 1}, {"q1": 3, "q2": 3, "q10": 2}, {f"q{n}": 2 for n in range(1, 9)}, {}):
        for instrument, tables in completed.values():
            assert SCORE_FIELDS(score_answers(instrument, translate(tables, answers))) == \
                SCORE_FIELDS(score_answers(phq9, answers))


@needs_shared
def test_the_command_writes_the_file_and_lists_what_it_could_not_express(run_cli, tmp_path):
    output = tmp_path / "phq9-lforms.toml"
    result = run_cli("import-fhir", str(SHARED_FHIR / "lforms-phq9.json"), "--output", str(output))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["key"] == "phq9-lforms" and summary["output"] == str(output)
    assert (summary["scored_items"], summary["unscored_items"]) == (list(range(1, 10)), [10])
    lines = result.stderr.splitlines()
    assert lines[0] == f"import-fhir: wrote {output}"
    assert all(line.startswith("import-fhir: ") for line in lines)
    for point in ("not expressed: bands", "not expressed: flags", "not expressed: cut-point",
                  "not expressed: change thresholds", "not expressed: missing-item rule: wrote none_allowed",
                  "decided: item 10 (linkId '/69722-7', LOINC 69722-7) is unscored and not required"):
        assert sum(point in line for line in lines) == 1, point
    assert instruments.load_definition(output).key == "phq9-lforms"
    # The same points head the file for whoever opens it.
    assert "# - not expressed: bands" in output.read_text(encoding="utf-8")


@needs_shared
def test_key_and_output_default_to_the_input_file_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run([SHARED_FHIR / "argonaut-phq9.json"], capsys)
    assert status == 0 and json.loads(out)["output"] == "argonaut-phq9.toml"
    assert instruments.load_definition(tmp_path / "argonaut-phq9.toml").key == "argonaut-phq9"
    status, out, _ = run([SHARED_FHIR / "argonaut-phq9.json", "--key", "phq9-argonaut"], capsys)
    assert status == 0 and (tmp_path / "phq9-argonaut.toml").is_file()


# --------------------------------------------------------------------------- synthetic inputs


def coded(code, display, ordinal=None, system="http://loinc.org",
          url="http://hl7.org/fhir/StructureDefinition/ordinalValue"):
    option = {"valueCoding": {"system": system, "code": code, "display": display}}
    if ordinal is not None:
        option["extension"] = [{"url": url, "valueDecimal": ordinal}]
    return option


FREQUENCY = [("LA6568-5", "Not at all"), ("LA6569-3", "Several days"),
             ("LA6570-1", "More than half the days"), ("LA6571-9", "Nearly every day")]


def frequency(ordinals=True):
    return [coded(code, display, value if ordinals else None) for value, (code, display) in enumerate(FREQUENCY)]


def choice(link_id, options=None, **fields):
    item = {"linkId": link_id, "text": f"Question {link_id}", "type": "choice", "required": True, **fields}
    if options is not None:
        item["answerOption"] = options
    return item


def questionnaire(*items, **fields):
    return {"resourceType": "Questionnaire", "status": "draft", "title": "Test", "item": list(items), **fields}


def write_json(folder, data, name="q.json"):
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def import_data(tmp_path, data, key="imported"):
    """Import; return the loaded Instrument, the TOML data and the notes as strings."""
    result = fhir.import_fhir(write_json(tmp_path, data), output=tmp_path / f"{key}.toml")
    return instruments.load_definition(result.path), read_toml(result.path), [str(n) for n in result.notes]


def test_values_come_from_ordinal_values_not_from_answer_order_or_codes(tmp_path):
    # Listed highest first, and with codes that elsewhere mean other answers.
    options = [coded("LA6568-5", "Nearly every day", 3), coded("LA6569-3", "More than half the days", 2),
               coded("LA6570-1", "Several days", 1), coded("LA6571-9", "Not at all", 0)]
    instrument, data, _ = import_data(tmp_path, questionnaire(choice("a", options), choice("b", options)))
    assert [(o.value, o.label) for o in instrument.items[0].options] == \
        [(3, "Nearly every day"), (2, "More than half the days"), (1, "Several days"), (0, "Not at all")]
    assert data["option_sets"]["answers"]["options"][0] == {"value": 3, "label": "Nearly every day",
                                                           "loinc": "LA6568-5"}
    assert score_answers(instrument, [3, 1]).total == 4


def test_item_weight_value_integer_and_value_string_answers(tmp_path):
    weight = "http://hl7.org/fhir/StructureDefinition/itemWeight"
    strings = [{"valueString": text, "extension": [{"url": weight, "valueDecimal": value}]}
               for value, text in [(1, "No"), (2, "Yes")]]
    integers = [{"valueInteger": value} for value in range(0, 11)]
    instrument, _, _ = import_data(tmp_path, questionnaire(choice("s", strings), choice("i", integers)))
    assert [(o.value, o.label, o.loinc) for o in instrument.items[0].options] == \
        [(1, "No", None), (2, "Yes", None)]
    assert [o.value for o in instrument.items[1].options] == list(range(11))
    assert (instrument.total_min, instrument.total_max) == (1, 12)


def test_without_any_values_items_sharing_the_common_list_are_scored_by_position(tmp_path):
    other = [coded("LA6572-7", "Not difficult at all"), coded("LA6573-5", "Somewhat difficult")]
    data = questionnaire(*(choice(f"q{n}", frequency(ordinals=False)) for n in range(1, 4)), choice("x", other))
    instrument, _, notes = import_data(tmp_path, data)
    assert [(i.scored, i.required) for i in instrument.items] == [(True, True)] * 3 + [(False, False)]
    assert [o.value for o in instrument.items[0].options] == [0, 1, 2, 3]
    assert any(n.startswith("decided: no answer carries an ordinalValue") for n in notes)
    assert any(n.startswith("decided: item 4 (linkId 'x') is unscored") for n in notes)


def test_without_any_values_and_no_shared_list_every_item_is_scored(tmp_path):
    lists = [[coded(None, f"{n}-{k}") for k in range(3)] for n in range(3)]
    instrument, _, _ = import_data(tmp_path, questionnaire(*(choice(f"q{n}", lists[n]) for n in range(3))))
    assert all(item.scored for item in instrument.items) and instrument.total_max == 6


def test_nested_questions_calculated_items_and_composed_value_sets(tmp_path):
    value_set = {"resourceType": "ValueSet", "id": "yn", "compose": {"include": [{
        "system": "http://loinc.org",
        "concept": [{"code": "LA32-8", "display": "No", "extension": [
                        {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 0}]},
                    {"code": "LA33-6", "display": "Yes", "extension": [
                        {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 1.0}]}]}]}}
    parent = choice("p", frequency(), item=[choice("child", answerValueSet="#yn")])
    calculated = {"linkId": "t", "type": "integer", "readOnly": True,
                  "code": [{"system": "http://loinc.org", "code": "44261-6"}]}
    data = questionnaire({"linkId": "g", "type": "group", "text": "Part A", "item": [parent, calculated]},
                         contained=[value_set], code=[{"system": "http://loinc.org", "code": "44249-1"}])
    instrument, _, notes = import_data(tmp_path, data)
    assert [item.text for item in instrument.items] == ["Question p", "Question child"]
    assert [(o.value, o.loinc) for o in instrument.items[1].options] == [(0, "LA32-8"), (1, "LA33-6")]
    assert (instrument.loinc_panel, instrument.loinc_total) == ("44249-1", "44261-6")
    assert any(n.startswith("dropped: item 't' (LOINC 44261-6) is calculated") for n in notes)
    assert any(n.startswith("dropped: heading of group item 'g'") for n in notes)


def test_codes_the_schema_cannot_hold_are_dropped_and_said_so(tmp_path):
    snomed = "http://snomed.info/sct"
    options = [coded("0", "No", 0, system=snomed), coded("1", "Yes", 1, system=snomed)]
    item = choice("a", options, code=[{"system": "http://loinc.org", "code": "44250-8"}])  # wrong check digit
    instrument, _, notes = import_data(tmp_path, questionnaire(item))
    assert instrument.items[0].loinc is None and instrument.items[0].options[0].loinc is None
    assert any("LOINC code '44250-8' is malformed or fails its check digit" in n for n in notes)
    assert any("answer codes outside LOINC's LA codes (e.g. http://snomed.info/sct|0" in n for n in notes)


def test_conditions_and_texts_needing_escapes_survive(tmp_path):
    text = 'Say "no" \\ or \'yes\'\nnext line\ttab \x01 \x7f – ünïcode \u2028 end'
    item = choice("a\nb", frequency(), text=text, enableWhen=[{"question": "x", "operator": "exists",
                                                               "answerBoolean": True}])
    data = questionnaire(item, title='A "quoted" title', copyright="© someone\r\nline two")
    instrument, _, notes = import_data(tmp_path, data)
    assert instrument.items[0].text == text.strip() and instrument.title == 'A "quoted" title'
    assert instrument.licence == "© someone\r\nline two"
    assert any("(enableWhen)" in n for n in notes)
    assert all("\n" not in n for n in notes)


@pytest.mark.parametrize("data, message", [
    ("{not json", "q.json: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ('{"resourceType": "Questionnaire", "x": NaN}', "q.json: not JSON: NaN is not a JSON number"),
    ("[]", "q.json: not a FHIR Questionnaire (a JSON array, not a resource)"),
    ({"resourceType": "Patient"}, "q.json: not a FHIR Questionnaire (resourceType 'Patient')"),
    ({"item": []}, "q.json: not a FHIR Questionnaire (no resourceType)"),
    (questionnaire(), "q.json: the Questionnaire has no items"),
    (questionnaire({"linkId": "g", "type": "group", "item": [{"linkId": "d", "type": "display", "text": "Hi"}]}),
     "q.json: no answerable item (only groups, display texts or calculated items)"),
    (questionnaire(choice("a", frequency()), {"linkId": "s", "type": "string", "text": "Why?"}),
     "q.json: item 's': has no answers (type 'string', no answerOption or answerValueSet); "
     "a definition item is answered from a list"),
    (questionnaire(choice("a", [])), "q.json: item 'a': has no answers (its answer list is empty)"),
    (questionnaire(choice("a", answerValueSet="http://loinc.org/vs/LL358-3")),
     "q.json: item 'a': answerValueSet 'http://loinc.org/vs/LL358-3' cannot be resolved offline: it is neither "
     "contained nor in this file; add the ValueSet to 'contained' or list the answers as answerOption"),
    (questionnaire(choice("a", answerValueSet="#gone")),
     "q.json: item 'a': answerValueSet '#gone' cannot be resolved offline: no contained resource has that id; "
     "add the ValueSet to 'contained' or list the answers as answerOption"),
    (questionnaire(choice("a", answerValueSet="#vs"), contained=[
        {"resourceType": "ValueSet", "id": "vs", "compose": {"include": [
            {"system": "http://loinc.org", "filter": [{"property": "parent", "op": "=", "value": "x"}]}]}}]),
     "q.json: item 'a' answerValueSet '#vs': the ValueSet has no expansion and does not list its concepts "
     "(a filter or another value set cannot be resolved offline); expand it into the file"),
    (questionnaire(choice("a", frequency()[:2] + frequency(ordinals=False)[2:])),
     "q.json: item 'a': some answers carry an ordinalValue and some do not; every answer needs one"),
    (questionnaire(choice("a", [coded("LA1-8", "x", 0), coded("LA2-6", "y", 0.5)])),
     "q.json: item 'a' answerOption[1]: ordinalValue 0.5 is not a whole number within ±1000000; "
     "definition values are integers"),
    (questionnaire(choice("a", [coded("LA1-8", "x", 0), coded("LA2-6", "y", 2), coded("LA3-4", "z", 4)])),
     "q.json: item 'a': answer values 0, 2, 4 are not each whole number from 0 to 4 exactly once; "
     "a definition cannot hold them"),
    (questionnaire(choice("a", frequency(), repeats=True)),
     "q.json: item 'a': allows several answers (repeats = true); a definition item holds one answer"),
    (questionnaire(choice("a", frequency(), answerValueSet="#vs")),
     "q.json: item 'a': has both answerOption and answerValueSet"),
    (questionnaire(choice("a", [{"valueDate": "2020-01-01"}])),
     "q.json: item 'a' answerOption[0]: answer of type valueDate cannot be imported "
     "(valueCoding, valueString or valueInteger only)"),
])
def test_bad_input_is_one_line_nothing_written_exit_2(tmp_path, capsys, data, message):
    status, out, err = run([write_json(tmp_path, data), "--output", tmp_path / "out.toml"], capsys)
    assert (status, out, err) == (2, "", [f"error: {message}"])
    assert list(tmp_path.glob("*.toml")) == []


def test_invalid_utf8_is_not_json(tmp_path, capsys):
    path = tmp_path / "q.json"
    path.write_bytes(b'{"resourceType": "Questionnaire\xff"}')
    assert run([path, "--output", tmp_path / "out.toml"], capsys) == \
        (2, "", ["error: q.json: not JSON: not UTF-8 text"])


@pytest.mark.parametrize("args, message", [
    (["--key", "PHQ 9"], "key 'PHQ 9' must be lower-case letters and digits joined by hyphens"),
    (["--key", "a", "--output", "b.toml"], "--output 'b.toml': the file must be named a.toml "
                                           "(a definition's key is its file name)"),
    (["--output", "b.json"], "--output 'b.json': must be a .toml file"),
    (["--output", "no/such/folder/b.toml"], "no/such/folder/b.toml: cannot write: No such file or directory"),
])
def test_bad_key_or_output_is_refused(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    source = write_json(tmp_path, questionnaire(choice("a", frequency())))
    assert run([source, *args], capsys) == (2, "", [f"error: {message}"])
    assert list(tmp_path.rglob("*.toml")) == []


def test_unknown_file_and_existing_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["nope.json"], capsys) == (2, "", ["error: nope.json: cannot read: No such file or directory"])
    source = write_json(tmp_path, questionnaire(choice("a", frequency())))
    (tmp_path / "q.toml").write_text("kept", encoding="utf-8")
    assert run([source], capsys) == (2, "", ["error: q.toml: already exists; not overwritten "
                                             "(remove it or choose --output)"])
    assert (tmp_path / "q.toml").read_text(encoding="utf-8") == "kept"


def test_a_bad_input_through_the_real_command_line(run_cli, tmp_path):
    result = run_cli("import-fhir", str(tmp_path / "absent.json"), "--output", str(tmp_path / "x.toml"))
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "error: absent.json: cannot read: No such file or directory\n")


def test_the_importer_imports_neither_flask_nor_the_app():
    code = ("import sys, instruments.cli, instruments.fhir.importer, instruments.fhir.exporter; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'outcomes', 'sqlalchemy'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]", result.stderr


def test_only_the_importer_needs_tomli_w():
    code = ("import sys, instruments, instruments.cli; instruments.score('phq9', [0] * 9); "
            "print('tomli_w' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "False", result.stderr


# --------------------------------------------------------------------------- the TOML writer

_keys = st.text(max_size=6)
_scalars = st.one_of(st.text(max_size=20), st.integers(min_value=-2**63, max_value=2**63 - 1), st.booleans())
_inline = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=3)), max_leaves=8)
_tables = st.recursive(st.dictionaries(_keys, _inline, max_size=4),
                       lambda inner: st.dictionaries(_keys, st.one_of(_inline, inner), max_size=4), max_leaves=6)
_documents = st.dictionaries(_keys, st.one_of(_inline, _tables, st.lists(_tables, min_size=1, max_size=3)),
                             max_size=6)


@settings(max_examples=120, deadline=None)
@given(_documents, st.lists(st.text(max_size=20), max_size=2))
def test_written_toml_reads_back_as_the_same_data(document, header):
    assert tomllib.loads(fhir.dumps(document, header=header)) == document


@pytest.mark.parametrize("key", ["phq9", "pcl5", "after-infusion"])
def test_shipped_definitions_survive_a_write_and_read(key):
    data = read_toml(DEFINITIONS_DIR / f"{key}.toml")
    assert tomllib.loads(fhir.dumps(data)) == data


_values = st.dictionaries(_keys, _scalars, max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(_values, min_size=1, max_size=4), _values, _tables, st.text(max_size=30), st.text(max_size=30))
def test_comments_sit_above_their_tables_and_the_data_reads_back(entries, missing, rest, first, other):
    # The importer's shape: plain data, then commented array entries and a commented table.
    document = {**{k: v for k, v in rest.items() if k not in ("items", "missing")},
                "items": entries, "missing": missing}
    comments = {"items[0]": first, f"items[{len(entries) - 1}]": other, "missing": "the default"}
    text = fhir.dumps(document, header=["head"], comments=comments)
    assert tomllib.loads(text) == document
    lines = text.split("\n")
    assert lines[0] == "# head"
    headers = [index for index, line in enumerate(lines) if line == "[[items]]"]
    assert len(headers) == len(entries)
    assert lines[headers[0] - 1].startswith("#") and lines[headers[-1] - 1].startswith("#")
    assert lines[lines.index("[missing]") - 1] == "# the default"


def test_a_comment_above_anything_but_a_table_of_values_is_refused():
    with pytest.raises(ValueError, match="items\\[0\\]: a comment goes only above a table of values"):
        fhir.dumps({"items": [{"options": {"a": 1}}]}, comments={"items[0]": "no"})
    with pytest.raises(ValueError, match="key: a comment goes only above a table of values"):
        fhir.dumps({"key": "x"}, comments={"key": "no"})
