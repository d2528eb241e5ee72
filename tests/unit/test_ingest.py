import pandas as pd
import pytest

from labelgate.errors import DataError, SpecError
from labelgate.spec import load_spec
from tasks.ingest import UNLABELED, ingest, load_dataset
from tests.conftest import make_text_frame, write_job


def _load(path):
    spec = load_spec(path)
    return load_dataset(spec.dataset, spec.label_schema)


@pytest.mark.parametrize("filename", ["data.csv", "data.parquet", "data.jsonl"])
def test_reads_every_format_with_labels_as_codes(tmp_path, filename):
    frame = make_text_frame(5)
    frame.loc[0, "label"] = None
    data = _load(write_job(tmp_path, frame, filename=filename))
    assert len(data.ids) == 15
    assert data.given[0] == UNLABELED
    assert data.n_labeled == 14
    assert data.classes == ["sports", "food", "tech"]
    assert data.kind == "text"


def test_truncated_csv_names_the_file(tmp_path):
    path = write_job(tmp_path, make_text_frame(5))
    csv = tmp_path / "data.csv"
    csv.write_text(csv.read_text()[:-25])  # cut the last row in half
    with pytest.raises(DataError, match=r"data\.csv is malformed"):
        _load(path)


def test_missing_file(tmp_path):
    path = write_job(tmp_path, make_text_frame(5))
    (tmp_path / "data.csv").unlink()
    with pytest.raises(DataError, match="not found"):
        _load(path)


def test_missing_columns_are_listed_with_what_the_file_has(tmp_path):
    frame = make_text_frame(5).rename(columns={"text": "body"})
    with pytest.raises(DataError) as info:
        _load(write_job(tmp_path, frame))
    assert "missing column(s) 'text'" in str(info.value)
    assert "'body'" in str(info.value)


def test_every_row_problem_is_reported_with_rows_and_ids(tmp_path):
    frame = make_text_frame(5)
    frame.loc[3, "id"] = frame.loc[1, "id"]
    frame.loc[4, "label"] = "weather"
    frame.loc[6, "text"] = "   "
    with pytest.raises(DataError) as info:
        _load(write_job(tmp_path, frame))
    message = str(info.value)
    assert f"duplicate ids '{frame.loc[1, 'id']}' at rows 2, 4" in message
    assert "'weather' not in schema.classes" in message and "rows 5" in message
    assert "empty or missing text at rows 7" in message


def test_empty_dataset(tmp_path):
    frame = make_text_frame(1).iloc[0:0]
    with pytest.raises(DataError, match="no rows"):
        _load(write_job(tmp_path, frame))


def test_single_class_cannot_train(tmp_path):
    frame = make_text_frame(5)
    frame["label"] = "food"
    with pytest.raises(DataError, match="at least two classes"):
        _load(write_job(tmp_path, frame))


def test_tabular_non_numeric_feature(tmp_path):
    frame = pd.DataFrame(
        {"id": ["a", "b", "c"], "f0": [1.0, None, 2.0], "f1": ["1", "x", "3"], "label": ["p", "q", "p"]}
    )
    path = write_job(
        tmp_path,
        frame,
        classes=("p", "q"),
        dataset={
            "path": "data.csv",
            "id_column": "id",
            "feature_columns": ["f0", "f1"],
            "label_column": "label",
        },
    )
    with pytest.raises(DataError) as info:
        _load(path)
    assert "column 'f0': missing or non-numeric value at rows 2 (ids 'b')" in str(info.value)
    assert "column 'f1'" in str(info.value)


def test_labels_the_file_says_a_model_made_are_no_evidence_for_the_thresholds(tmp_path):
    frame = make_text_frame(5)
    frame["made_by"] = ["Model", "annotator ann", "machine", None, "human"] * 3
    frame.loc[5, "label"] = None  # a row without a label is never evidence, whoever 'made' it
    dataset = {"path": "data.csv", "id_column": "id", "text_column": "text", "label_column": "label"}
    data = _load(write_job(tmp_path, frame, dataset={**dataset, "label_source_column": "made_by"}))
    assert data.label_source_column == "made_by"
    machine = (
        frame["made_by"].str.lower().isin(["model", "machine"]).to_numpy() & frame["label"].notna().to_numpy()
    )
    assert data.machine_made.tolist() == machine.tolist()
    assert data.evidence.tolist() == (frame["label"].notna().to_numpy() & ~machine).tolist()
    assert (
        data.n_labeled == 14 and data.evidence.sum() == 14 - machine.sum() == 9
    )  # row 5 (Model) has no label


def test_an_exported_label_sets_source_column_is_read_without_being_named(tmp_path):
    frame = make_text_frame(5)
    frame["source"] = ["model", "human", "given", "gold", "model"] * 3  # labelgate's own values
    data = _load(write_job(tmp_path, frame))
    assert data.label_source_column == "source"
    assert data.machine_made.tolist() == (frame["source"] == "model").tolist()

    frame["source"] = ["model", "web crawl", "given", "gold", "model"] * 3  # some other 'source'
    data = _load(write_job(tmp_path, frame))
    assert data.label_source_column is None and data.machine_made is None
    assert data.evidence.tolist() == (data.given != UNLABELED).tolist()


def test_label_source_column_must_exist_and_needs_a_label_column(tmp_path):
    dataset = {"path": "data.csv", "id_column": "id", "text_column": "text", "label_column": "label"}
    with pytest.raises(DataError, match=r"missing column.*'made_by'"):
        _load(write_job(tmp_path, make_text_frame(5), dataset={**dataset, "label_source_column": "made_by"}))
    del dataset["label_column"]
    with pytest.raises(SpecError, match="label_source_column says who made the labels in label_column"):
        load_spec(
            write_job(tmp_path, make_text_frame(5), dataset={**dataset, "label_source_column": "made_by"})
        )


def test_gold_answers_are_read_at_ingest_and_are_evidence_for_the_thresholds(tmp_path):
    frame = make_text_frame(5)
    frame.loc[[0, 1], "label"] = None  # an unlabeled gold item is evidence through its gold answer
    gold = pd.DataFrame({"id": [frame.at[0, "id"], frame.at[2, "id"]], "label": ["tech", "food"]})
    gold.to_csv(tmp_path / "gold.csv", index=False)
    review = {"mode": "labelstudio", "gold_path": "gold.csv"}
    data = ingest.fn(load_spec(write_job(tmp_path, frame, review=review)))
    assert data.n_gold == 2 and data.gold_answers == {frame.at[0, "id"]: "tech", frame.at[2, "id"]: "food"}
    assert data.evidence[0] and not data.evidence[1] and data.evidence.sum() == 14
    assert data.classes[data.evidence_labels[0]] == "tech"  # the gold answer
    assert data.classes[data.evidence_labels[2]] == "food"  # replaces the given label
    assert data.evidence_labels[3] == data.given[3]


def test_a_gold_file_with_an_id_twice_or_none_stops_the_job_at_ingest_naming_the_lines(tmp_path):
    frame = make_text_frame(5)
    review = {"mode": "labelstudio", "gold_path": "gold.csv"}
    spec = load_spec(write_job(tmp_path, frame, review=review))
    gold = pd.DataFrame({"id": ["t0000", "t0001", "t0000"], "label": ["tech", "food", "food"]})
    gold.to_csv(tmp_path / "gold.csv", index=False)
    with pytest.raises(
        DataError, match=r"gold file .*gold\.csv: ids given more than once: 't0000' \(lines 2, 4\)"
    ):
        ingest.fn(spec)
    gold = pd.DataFrame({"id": ["t0000", None], "label": ["tech", "food"]})
    gold.to_csv(tmp_path / "gold.csv", index=False)
    with pytest.raises(DataError, match=r"gold file .*gold\.csv: no 'id' on line\(s\) 3"):
        ingest.fn(spec)


def test_a_gold_file_naming_unknown_items_stops_the_job_at_ingest(tmp_path):
    frame = make_text_frame(5)
    pd.DataFrame({"id": ["t0000", "nope-1"], "label": ["tech", "food"]}).to_csv(
        tmp_path / "gold.csv", index=False
    )
    spec = load_spec(write_job(tmp_path, frame, review={"mode": "labelstudio", "gold_path": "gold.csv"}))
    with pytest.raises(DataError, match=r"gold file .*gold\.csv: ids not in the dataset: .*nope-1"):
        ingest.fn(spec)
