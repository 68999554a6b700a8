"""The shipped recipes against the real data in ../shared/data."""

import json

import pytest

import modelkit
from modelkit.data.records import read_records

from conftest import REPO

RECIPES = sorted((REPO / "configs" / "text").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_encodes_every_row_of_its_data(recipe, shared_data):
    config = modelkit.load_run_config(recipe, data_root=shared_data)
    taxonomy = config.build_taxonomy()
    for split in ("train", "dev", "test"):
        path = getattr(config.data, split)
        if path:
            records = read_records(path, config.data, taxonomy)
            assert len(records) > 500 and records.labels.sum() > 0


def test_cold_one_epoch_learns_real_chinese(shared_data, tmp_path):
    config = modelkit.load_run_config(
        REPO / "configs/text/cold.yaml", data_root=shared_data,
        overrides=[f"output_dir={tmp_path / 'cold'}", "train.epochs=1"],
    )
    checkpoint = modelkit.train(config)
    dev = json.loads((checkpoint / "metrics.json").read_text())["dev"]
    assert dev["n"] == 6431 and dev["accuracy"] >= 0.87
    clf = modelkit.load(checkpoint)
    assert clf.predict(["你这个傻逼，滚回你的国家去"])[0].scores["abuse"] > clf.predict(["今天天气不错"])[0].scores["abuse"]
