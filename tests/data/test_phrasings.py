import json

import pytest

from lfdm.data.phrasings import SYNTHETIC_HELD_OUT, SYNTHETIC_PHRASINGS, PhrasingError, phrasings_for
from lfdm.data.synthetic import CLASSES


def words(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").split())


def test_synthetic_table_starts_with_each_label_and_never_contains_a_held_out_prompt():
    table = phrasings_for("synthetic", CLASSES)
    assert list(table) == list(CLASSES)
    assert all(table[label][0] == label and len(table[label]) >= 6 for label in CLASSES)
    training = {words(s) for sentences in table.values() for s in sentences}
    held_out = [words(s) for sentences in SYNTHETIC_HELD_OUT.values() for s in sentences]
    assert set(SYNTHETIC_HELD_OUT) == set(CLASSES) and all(len(v) >= 4 for v in SYNTHETIC_HELD_OUT.values())
    assert not training & set(held_out) and len(set(held_out)) == len(held_out)
    assert set(SYNTHETIC_PHRASINGS) == set(CLASSES)


def test_a_subset_of_the_classes_and_no_table():
    assert phrasings_for("synthetic", ["zoom in", "stay still"])["zoom in"][:2] == ["zoom in", "get bigger"]
    assert phrasings_for("", ["a", "b"]) == {"a": ["a"], "b": ["b"]}


def test_table_files_yaml_and_json(tmp_path):
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("happiness: [smile, ' a happy face ', happiness]\n")
    assert phrasings_for(str(yaml_file), ["happiness", "anger"]) == {
        "happiness": ["happiness", "smile", "a happy face"], "anger": ["anger"]}
    json_file = tmp_path / "p.json"
    json_file.write_text(json.dumps({"anger": ["frown"]}))
    assert phrasings_for(str(json_file), ["anger"]) == {"anger": ["anger", "frown"]}


@pytest.mark.parametrize("text,match", [
    ("joy: [smile]\n", "classes the data does not have: \\['joy'\\]"),
    ("happiness: smile\n", "must map each class label to a list"),
    ("happiness: [smile\n", "not valid YAML"),
])
def test_bad_tables_name_the_problem(tmp_path, text, match):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PhrasingError, match=match):
        phrasings_for(str(path), ["happiness"])
    with pytest.raises(PhrasingError, match="no phrasing table"):
        phrasings_for(str(tmp_path / "missing.yaml"), ["happiness"])
