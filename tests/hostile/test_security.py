"""Hostile checkpoints: nothing read from one escapes its folder, nothing in one reaches a page unescaped.

Items 1 and 3 of the hardening issue (the OCR cache, item 2, is in test_ocr.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import modelkit
from modelkit import CheckpointError, ConfigError
from modelkit.cli import main

from conftest import tiny_text_classifier

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _offsets_graph(weights_location: str | None) -> "onnx.ModelProto":
    """logits = float(offsets)[:, None] @ W, a graph that reads the text_ngram batch's ``offsets``;
    W (1 x 2) is stored as external data at ``weights_location`` when given."""
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    weights = numpy_helper.from_array(np.full((1, 2), 0.5, np.float32), "W")
    if weights_location is not None:
        set_external_data(weights, location=weights_location)
        weights.ClearField("raw_data")
        weights.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("Cast", ["offsets"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("Unsqueeze", ["as_float", "axis"], ["column"]),
         helper.make_node("MatMul", ["column", "W"], ["logits"])],
        "offsets_to_logits",
        [helper.make_tensor_value_info("offsets", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])],
        initializer=[weights, numpy_helper.from_array(np.array([1], np.int64), "axis")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _exported_checkpoint(tmp_path, graph: bytes):
    from modelkit.models.exported import ExportedOnnxConfig, ExportedOnnxModel

    base = tiny_text_classifier()
    model = ExportedOnnxModel(ExportedOnnxConfig(inputs=["offsets"], exported_from="ngram", graph_bytes=len(graph)),
                              2, graph)
    return modelkit.Classifier(model, base.processor, base.policy).save(tmp_path / "exported")


def test_exported_graph_with_external_data_is_refused(tmp_path, monkeypatch):
    """A graph whose weights live in another file would be read from the working directory."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    np.full((1, 2), 0.5, np.float32).tofile(outside / "weights.bin")
    monkeypatch.chdir(outside)  # where ONNX Runtime looks for a relative location
    for location in ("weights.bin", "../elsewhere/weights.bin", str(outside / "weights.bin")):
        checkpoint = _exported_checkpoint(tmp_path / location.replace("/", "_"),
                                          _offsets_graph(location).SerializeToString())
        with pytest.raises(CheckpointError, match="external data"):
            modelkit.load(checkpoint).predict(["你好"])


def test_exported_graph_without_external_data_still_runs(tmp_path):
    checkpoint = _exported_checkpoint(tmp_path, _offsets_graph(None).SerializeToString())
    scores = modelkit.load(checkpoint).predict_proba(["你好", "hello"])
    assert scores.shape == (2, 2) and np.isfinite(scores).all()


def _peer_model(path):
    taxonomy = modelkit.Taxonomy.load().subset(["abuse", "violence"])
    return modelkit.create_model("onnx", taxonomy, path=str(path), output_labels=["a", "b"],
                                 outputs={"a": "abuse", "b": "violence"}, output_kind="logit")


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname", "link.bin"])
def test_peer_model_external_data_must_stay_in_its_folder(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.full((1, 2), 0.5, np.float32).tobytes())
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")  # a link that leads out of the folder
    path = folder / "peer.onnx"
    path.write_bytes(_offsets_graph(location).SerializeToString())
    with pytest.raises(ConfigError, match="external data .* outside"):
        _peer_model(path)


def test_peer_model_external_data_inside_its_folder_is_embedded(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    np.full((1, 2), 0.5, np.float32).tofile(folder / "weights.bin")
    path = folder / "peer.onnx"
    path.write_bytes(_offsets_graph("weights.bin").SerializeToString())
    model = _peer_model(path)
    stored = onnx.load_model_from_string(model.graph.numpy().tobytes())
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in stored.graph.initializer)


EVIL = "<script>alert(1)</script>"


def _evil_classifier():
    taxonomy = modelkit.Taxonomy((
        modelkit.Category("abuse", name_en=EVIL, name_zh="<img src=x onerror=alert(1)>",
                          description=f"</td>{EVIL}|broken|table"),
        modelkit.Category("violence", name_en="violence | with a pipe"),
    ), name=f"evil{EVIL}")
    classifier = tiny_text_classifier(taxonomy=taxonomy)
    classifier.metrics = {"dev": {"macro_f1": 0.5}, "note": f"```\n{EVIL}\n```"}
    classifier.extra = {"distilled_from": {"teacher": f"runs/{EVIL}", "teacher_model": EVIL, "teacher_dev": {},
                                           "labelled_rows": 1, "unlabelled_rows": 0, "gold_weight": 0.5,
                                           "temperature": 1.0}}
    return classifier


def _assert_inert(card: str) -> None:
    lowered = card.lower()
    assert "<script" not in lowered and "<img" not in lowered and "</td>" not in lowered, card
    table = [line for line in card.splitlines() if line.startswith("| abuse") or line.startswith("| violence")]
    assert len(table) == 2 and all(line.count(" | ") == 3 for line in table), table  # pipes cannot add columns


def test_model_card_escapes_text_from_configs(tmp_path):
    checkpoint = _evil_classifier().save(tmp_path / "evil")
    card = (checkpoint / "README.md").read_text(encoding="utf-8")
    _assert_inert(card)
    assert "&lt;script&gt;" in card  # escaped, not dropped: the reviewer still sees what was written
    assert modelkit.load(checkpoint).taxonomy["abuse"].name_en == EVIL  # the data itself is unchanged

    pushed = modelkit.push_to_hub(checkpoint, "org/evil", local_dir=tmp_path / "hub")
    _assert_inert((tmp_path / "hub" / "org" / "evil" / "README.md").read_text(encoding="utf-8"))
    assert pushed


def test_exported_model_card_escapes_text_from_configs(tmp_path):
    checkpoint = _evil_classifier().save(tmp_path / "evil")
    assert main(["export", str(checkpoint), "--output", str(tmp_path / "evil-onnx")]) == 0
    _assert_inert((tmp_path / "evil-onnx" / "README.md").read_text(encoding="utf-8"))
    assert json.loads((tmp_path / "evil-onnx" / "config.json").read_text())["taxonomy"]["categories"][0]["name_en"] == EVIL
