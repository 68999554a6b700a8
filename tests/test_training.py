import json

import numpy as np
import pytest
import torch

import modelkit
from modelkit import CheckpointError
from modelkit.checkpoint import load_checkpoint

from conftest import ngram_recipe


def test_ngram_learns_synthetic_task(ngram_checkpoint):
    metrics = json.loads((ngram_checkpoint / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] >= 0.95, metrics["test"]["per_category"]
    assert metrics["dev"]["macro_f1"] >= 0.95
    log = [json.loads(line) for line in (ngram_checkpoint / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["event"] == "train"]
    assert losses[-1] < losses[0] / 3
    assert (ngram_checkpoint / "run_config.yaml").is_file() and (ngram_checkpoint / "README.md").is_file()


def test_checkpoint_round_trip_is_exact(ngram_checkpoint, tmp_path):
    texts = ["你这个傻逼", "nice weather today", "cracked software keygen", ""]
    clf = modelkit.load(ngram_checkpoint, device="cpu")
    copy = tmp_path / "copy"
    clf.save(copy)
    again = modelkit.load(copy, device="cpu")
    np.testing.assert_allclose(clf.predict_proba(texts), again.predict_proba(texts), rtol=1e-5, atol=1e-6)
    for name, tensor in clf.model.state_dict().items():  # stored bits, not arithmetic: equal on any CPU
        assert torch.equal(tensor, again.model.state_dict()[name])
    config = json.loads((copy / "config.json").read_text())
    assert config["activation"] == "sigmoid" and config["problem_type"] == "multi_label_classification"
    assert config["id2label"]["0"] == "pornography" and len(config["taxonomy"]["categories"]) == 11


def test_predict_returns_labels_above_thresholds(ngram_checkpoint):
    clf = modelkit.load(ngram_checkpoint)
    preds = clf.predict(["你这个傻逼，滚你妈的", "今天天气不错"])
    assert preds[0].labels == ["abuse"] and preds[1].labels == [] and not preds[1].flagged
    assert set(preds[0].scores) == set(clf.categories)
    proba = clf.predict_proba(["a", "b", "c"])
    assert proba.shape == (3, 11) and proba.dtype == np.float32 and ((proba >= 0) & (proba <= 1)).all()
    with pytest.raises(TypeError, match="single str"):
        clf.predict("not a list")
    with pytest.raises(TypeError, match="input 1: expected str, got NoneType"):
        clf.predict(["ok", None])


def test_every_odd_string_gets_a_prediction(ngram_checkpoint):
    clf = modelkit.load(ngram_checkpoint)
    odd = ["", "   \t\n ", "x" * 1_000_000, "bad \ud800\udfff surrogates \udc80", "\x00\x01\x02ctrl\x7f",
           "\u200b\u200d\ufeff", "🔞🔞🔞", "ｆｕｌｌｗｉｄｔｈ"]
    proba = clf.predict_proba(odd)
    assert proba.shape == (len(odd), 11) and np.isfinite(proba).all()


def test_broken_checkpoints_raise_clear_errors(ngram_checkpoint, tmp_path):
    clf = modelkit.load(ngram_checkpoint)
    target = tmp_path / "ckpt"
    clf.save(target)
    weights = target / "model.safetensors"
    original = weights.read_bytes()

    weights.write_bytes(original[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="model.safetensors does not match the hash"):
        load_checkpoint(target)
    weights.unlink()
    with pytest.raises(CheckpointError, match="file model.safetensors is missing"):
        load_checkpoint(target)
    weights.write_bytes(original)
    load_checkpoint(target)

    config = (target / "config.json").read_text()
    (target / "config.json").write_text(config[:50])
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_checkpoint(target)
    (target / "config.json").write_text(config.replace('"embed_dim": 32', '"embed_dim": 33'))
    with pytest.raises(CheckpointError, match="config describes at least .* parameters, but model.safetensors holds"):
        load_checkpoint(target)  # refused before anything is built
    (target / "config.json").write_text(config.replace('"embed_dim": 32', '"embed_dim": 31'))
    with pytest.raises(CheckpointError, match="weights do not fit the architecture"):
        load_checkpoint(target)
    (target / "config.json").write_text(config.replace('"name": "ngram"', '"name": "evil"'))
    with pytest.raises(CheckpointError, match="unknown model 'evil'"):
        load_checkpoint(target)
    (target / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(target)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")


def test_resume_continues_from_last_epoch(synthetic_splits, tmp_path):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "run", epochs=2, early_stopping_patience=0)
    modelkit.train(recipe)
    state = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert state["epoch"] == 2
    recipe["train"]["epochs"] = 3
    modelkit.train(recipe, resume=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    evals = [r["epoch"] for r in log if r["event"] == "eval" and r["split"] == "dev"]
    assert evals == [1, 2, 3]  # the resumed run only trained epoch 3
    assert [r["resumed_epoch"] for r in log if r["event"] == "start"] == [0, 2]


def test_early_stopping_and_thresholds(synthetic_splits, tmp_path):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "run", epochs=30, early_stopping_patience=1,
                          tune_thresholds=True, pos_weight="sqrt")
    modelkit.train(recipe)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len([r for r in log if r["event"] == "eval" and r["split"] == "dev"]) < 30
    thresholds = json.loads((tmp_path / "run" / "config.json").read_text())["thresholds"]
    assert any(abs(t - 0.5) > 1e-6 for t in thresholds.values())


def test_gradient_accumulation_and_bf16_autocast(synthetic_splits, tmp_path):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "run", grad_accum_steps=2, mixed_precision="bf16",
                          batch_size=8)
    checkpoint = modelkit.train(recipe)
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] >= 0.9
    state = json.loads((checkpoint / "last" / "trainer_state.json").read_text())
    batches_per_epoch = -(-len(synthetic_splits["train"].read_text().splitlines()) // 8)
    assert state["global_step"] == state["epoch"] * -(-batches_per_epoch // 2)  # one optimiser step per 2 batches


def test_exclusive_loss_learns_one_class_per_row(synthetic_splits, tmp_path):
    # The synthetic set minus its multi-category rows is a multi-class problem.
    splits = {}
    for split, path in synthetic_splits.items():
        rows = [line for line in path.read_text(encoding="utf-8").splitlines() if len(json.loads(line)["labels"]) <= 1]
        splits[split] = tmp_path / f"{split}.jsonl"
        splits[split].write_text("\n".join(rows) + "\n", encoding="utf-8")
    checkpoint = modelkit.train(ngram_recipe(splits, tmp_path / "run", loss="exclusive", label_smoothing=0.1))
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    assert metrics["test"]["exclusive"]["accuracy"] >= 0.9, metrics["test"]["exclusive"]
    # Epochs are chosen on what the argmax decides (the class view), not on the multi-label F1.
    log = [json.loads(line) for line in (checkpoint / "train_log.jsonl").read_text().splitlines()]
    assert [r["select_metric"] for r in log if r["event"] == "start"] == ["classes_macro_f1"]
    dev = [r["classes_macro_f1"] for r in log if r["event"] == "eval" and r["split"] == "dev"]
    assert metrics["dev"]["exclusive"]["macro_f1"] == pytest.approx(max(dev))

    # A dev split with multi-category rows has no class view: back to macro_f1, said aloud.
    mixed = modelkit.train(ngram_recipe({**splits, "dev": synthetic_splits["dev"]}, tmp_path / "mixed",
                                        loss="exclusive", epochs=1))
    log = [json.loads(line) for line in (mixed / "train_log.jsonl").read_text().splitlines()]
    assert [r["select_metric"] for r in log if r["event"] == "start"] == ["macro_f1"]
    assert any("selecting epochs on macro_f1 instead" in r["message"] for r in log if r["event"] == "warning")

    with pytest.raises(modelkit.ConfigError, match="train.loss: exclusive needs at most one category per row"):
        modelkit.train(ngram_recipe(synthetic_splits, tmp_path / "multi", loss="exclusive"))
    with pytest.raises(modelkit.ConfigError, match="pos_weight only applies to loss: bce"):
        modelkit.train(ngram_recipe(splits, tmp_path / "weighted", loss="exclusive", pos_weight="balanced"))


def test_consistency_loss_pulls_copies_that_change_their_decision():
    from modelkit.training.trainer import _consistency

    originals = torch.tensor([[6.0], [-3.0]])
    assert _consistency(originals, originals.clone()).item() == pytest.approx(0.0, abs=1e-6)
    still_right = _consistency(originals, torch.tensor([[3.0], [-2.0]]))
    flipped = _consistency(originals, torch.tensor([[-1.0], [-2.0]]))
    assert 0 < still_right < 0.1 * flipped
    # Only the copy moves: the original's scores are the target.
    originals.requires_grad_(True)
    copies = torch.tensor([[-1.0], [-2.0]], requires_grad=True)
    _consistency(originals, copies).backward()
    assert originals.grad is None and copies.grad[0, 0] < 0  # raising the copy's logit lowers the loss


def test_examples_rewrite_benign_rows_at_their_own_rate():
    from modelkit.data.records import Records
    from modelkit.processing import create_processor
    from modelkit.training.loaders import Examples

    labels = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    records = Records({"text": ["傻逼傻逼"] * 3}, labels, ["a", "b", "c"], None, "train")
    processor = create_processor("text_ngram", augment={"probability": 1.0, "benign_probability": 0.0,
                                                         "attacks": ["initials"]})
    pairs = [Examples(records, processor, train=True, paired=True)[i][0] for i in range(3)]
    assert [original == copy for original, copy in pairs] == [False, True, False]
    # Seeded by (seed, epoch, row): the same copy in every worker, a new one each epoch.
    examples = Examples(records, processor, train=True)
    assert examples[0][0] == examples[0][0]
    assert not processor.training  # the training view is a copy


def test_paired_training_with_consistency_learns(synthetic_splits, tmp_path):
    from modelkit.processing import Processor
    from modelkit.training.loaders import Collate

    class Echo(Processor):
        def collate(self, items):
            return {"texts": items}

    collate = Collate(Echo(None), paired=True)
    batch = collate([(("a", "a*"), torch.tensor([1.0])), (("b", "b*"), torch.tensor([0.0]))])
    assert batch["texts"] == ["a", "b", "a*", "b*"] and batch["labels"].flatten().tolist() == [1, 0, 1, 0]

    recipe = ngram_recipe(synthetic_splits, tmp_path / "run", consistency=1.0)
    recipe["processor"]["augment"] = {"probability": 1.0, "attacks": ["homophone"]}
    checkpoint = modelkit.train(recipe)
    assert json.loads((checkpoint / "metrics.json").read_text())["test"]["macro_f1"] >= 0.9
    with pytest.raises(modelkit.ConfigError, match="train.consistency must be >= 0"):
        modelkit.train(ngram_recipe(synthetic_splits, tmp_path / "bad", consistency=-1))
    with pytest.raises(modelkit.ConfigError, match="train.consistency: processor text_ngram does not augment"):
        modelkit.train(ngram_recipe(synthetic_splits, tmp_path / "bad", consistency=1.0))
