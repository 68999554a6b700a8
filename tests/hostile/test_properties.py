"""Property-based checks: readers, the config loader and checkpoint loading on arbitrary input
either work or fail with their documented error, never another exception."""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import modelkit
from modelkit import CheckpointError, ConfigError, DataError
from modelkit.data.records import DataConfig
from modelkit.batch.sources import RowReader, open_source

from conftest import tiny_text_classifier

# Test files live in one temporary folder per test; hypothesis reruns the body many times.
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text as users write it: any character a UTF-8 file can hold (no lone surrogates).
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
ids = st.one_of(st.none(), st.integers(-10**12, 10**12), texts,
                st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.dictionaries(texts, texts, max_size=2))
rows = st.lists(st.fixed_dictionaries({"id": ids, "text": st.one_of(texts, st.none(), st.integers())}),
                min_size=1, max_size=12)


def _expected_id(index: int, value) -> str | None:
    if value is None or isinstance(value, (bool, dict)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str) else str(value)


def _write(path: Path, fmt: str, table: list[dict], bom: bool) -> Path:
    if fmt == "jsonl":
        body = "".join(json.dumps(row, ensure_ascii=False, allow_nan=True) + "\n" for row in table)
        path.write_bytes((codecs.BOM_UTF8 if bom else b"") + body.encode("utf-8"))
    elif fmt == "json":
        path.write_bytes((codecs.BOM_UTF8 if bom else b"") + json.dumps(table, ensure_ascii=False).encode("utf-8"))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": [None if r["id"] is None else json.dumps(r["id"]) for r in table],
                                 "text": [r["text"] if isinstance(r["text"], str) else None for r in table]}), path)
    return path


@SETTINGS
@given(table=rows, fmt=st.sampled_from(["jsonl", "json", "parquet"]), bom=st.booleans())
def test_every_row_is_read_once_with_its_id_as_text_or_an_error(tmp_path, table, fmt, bom):
    path = _write(tmp_path / f"in.{fmt}", fmt, table, bom)
    source = open_source(path, DataConfig(), file_input=False)
    reader = RowReader(source, DataConfig())
    read = [reader(index, raw) for index, raw in enumerate(source.raw_rows())]
    assert len(read) == len(table) == source.count()
    for index, (row, original) in enumerate(zip(read, table)):
        value = original["id"] if fmt != "parquet" or original["id"] is None else json.dumps(original["id"])
        expected = _expected_id(index, value)
        if expected is None:
            assert row.id is None and row.problem is not None
        else:
            assert row.id == expected
            text = original["text"]
            if isinstance(text, str):
                assert row.problem is None and row.value == text
            else:
                assert row.problem is not None and row.value is None


@SETTINGS
@given(cells=st.lists(st.lists(texts, min_size=2, max_size=2), min_size=1, max_size=10), bom=st.booleans())
def test_csv_cells_come_back_as_written(tmp_path, cells, bom):
    assume(all("\x00" not in cell for row in cells for cell in row))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "text"])
    writer.writerows(cells)
    path = tmp_path / "in.csv"
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode("utf-8"))
    source = open_source(path, DataConfig(), file_input=False)
    read = [RowReader(source, DataConfig())(i, raw) for i, raw in enumerate(source.raw_rows())]
    expected = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))[1:]
    assert [(row.id, row.value) for row in read] == [(i, t) for i, t in expected]


@SETTINGS
@given(text=texts, encoding=st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
def test_files_in_other_encodings_are_refused_by_name(tmp_path, text, encoding):
    path = tmp_path / "in.jsonl"
    body = json.dumps({"id": "a", "text": text}, ensure_ascii=False) + "\n"
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    path.write_bytes(bom + body.encode(encoding))
    with pytest.raises(DataError, match=r"UTF-(16|32)"):
        open_source(path, DataConfig(), file_input=False)


# -- the config loader ------------------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(), texts)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(texts, inner, max_size=4)), max_leaves=12)
sections = st.sampled_from(["data", "model", "processor", "train", "output_dir", "categories", "taxonomy", "ensemble",
                            "distill", "bogus"])


@SETTINGS
@given(recipe=st.dictionaries(sections, values, max_size=6))
def test_any_recipe_mapping_loads_or_names_its_field(recipe):
    try:
        modelkit.load_run_config(recipe)
    except (ConfigError, DataError):  # DataError: a label map naming unknown categories
        pass


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_yaml_text_parses_or_is_a_config_error(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        modelkit.load_run_config(path)
    except (ConfigError, DataError):
        pass


# -- checkpoint loading -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return tiny_text_classifier().save(tmp_path_factory.mktemp("pristine") / "ckpt")


@SETTINGS
@given(name=st.sampled_from(["config.json", "model.safetensors", "processor_config.json"]),
       damage=st.sampled_from(["truncate", "flip"]), where=st.floats(0, 1), bit=st.integers(0, 7))
def test_damaged_checkpoints_are_refused_never_crash(pristine, tmp_path, name, damage, where, bit):
    checkpoint = tmp_path / "ckpt"
    shutil.rmtree(checkpoint, ignore_errors=True)
    shutil.copytree(pristine, checkpoint)
    path = checkpoint / name
    data = bytearray(path.read_bytes())
    position = min(int(where * len(data)), len(data) - 1)
    if damage == "truncate":
        data = data[:position]
    else:
        data[position] ^= 1 << bit
    path.write_bytes(bytes(data))
    try:
        classifier = modelkit.load(checkpoint)
    except CheckpointError:
        return
    # Only config.json is not covered by a hash: a change there that still loads must still be a
    # valid checkpoint (a flipped letter in a name or a description).
    assert name == "config.json"
    predictions = classifier.predict(["你好", "hello"], on_error="record")
    assert all(p.error is None for p in predictions)
