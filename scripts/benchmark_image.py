#!/usr/bin/env python
"""Image scoring throughput on the CPU: a naive PyTorch loop against modelkit's batched paths.

One run, one checkpoint, the same picture files for every row; images/s is best of --repeat full
passes over the files (the rows take turns in each round, so a load change on the machine hits
them alike), after a warm-up call on the first few files that is timed on its own:

    naive PyTorch loop   one file at a time, as without the library: Pillow, torchvision's Resize,
                         CenterCrop, ToTensor, Normalize, then the model under torch.no_grad(),
                         contiguous NCHW weights
    batched PyTorch      modelkit.load(ckpt, backend="torch").predict_proba(paths, batch_size=32,
                         num_workers=2): DataLoader workers decode, inference_mode, channels_last
    batched ONNX Runtime the same call with backend="onnx" (the warm-up call exports the model)
    CPU default          modelkit.load(ckpt): backend "auto", which picks ONNX Runtime for CNNs on a CPU
    OCR                  RapidOCR through the image_ocr processor on rendered-text pictures, with the
                         OCR cache off, then the same pictures read again from a filled cache

The checkpoint is made here without training (ImageNet backbone weights from the offline weight
package where there is one, a random head). Without --images, --count varied 640x480 JPEGs (a
quarter of them portrait) are generated with a fixed seed. Torch and ONNX Runtime use their
default thread counts (all cores).

    python scripts/benchmark_image.py [--arch mobilenet_v2] [--count 256] [--size 640x480] [--images DIR] \
        [--repeat 3] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
NAIVE = "naive PyTorch loop"


def make_pictures(directory: Path, count: int, seed: int, size: tuple[int, int]) -> list[str]:
    """Photo-like stand-ins: smooth gradients under noise and random shapes, so JPEG decoding and
    resizing cost about what they cost on real photographs."""
    from PIL import Image, ImageDraw, ImageFilter

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        width, height = size if rng.random() < 0.75 else size[::-1]
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        start, dx, dy = rng.uniform(0, 255, 3), rng.uniform(-0.4, 0.4, 3), rng.uniform(-0.4, 0.4, 3)
        pixels = start + x[..., None] * dx + y[..., None] * dy + rng.normal(0, rng.uniform(2, 20), (height, width, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 12))):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            x1, y1 = x0 + rng.integers(width // 32, width // 2), y0 + rng.integers(height // 32, height // 2)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            kind = rng.integers(3)
            if kind == 0:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            elif kind == 1:
                draw.rectangle((x0, y0, x1, y1), fill=colour)
            else:
                draw.polygon([tuple(int(v) for v in rng.integers(0, (width, height))) for _ in range(5)], fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))
        path = directory / f"{index:05d}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


def user_pictures(directory: Path, count: int | None) -> list[str]:
    paths = sorted(str(p) for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"--images {directory}: no {', '.join(sorted(IMAGE_SUFFIXES))} files")
    return paths[:count] if count else paths


def make_checkpoint(directory: Path, arch: str) -> tuple[Path, str | None]:
    import modelkit
    from modelkit.image.pretrained import WEIGHT_PACKAGES

    taxonomy = modelkit.Taxonomy.load()
    weights = next((name for name, package in WEIGHT_PACKAGES.items() if package.arch == arch), None)
    model = modelkit.create_model("image", taxonomy, arch=arch, weights=weights)
    processor = modelkit.create_processor("image")
    return modelkit.Classifier(model, processor, modelkit.Policy(taxonomy), device="cpu").save(directory), weights


def naive_scorer(checkpoint: Path) -> Callable[[list[str]], np.ndarray]:
    """What a user without the library writes: Pillow and the usual torchvision transforms, one
    picture at a time, the model in plain NCHW (channels_last is one of the things the library
    adds). The same weights and the same preprocessing numbers as the checkpoint."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from modelkit.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model, config, policy = ckpt.model, ckpt.processor.config, ckpt.policy
    model.config.channels_last = False
    model.to(memory_format=torch.contiguous_format).eval()
    transform = transforms.Compose([transforms.Resize(config.resize), transforms.CenterCrop(config.crop),
                                    transforms.ToTensor(), transforms.Normalize(config.mean, config.std)])

    def score(paths: list[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for path in paths:
                with Image.open(path) as image:
                    pixels = transform(image.convert("RGB"))
                rows.append(model(pixel_values=pixels.unsqueeze(0)).numpy())
        return policy.scores(np.concatenate(rows))

    return score


def timed(score: Callable[[list[str]], np.ndarray], paths: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    scores = score(paths)
    return time.perf_counter() - started, scores


def bench_classifiers(checkpoint: Path, paths: list[str], args: argparse.Namespace) -> dict:
    """Scores from every row are compared with the naive loop's: a fast path that scores differently
    (a broken export) would show here, not only in its speed."""
    import modelkit

    def batched(clf) -> Callable[[list[str]], np.ndarray]:
        return lambda files: clf.predict_proba(files, batch_size=args.batch_size, num_workers=args.workers,
                                               progress=False)

    classifiers = {
        "batched PyTorch": modelkit.load(checkpoint, device="cpu", backend="torch"),
        "batched ONNX Runtime": modelkit.load(checkpoint, device="cpu", backend="onnx"),
        "CPU default": modelkit.load(checkpoint),
    }
    scorers = {NAIVE: naive_scorer(checkpoint), **{name: batched(clf) for name, clf in classifiers.items()}}
    warm = paths[: args.warmup]
    results = {name: {"warmup_s": timed(score, warm)[0], "seconds": float("inf")} for name, score in scorers.items()}
    reference = None
    for _ in range(args.repeat):
        for name, score in scorers.items():
            seconds, scores = timed(score, paths)
            if name == NAIVE:
                reference = scores
            results[name]["seconds"] = min(results[name]["seconds"], seconds)
            results[name]["max_score_diff"] = float(np.max(np.abs(scores - reference)))
    for result in results.values():
        result["images_per_s"] = len(paths) / result["seconds"]
    results[NAIVE].update(backend="torch", device="cpu")
    for name, clf in classifiers.items():
        # Read after the runs: "auto" falls back to PyTorch when the export fails on the first batch.
        results[name].update(backend="onnxruntime" if clf.runner.uses_onnx else "torch", device=str(clf.device))
    return results


def bench_ocr(directory: Path, count: int, repeat: int) -> dict:
    """Uncached: best of ``repeat`` passes with the cache off. Cached: a pass that fills a fresh
    cache, then a timed pass that reads it (what every epoch after the first costs)."""
    from modelkit.image.rendered import render_rows
    from modelkit.text.synthetic import make_synthetic
    from modelkit.processing import create_processor

    rows = make_synthetic(rows_per_category=3, clean_rows=count, seed=0)[:count]
    paths = [str(directory / row["image"]) for row in render_rows(rows, directory, seed=0)]
    processor = create_processor("image_ocr")
    os.environ["MODELKIT_OCR_CACHE"] = "off"
    started = time.perf_counter()
    processor.read_text(paths[0])  # loads the OCR models
    warmup = time.perf_counter() - started
    uncached = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        texts = [processor.read_text(path)[0] for path in paths]
        uncached = min(uncached, time.perf_counter() - started)
    os.environ["MODELKIT_OCR_CACHE"] = str(directory / "cache")
    for path in paths:
        processor.read_text(path)
    started = time.perf_counter()
    cached_texts = [processor.read_text(path)[0] for path in paths]
    cached = time.perf_counter() - started
    if cached_texts != texts:
        raise RuntimeError("OCR read different text from its cache than without it")
    return {
        "OCR, cache off": {"seconds": uncached, "images_per_s": count / uncached, "warmup_s": warmup},
        "OCR, cached (second pass)": {"seconds": cached, "images_per_s": count / cached},
        "ocr_pictures": count,
        "ocr_chars_read": sum(len(text) for text in texts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="mobilenet_v2",
                        help="image model architecture: mobilenet_v2, small_cnn, timm/tf_efficientnet_lite0, ...")
    parser.add_argument("--images", help="score the pictures in this folder instead of generated ones")
    parser.add_argument("--count", type=int, help="pictures to generate (default 256), or the first N of --images")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of generated pictures (a quarter portrait)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader decode workers of the batched rows")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per row; the fastest counts")
    parser.add_argument("--warmup", type=int, default=8, help="files in the warm-up call, timed apart from images/s")
    parser.add_argument("--ocr-count", type=int, default=32, help="rendered-text pictures for the OCR rows (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the results here (JSON)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 1 or args.batch_size < 1:
        parser.error("--repeat, --warmup and --batch-size must be >= 1")
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(size) == 2 and min(size) >= 32
    except (ValueError, AssertionError):
        parser.error(f"--size: expected WIDTHxHEIGHT such as 640x480, got {args.size!r}")

    import onnxruntime
    import torch

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="modelkit-bench-image-") as scratch_dir:
        scratch = Path(scratch_dir)
        if args.images:
            paths = user_pictures(Path(args.images), args.count)
        else:
            paths = make_pictures(scratch / "pictures", args.count or 256, args.seed, size)
        checkpoint, weights = make_checkpoint(scratch / "checkpoint", args.arch)
        results = bench_classifiers(checkpoint, paths, args)
        ocr = bench_ocr(scratch / "ocr", args.ocr_count, args.repeat) if args.ocr_count > 0 else {}
    load_after = os.getloadavg()[0]

    naive = results[NAIVE]["images_per_s"]
    source = args.images or f"generated {args.size} JPEGs (a quarter portrait, quality 90, seed {args.seed})"
    print(f"\n{args.arch} ({weights or 'random weights'}), 224x224 crop, {len(paths)} pictures: {source}")
    print(f"CPU cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()} (default), ONNX Runtime "
          f"{onnxruntime.__version__}: default threads; batch {args.batch_size}, {args.workers} decode workers; "
          f"best of {args.repeat}; 1-minute load average {load_before:.1f} before, {load_after:.1f} after")
    default = results["CPU default"]
    print(f"CPU default (modelkit.load(ckpt), backend auto) picked: {default['backend']} on {default['device']}\n")
    print(f"| path | images/s | seconds | ratio to naive | warm-up, first {args.warmup} (s) "
          "| max abs score diff to naive |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} ({r['backend']}) | {r['images_per_s']:.1f} | {r['seconds']:.3g} | "
              f"{r['images_per_s'] / naive:.2f}x | {r['warmup_s']:.2f} | {r['max_score_diff']:.1e} |")
    for name in ("OCR, cache off", "OCR, cached (second pass)"):
        if name in ocr:
            r = ocr[name]
            warmup = f"{r['warmup_s']:.2f} (1 picture)" if "warmup_s" in r else "—"
            print(f"| {name} | {r['images_per_s']:.1f} | {r['seconds']:.3g} | — | {warmup} | — |")
    default_ratio = default["images_per_s"] / naive
    print(f"\nCPU default / naive PyTorch: {default_ratio:.2f}x. The ONNX warm-up includes the one-off export "
          "and parity check.")
    if ocr:
        speedup = ocr["OCR, cached (second pass)"]["images_per_s"] / ocr["OCR, cache off"]["images_per_s"]
        print(f"OCR rows: {ocr['ocr_pictures']} rendered-text pictures (no ratio: a different task); "
              f"cached / uncached: {speedup:.0f}x")
    if args.output:
        record = {"arch": args.arch, "weights": weights, "pictures": len(paths), "source": source,
                  "batch_size": args.batch_size, "workers": args.workers, "repeat": args.repeat,
                  "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                  "load_average": [load_before, load_after], "torch": torch.__version__,
                  "onnxruntime": onnxruntime.__version__, "default_backend": default["backend"],
                  "default_over_naive": default_ratio,
                  "rows": results, "ocr": ocr}
        Path(args.output).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
