"""Processors, policy and the device rule: the pieces a classifier is made of."""

import json
import random

import numpy as np
import pytest
import torch

import modelkit
from modelkit import ConfigError, Policy, Taxonomy
from modelkit.inference import select_device
from modelkit.processing import check_input, create_processor

from conftest import ngram_recipe

TAX = Taxonomy.load().subset(["abuse", "violence"])


def test_augmentation_happens_in_train_mode_only():
    processor = create_processor("text_ngram", augment={"probability": 1.0, "attacks": ["initials"]})
    text = "你这个傻逼真是垃圾"
    assert processor.augments and not processor.training
    assert processor.decode(text, rng=random.Random(0)) == processor.normalizer(text)
    processor.train()
    copies = {processor.decode(text, rng=random.Random(seed)) for seed in range(5)}
    assert processor.normalizer(text) not in copies or len(copies) > 1
    assert processor.decode(text, rng=random.Random(3)) == processor.decode(text, rng=random.Random(3))
    processor.eval()
    assert processor.decode({"text": text, "title": "x"}) == processor.normalizer(text)  # a record's field


def test_inputs_are_checked_by_modality():
    assert check_input("text", "ok") is None and check_input("text", 3) == "expected str, got int"
    with pytest.raises(ConfigError, match="data.inputs: unknown modality 'audio'; available: "):
        check_input("audio", b"...")
    with pytest.raises(ConfigError, match="processor.name: unknown processor 'bpe'; available: ensemble, image, image_ocr, part_scores, text_ngram"):
        create_processor("bpe")
    processor = create_processor("text_ngram")
    with pytest.raises(TypeError, match="record has no 'text' input"):
        processor.decode({"title": "x"})
    with pytest.raises(ConfigError, match="window_chars must be decreasing sizes"):
        create_processor("text_ngram", window_chars=[64, 128])


def test_recipe_checks_that_the_data_has_what_the_processor_reads():
    with pytest.raises(ConfigError, match="data.inputs.audio: unknown modality; known: "):
        modelkit.load_run_config({"data": {"train": "a.jsonl", "inputs": {"audio": "wav"}}})
    modelkit.register_modality("test_blob", lambda value: None)
    with pytest.raises(ConfigError, match="processor text_ngram reads 'text' inputs but data.inputs names only test_blob"):
        modelkit.load_run_config({"data": {"train": "a.jsonl", "inputs": {"test_blob": "cover"}}})
    with pytest.raises(ConfigError, match="input_field is the shorthand for data.inputs"):
        modelkit.load_run_config({"data": {"train": "a.jsonl", "inputs": {"text": "t"}, "input_field": "t"}})


def test_policy_scores_and_decides():
    policy = Policy(TAX, thresholds={"abuse": 0.7}, temperatures={"violence": 2.0})
    assert policy.thresholds == {"abuse": 0.7, "violence": 0.5}
    scores = policy.scores(np.array([[0.0, 2.0]]))
    np.testing.assert_allclose(scores, [[0.5, 1 / (1 + np.exp(-1.0))]], rtol=1e-6)
    assert policy.decide(scores).tolist() == [[False, True]]
    assert policy.with_values(thresholds={"abuse": 0.4}).decide(scores).tolist() == [[True, True]]
    with pytest.raises(ConfigError, match=r"thresholds.abuse: must be a number in \[0, 1\], got nan"):
        Policy(TAX, thresholds={"abuse": float("nan")})


def test_device_rule():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(None).type in ("cpu", "cuda", "mps", "xpu")
    for bad in ("gpu", "cuda:x", ""):
        with pytest.raises(ConfigError, match="not a device"):
            select_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is available"):
            select_device("cuda:0")


def test_decoding_in_dataloader_workers(synthetic_splits, tmp_path):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "run", num_workers=2)
    recipe["processor"]["augment"] = {"probability": 0.5, "attacks": ["separator"]}
    checkpoint = modelkit.train(recipe)
    assert json.loads((checkpoint / "metrics.json").read_text())["test"]["macro_f1"] >= 0.9
