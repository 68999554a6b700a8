"""Picture evidence (modelkit.image.explain): a small CNN trained on synthetic motifs must point at
the one motif painted at a known place, by Grad-CAM in PyTorch and by occlusion on the same model
run as an ONNX peer model; boxes come back in the original picture's pixels (a centre crop and
EXIF orientation in between), and the heat map blends over the picture."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modelkit
from modelkit.data.synthetic import write_synthetic
from modelkit.explain import explain, explainer_for
from modelkit.image.explain import explain_image, feature_layer
from modelkit.image.synthetic import motif_colour, noisy_gradient, paint_motif

CATEGORIES = ["pornography", "violence", "superstition"]  # circle, square, triangle


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> modelkit.Classifier:
    folder = tmp_path_factory.mktemp("explain")
    splits = write_synthetic("image", folder / "data", seed=0, rows_per_category=40, clean_rows=40, size=48,
                             categories=CATEGORIES)
    checkpoint = modelkit.train({
        "output_dir": str(folder / "model"), "categories": CATEGORIES,
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "inputs": {"image": "image"}},
        "model": {"name": "image", "arch": "small_cnn", "dropout": 0.1},
        "processor": {"resize": 48, "crop": 48, "augment": {"hflip": 0.5}},
        "train": {"epochs": 8, "batch_size": 32, "learning_rate": 0.003}})
    return modelkit.load(checkpoint)


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> list[dict]:
    """Pictures of 48 to 144 pixels, square or 3:2 (the processor resizes the shorter side to 48
    and crops the centre), each with ONE motif inside the centre square, its box known."""
    folder = tmp_path_factory.mktemp("probes")
    rng = np.random.default_rng(1)
    rows = []
    for n in range(30):
        height = int(rng.choice([48, 64, 96]))
        width = int(height * rng.choice([1.0, 1.5]))
        picture = noisy_gradient(width, height, rng)
        category = CATEGORIES[n % 3]
        r = rng.uniform(0.3, 0.45) * height / 2
        cx, cy = rng.uniform((width - height) / 2 + r, (width + height) / 2 - r), rng.uniform(r, height - r)
        paint_motif(picture, category, motif_colour(category, rng), cx, cy, r, rng.uniform(-0.3, 0.3))
        path = folder / f"probe-{n}.png"
        picture.save(path)
        rows.append({"path": str(path), "category": category, "box": [cx - r, cy - r, cx + r, cy + r],
                     "size": (width, height)})
    return rows


def iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def check_hits(name: str, evidence: list[list[dict]], probes: list[dict], seconds: float) -> None:
    hits, overlaps, distances = 0, [], []
    for items, probe in zip(evidence, probes):
        (item,) = items
        assert item["category"] == probe["category"]
        width, height = probe["size"]
        x0, y0, x1, y1 = item["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (item["box"], probe["size"])
        grid = np.array(item["heatmap"])
        assert grid.shape == ((7, 10) if width > height else (7, 7)) and grid.min() >= 0 and grid.max() == 1.0
        truth = probe["box"]
        overlap = iou(item["box"], truth)
        distance = np.hypot((x0 + x1 - truth[0] - truth[2]) / 2, (y0 + y1 - truth[1] - truth[3]) / 2) / height
        overlaps.append(overlap)
        distances.append(distance)
        hits += overlap > 0 and distance < 0.2
    weights = [items[0]["weight"] for items in evidence]
    print(f"\n{name}: box hits the motif in {hits}/{len(probes)} pictures; mean IoU {np.mean(overlaps):.2f}, "
          f"median centre distance {np.median(distances):.3f} of the height; median weight "
          f"{np.median(weights):.2f} logits; {1000 * seconds / len(probes):.1f} ms per picture")
    assert hits >= 0.8 * len(probes)
    assert np.mean(np.array(weights) > 0) >= 0.8  # hiding the box lowers the category's logit


def test_gradcam_points_at_the_motif(classifier, probes):
    assert explainer_for(classifier) is explain_image  # registered for the image modality
    assert feature_layer(classifier.model, classifier.processor([probes[0]["path"]])) == "backbone.14"  # the last block's ReLU, before its pooling
    start = time.perf_counter()
    evidence = explain(classifier, [p["path"] for p in probes], [[p["category"]] for p in probes])
    seconds = time.perf_counter() - start
    assert {items[0]["method"] for items in evidence} == {"gradcam"}
    check_hits("Grad-CAM (small_cnn, PyTorch)", evidence, probes, seconds)


def test_occlusion_on_an_onnx_peer_model_points_at_the_motif(classifier, probes, tmp_path):
    from modelkit.models.onnx_graph import export_onnx

    graph = tmp_path / "peer.onnx"
    graph.write_bytes(export_onnx(classifier.model, classifier.processor([p["path"] for p in probes[:2]])))
    model = modelkit.create_model("onnx", classifier.taxonomy, processor=classifier.processor, path=str(graph),
                                  output_labels=CATEGORIES, outputs={c: c for c in CATEGORIES}, output_kind="logit")
    peer = modelkit.Classifier(model, classifier.processor, classifier.policy)
    start = time.perf_counter()
    evidence = explain_image(peer, [p["path"] for p in probes], [[p["category"]] for p in probes])
    seconds = time.perf_counter() - start
    assert {items[0]["method"] for items in evidence} == {"occlusion"}
    check_hits("occlusion (the same model as an ONNX peer model)", evidence, probes, seconds)
    with pytest.raises(ValueError, match="no convolutional feature map"):
        explain_image(peer, [probes[0]["path"]], [[CATEGORIES[0]]], method="gradcam")


def test_box_follows_exif_orientation_and_several_categories(classifier, probes, tmp_path):
    probe = probes[1]
    upright = Image.open(probe["path"]).convert("RGB")
    sideways = tmp_path / "sideways.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: stored a quarter anticlockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(sideways, exif=exif)
    wanted = [[probe["category"], *[c for c in CATEGORIES if c != probe["category"]]]] * 2
    plain, turned = explain_image(classifier, [probe["path"], str(sideways)], wanted)
    assert [item["category"] for item in turned] == wanted[0]
    np.testing.assert_allclose(turned[0]["box"], plain[0]["box"], atol=1)
    np.testing.assert_allclose(turned[0]["heatmap"], plain[0]["heatmap"], atol=1e-3)
    assert explain_image(classifier, [probe["path"]], [[]]) == [[]]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    assert explain_image(classifier, [str(broken)], [[CATEGORIES[0]]]) == [[]]  # no evidence, no crash
    with pytest.raises(ValueError, match="unknown category"):
        explain_image(classifier, [probe["path"]], [["gambling"]])


def test_feature_layer_of_a_torchvision_resnet():
    import torch

    model = modelkit.create_model("image", 2, arch="resnet18")
    assert feature_layer(model.eval(), {"pixel_values": torch.zeros(1, 3, 64, 64)}) == "backbone.layer4"


def test_heatmap_image_blends_the_map_over_the_picture(probes):
    from modelkit.posts.page import heatmap_image

    probe = probes[0]
    heat = np.zeros((7, 7))
    heat[1, 5] = 1.0  # hot near the top right corner only
    blended = np.asarray(heatmap_image(probe["path"], {"heatmap": heat.tolist(), "box": [0, 0, 10, 10]}), dtype=int)
    original = np.asarray(Image.open(probe["path"]).convert("RGB"), dtype=int)
    assert blended.shape == original.shape
    height, width = original.shape[:2]
    hot = (int(1.5 / 7 * height), int(5.5 / 7 * width))
    assert np.abs(blended[hot] - original[hot]).sum() > 60  # coloured where hot
    np.testing.assert_array_equal(blended[-3:, :3], original[-3:, :3])  # untouched where cold
    assert tuple(blended[0, 5]) == (255, 0, 0)  # the box's outline
    assert max(heatmap_image(Path(probe["path"]), {"heatmap": heat.tolist()}, max_side=20).size) == 20
