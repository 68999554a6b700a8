"""Memory is bounded by settings, never by the input (items 6, 7 and 8 of the hardening issue)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import modelkit
from modelkit import CheckpointError

from conftest import tiny_text_classifier, train_tiny_image_model

av = pytest.importorskip("av")


def _peak_rss_mb(code: str, timeout: float = 300) -> float:
    """Peak resident memory (MB) of a fresh interpreter running ``code`` (which must not print)."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import resource
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return float(result.stdout.strip().splitlines()[-1])


def _long_video(path: Path, minutes: float) -> Path:
    """``minutes`` of 160x120 video at one frame per second, each frame different."""
    frames = int(minutes * 60)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1, options={"preset": "ultrafast", "crf": "35"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        for index in range(frames):
            pixels = np.roll(base, index, axis=1)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def frame_checkpoint(tmp_path_factory) -> Path:
    return train_tiny_image_model(tmp_path_factory.mktemp("frames"), size=112)


@pytest.mark.slow
def test_video_memory_does_not_grow_with_its_length(frame_checkpoint, tmp_path):
    """Every frame of an hour of video is scored (max_frames=None), in the memory of a minute's."""
    code = """
        import sys
        from modelkit.video import video_classifier
        clf = video_classifier(sys.argv[1], sampler={{"fps": 1, "max_frames": None, "size": 112}},
                               aggregation="{aggregation}", backend="torch")
        prediction = clf.predict([sys.argv[2]])[0]
        assert prediction.error is None and prediction.evidence["frames"] == {frames}, prediction
    """
    measured = {}
    for minutes in (1, 60):
        video = _long_video(tmp_path / f"{minutes}min.mp4", minutes)
        for aggregation in ("max", "attention"):
            script = "import sys; sys.argv[1:] = [{!r}, {!r}]\n".format(str(frame_checkpoint), str(video))
            measured[minutes, aggregation] = _peak_rss_mb(
                script + textwrap.dedent(code).format(aggregation=aggregation, frames=minutes * 60))
    for aggregation in ("max", "attention"):
        assert measured[60, aggregation] <= 1.2 * measured[1, aggregation], measured


def test_long_video_scores_equal_one_batch_of_all_its_frames(frame_checkpoint, tmp_path):
    """Streaming changes memory, not results: pooled over windows of frames, a video scores what
    it scores when all its frames are pooled at once."""
    from modelkit.video import video_classifier

    video = _long_video(tmp_path / "clip.mp4", 5)  # 300 frames, several windows
    for aggregation in ("max", "mean", "topk_mean", "attention"):
        clf = video_classifier(frame_checkpoint, sampler={"fps": 1, "max_frames": None, "size": 112},
                               aggregation=aggregation, backend="torch")
        prediction = clf.predict([video])[0]
        times, part_scores = prediction.parts
        assert len(times) == 300 and part_scores.shape == (300, 1)
        from modelkit.video.models import pool_frames
        import torch

        logits = torch.logit(torch.from_numpy(part_scores.astype(np.float64))).float()
        alpha = clf.model.alpha if aggregation == "attention" else None
        pooled = pool_frames(logits, torch.zeros(300, dtype=torch.int64), aggregation, 3, alpha)
        np.testing.assert_allclose(prediction.scores["gore"], torch.sigmoid(pooled)[0, 0].item(), rtol=1e-4, atol=1e-5)


# -- item 7: a checkpoint's sizes are checked before anything is allocated --------------------------
def _edit(checkpoint: Path, change) -> None:
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("field, value", [("embed_dim", 10**9), ("num_buckets", 10**12), ("hidden_dim", 10**8)])
def test_oversized_ngram_config_is_refused_before_allocation(tiny_checkpoint, field, value):
    _edit(tiny_checkpoint, lambda c: c["model"].update({field: value}))
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"config.json: model: .*parameters.* model.safetensors holds"):
        modelkit.load(tiny_checkpoint)
    assert time.perf_counter() - started < 5


def test_oversized_transformer_config_is_refused_before_allocation(bert_checkpoint, tmp_path):
    checkpoint = modelkit.load(bert_checkpoint).save(tmp_path / "bert")
    for key, value in (("num_hidden_layers", 100_000), ("hidden_size", 10**6), ("vocab_size", 10**10)):
        _edit(checkpoint, lambda c: c["model"]["backbone_config"].update({key: value}))
        started = time.perf_counter()
        with pytest.raises(CheckpointError, match="parameters"):
            modelkit.load(checkpoint)
        assert time.perf_counter() - started < 5, key
        checkpoint = modelkit.load(bert_checkpoint).save(tmp_path / f"bert-{key}")


def test_oversized_graph_size_is_refused_before_allocation(tmp_path):
    from modelkit.inference.onnx import export_checkpoint

    source = tiny_text_classifier().save(tmp_path / "ckpt")
    exported, _ = export_checkpoint(source, tmp_path / "onnx")
    _edit(exported, lambda c: c["model"].update(graph_bytes=10**13))
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="model.safetensors holds"):
        modelkit.load(exported)
    assert time.perf_counter() - started < 5


# -- item 8: the pixel limit comes before any copy --------------------------------------------------------
def test_huge_array_is_refused_before_it_is_materialised(tmp_path):
    """A 20000 x 20000 broadcast view costs nothing until something copies it (1.2 GB)."""
    code = """
        import numpy as np
        from modelkit.image import decode_image
        from modelkit.processing import InputError
        huge = np.broadcast_to(np.zeros(1, np.uint8), (20000, 20000, 3))
        try:
            decode_image(huge)
        except InputError as err:
            assert "20000x20000" in str(err) and "over the limit" in str(err), err
        else:
            raise AssertionError("decoded")
    """
    baseline = _peak_rss_mb("import numpy as np\nfrom modelkit.image import decode_image\n")
    assert _peak_rss_mb(code) < baseline + 200
