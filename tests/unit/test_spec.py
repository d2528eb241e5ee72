import pytest

from labelgate.errors import SpecError
from labelgate.spec import LabelingJobSpec, load_spec, parse_spec

BASE = {
    "name": "tweets-audit",
    "dataset": {"path": "data/tweets.csv", "id_column": "id", "text_column": "text", "label_column": "label"},
    "schema": {"classes": ["negative", "neutral", "positive"]},
    "autolabel": {"target_accuracy": 0.98},
    "review": {"mode": "none"},
    "output": {"label_set": "tweets"},
    "rights": {"license": "CC-BY-4.0", "source": "where the data came from"},
}


def test_issue_example_spec_loads_and_resolves_path_next_to_the_spec(tmp_path):
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(BASE))
    spec = load_spec(path)
    assert spec.label_schema.classes == ["negative", "neutral", "positive"]
    assert spec.dataset.kind == "text"
    assert spec.dataset.path == str(tmp_path / "data" / "tweets.csv")
    assert spec.dataset.resolved_format == "csv"


def test_unknown_keys_and_wrong_types_name_every_field():
    bad = {
        **BASE,
        "colour": "red",
        "autolabel": {"target_accuracy": "very high"},
        "dataset": {**BASE["dataset"], "idcolumn": "x"},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(bad, where="job.yaml")
    message = str(info.value)
    assert "job.yaml" in message
    assert "colour: unknown key" in message
    assert "dataset.idcolumn: unknown key" in message
    assert "autolabel.target_accuracy" in message


def test_text_and_features_are_exclusive():
    both = {**BASE, "dataset": {**BASE["dataset"], "feature_columns": ["a"]}}
    with pytest.raises(SpecError, match="exactly one of text_column or feature_columns"):
        parse_spec(both)


def test_repeated_classes_are_refused():
    with pytest.raises(SpecError, match="repeated"):
        parse_spec({**BASE, "schema": {"classes": ["a", "b", "a"]}})


def test_spec_hash_is_stable_and_changes_with_content():
    a = parse_spec(BASE)
    b = parse_spec(dict(BASE))
    c = parse_spec({**BASE, "autolabel": {"target_accuracy": 0.9}})
    assert a.spec_hash() == b.spec_hash() != c.spec_hash()


def test_unreadable_spec_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read job spec"):
        load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)


def test_prefect_form_schema_has_the_spec_fields():
    schema = LabelingJobSpec.model_json_schema()
    assert {"name", "dataset", "schema", "output", "rights"} <= set(schema["properties"])


def test_validation_block_selects_checks_and_unknown_names_fail_at_load_with_the_valid_names():
    data = {
        **BASE,
        "validation": {
            "checks": [
                {"name": "personal_data", "action": "block", "params": {"kinds": ["email"]}},
                {"name": "pii"},
                {"name": "outliers", "params": {"zz": 1}},
            ]
        },
    }
    with pytest.raises(SpecError) as info:
        parse_spec(data, where="job.yaml")
    message = str(info.value)
    assert "validation.checks.1" in message and "unknown screening check 'pii'" in message
    assert "valid names: conflicting_duplicates, degenerate_inputs, exact_duplicates" in message
    assert "validation.checks.2" in message and "unknown parameter(s) ['zz']" in message
    assert "validation.checks.0" not in message

    data["validation"]["checks"] = data["validation"]["checks"][:1]
    spec = parse_spec(data)
    assert spec.validation.selected_checks() == [("personal_data", "block", {"kinds": ["email"]})]


def test_validation_defaults_when_absent_and_bad_parameter_values_fail_at_load():
    checks = parse_spec(BASE).validation.selected_checks()
    assert ("personal_data", "quarantine", {}) in checks and ("exact_duplicates", "report", {}) in checks
    bad = {**BASE, "validation": {"checks": [{"name": "personal_data", "params": {"kinds": ["ssn"]}}]}}
    with pytest.raises(SpecError, match="unknown kind"):
        parse_spec(bad)
