import json

import numpy as np
import pytest

from modelkit import DataError, Taxonomy
from modelkit.data.records import DataConfig, LabelEncoder, read_records, split_records

TAX = Taxonomy.load().subset(["abuse", "violence", "pornography"])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_list_and_single_id_labels(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"id": "a", "text": "x", "labels": ["abuse", "violence"]},
        {"id": "b", "text": "y", "labels": []},
    ])
    records = read_records(path, DataConfig(), TAX)
    assert records.labels.tolist() == [[1, 1, 0], [0, 0, 0]] and records.ids == ["a", "b"]
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": "x", "label": "pornography"}, {"text": "y", "label": []}])
    records = read_records(path, DataConfig(label_field="label"), TAX)
    assert records.labels.tolist() == [[0, 0, 1], [0, 0, 0]] and records.ids == [0, 1]


def test_label_map_translates_dataset_labels(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": 1}, {"text": "y", "label": 0},
                                               {"text": "z", "label": 2}])
    config = DataConfig(label_field="label", label_map={"0": [], "1": ["abuse"], "2": ["abuse", "violence"]})
    assert read_records(path, config, TAX).labels.tolist() == [[1, 0, 0], [0, 0, 0], [1, 1, 0]]


def test_unmapped_label_names_file_row_and_value(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": 7, "text": "x", "label": 1}, {"id": 8, "text": "y", "label": 5}])
    with pytest.raises(DataError, match=r"d.jsonl, row 1 \(id 8\): column 'label': label 5 is not in data.label_map"):
        read_records(path, DataConfig(label_field="label", label_map={"0": [], "1": "abuse"}), TAX)
    path = write_jsonl(tmp_path / "e.jsonl", [{"text": "x", "labels": ["gore"]}])
    with pytest.raises(DataError, match=r"e.jsonl, row 0: column 'labels': label 'gore' is not a category"):
        read_records(path, DataConfig(), TAX)


def test_label_map_targets_must_exist():
    with pytest.raises(DataError, match="data.label_map.1: 'hate'"):
        LabelEncoder(TAX, DataConfig(label_map={"1": "hate"}))


def test_one_column_per_category_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,abuse,violence\nhello,1,0\nworld,0,1\n", encoding="utf-8")
    records = read_records(path, DataConfig(label_columns=["abuse", "violence"]), TAX)
    assert records.labels.tolist() == [[1, 0, 0], [0, 1, 0]]
    path.write_text("text,abuse,violence\nhello,3,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'abuse': must be 0 or 1, got '3'"):
        read_records(path, DataConfig(label_columns=["abuse", "violence"]), TAX)


def test_parquet(tmp_path):
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", "b"], "labels": [["abuse"], []]}).to_parquet(path)
    assert read_records(path, DataConfig(), TAX).labels.tolist() == [[1, 0, 0], [0, 0, 0]]


def test_malformed_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "labels": []}\n{"text": "broken", labels: []}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: malformed JSON"):
        read_records(path, DataConfig(), TAX)


def test_missing_text_column_and_file(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"content": "x", "labels": []}])
    with pytest.raises(DataError, match=r"no column 'text' \(set data.input_field\); columns: content"):
        read_records(path, DataConfig(), TAX)
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        read_records(tmp_path / "nope.jsonl", DataConfig(), TAX)


def test_non_string_text_in_training_data_is_named(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "labels": []}, {"text": None, "labels": []}])
    with pytest.raises(DataError, match=r"row 1: field 'text' \(text input\): expected str, got NoneType"):
        read_records(path, DataConfig(), TAX)


def test_split_is_seeded_and_disjoint(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": i, "text": str(i), "labels": []} for i in range(50)])
    records = read_records(path, DataConfig(), TAX)
    train, dev = split_records(records, 0.2, seed=3)
    again, _ = split_records(records, 0.2, seed=3)
    assert len(dev) == 10 and len(train) == 40 and train.ids == again.ids
    assert not set(train.ids) & set(dev.ids)
    assert np.array_equal(train.labels, np.zeros((40, 3)))
