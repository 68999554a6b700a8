#!/usr/bin/env python
"""Batch inference throughput: the engine against a naive loop and the transformers pipeline.

One run, the same model and data for every row of a section; items/s end to end (the engine
reads the input file and writes parquet shards; the others get the inputs as a list):

    ngram        the COLD recipe (trained here unless --ngram-checkpoint), COLD dev texts
    MiniLM       the bundled all-MiniLM-L6-v2 as a `transformer` model (random head: speed only),
                 COLD dev texts; also transformers.pipeline("text-classification", batch_size=32)
                 on the same backbone
    image        MobileNetV2 with offline ImageNet weights, 640x480 JPEGs (scripts/benchmark_image.py)

    naive loop       clf.predict([x]) one item at a time (a subset; it is slow)
    engine torch     modelkit.predict_files(..., backend torch)
    engine onnx      the checkpoint exported by `modelkit export` (ngram, MiniLM) or backend onnx (image)
    engine default   modelkit.load(ckpt) with backend auto, as `modelkit predict` runs it

Peak RSS: `modelkit predict` on 100,000 and 1,000,000 short texts (COLD dev repeated), each in
its own process.

    python scripts/benchmark_inference.py --data-root ../shared/data [--sections ngram,minilm,image,rss]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def log(message: str) -> None:
    print(message, flush=True)


def cold_dev(data_root: Path) -> tuple[Path, list[str]]:
    path = data_root / "cold" / "dev.jsonl"
    return path, [json.loads(line)["text"] for line in path.open(encoding="utf-8")]


def engine_rate(checkpoint: Path, source: Path, work: Path, name: str, warm_up: list, **options) -> float:
    import modelkit

    load = {key: options.pop(key) for key in ("backend",) if key in options}
    classifier = modelkit.load(checkpoint, device="cpu", **load)
    # Warm-up (the ONNX export on the first batch, allocators) on a few inputs, as a server would.
    list(classifier.predict_stream(warm_up, chunk_size=len(warm_up)))
    summary = modelkit.predict_files(classifier, source, work / name, progress=False, **options)
    if summary.errors:
        raise RuntimeError(f"{name}: {summary.errors} of {summary.rows} rows failed; see {work / name}")
    return summary.rows / summary.seconds


def naive_rate(checkpoint: Path, inputs: list, backend: str = "torch") -> float:
    import modelkit

    classifier = modelkit.load(checkpoint, device="cpu", backend=backend)
    classifier.predict(inputs[:2])
    started = time.perf_counter()
    for value in inputs:
        classifier.predict([value])
    return len(inputs) / (time.perf_counter() - started)


def table(title: str, rates: dict[str, float], baseline: str) -> dict:
    log(f"\n{title}")
    log(f"| path | items/s | x {baseline} |\n| --- | ---: | ---: |")
    for name, rate in rates.items():
        log(f"| {name} | {rate:,.1f} | {rate / rates[baseline]:.2f}x |")
    return {"items_per_second": rates, "baseline": baseline}


def bench_ngram(args: argparse.Namespace, work: Path) -> dict:
    import modelkit
    from modelkit.inference.onnx import export_checkpoint

    source, texts = cold_dev(args.data_root)
    checkpoint = args.ngram_checkpoint
    if checkpoint is None:
        checkpoint = work / "ngram"
        log("training configs/text/cold.yaml ...")
        modelkit.train(str(HERE.parent / "configs/text/cold.yaml"), [f"output_dir={checkpoint}"],
                       data_root=str(args.data_root))
    exported, _ = export_checkpoint(checkpoint, work / "ngram-onnx")
    rates = {"naive loop": naive_rate(checkpoint, texts[:1000])}
    for workers in (0, args.workers):
        rates[f"engine torch, {workers} workers"] = max(
            engine_rate(checkpoint, source, work, f"ngram-t{workers}-{r}", texts[:64], num_workers=workers, batch_size=1024)
            for r in range(args.repeat))
    rates["engine onnx"] = max(engine_rate(exported, source, work, f"ngram-o-{r}", texts[:64], num_workers=args.workers,
                                           batch_size=1024) for r in range(args.repeat))
    return table(f"ngram (COLD dev, {len(texts)} texts)", rates, "naive loop")


def minilm_checkpoint(work: Path) -> Path:
    import modelkit
    from modelkit.text.pretrained import resolve_backbone

    backbone = resolve_backbone("sentence-transformers/all-MiniLM-L6-v2")
    taxonomy = modelkit.Taxonomy.load().subset(["abuse"])
    model = modelkit.create_model("transformer", taxonomy, backbone=backbone)
    processor = modelkit.create_processor("text_tokenizer", tokenizer=backbone, max_length=128)
    return modelkit.Classifier(model, processor, modelkit.Policy(taxonomy), device="cpu").save(work / "minilm")


def pipeline_rate(texts: list[str]) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from modelkit.text.pretrained import resolve_backbone

    backbone = resolve_backbone("sentence-transformers/all-MiniLM-L6-v2")
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1)
    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(backbone),
                        device=-1, batch_size=32, truncation=True, max_length=128, function_to_apply="sigmoid")
    classify(texts[:32])
    with torch.inference_mode():
        started = time.perf_counter()
        classify(texts)
    return len(texts) / (time.perf_counter() - started)


def bench_minilm(args: argparse.Namespace, work: Path) -> dict:
    from modelkit.inference.onnx import export_checkpoint

    source, texts = cold_dev(args.data_root)
    checkpoint = minilm_checkpoint(work)
    exported, gap = export_checkpoint(checkpoint, work / "minilm-onnx")
    log(f"MiniLM exported, largest logit gap {gap:.2g}")
    rates = {"naive loop": naive_rate(checkpoint, texts[:300]),
             "transformers pipeline, batch 32": pipeline_rate(texts)}
    rates["engine torch"] = engine_rate(checkpoint, source, work, "minilm-t", texts[:64], batch_size=256,
                                        max_batch_tokens=args.max_batch_tokens)
    rates["engine onnx"] = engine_rate(exported, source, work, "minilm-o", texts[:64], batch_size=256,
                                       max_batch_tokens=args.max_batch_tokens)
    return table(f"MiniLM (COLD dev, {len(texts)} texts)", rates, "transformers pipeline, batch 32")


def bench_image(args: argparse.Namespace, work: Path) -> dict:
    import benchmark_image

    paths = benchmark_image.make_pictures(work / "pictures", args.images, seed=0, size=(640, 480))
    manifest = work / "pictures.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "image": p}) + "\n" for i, p in enumerate(paths)))
    checkpoint, _ = benchmark_image.make_checkpoint(work / "mobilenet", "mobilenet_v2")
    naive = benchmark_image.naive_scorer(checkpoint)
    naive(paths[:2])
    started = time.perf_counter()
    naive(paths[:64])
    rates = {"naive PyTorch loop": 64 / (time.perf_counter() - started)}
    for backend in ("torch", "onnx"):
        rates[f"engine {backend}, {args.workers} workers"] = engine_rate(
            checkpoint, manifest, work, f"image-{backend}", paths[:32], backend=backend, num_workers=args.workers, batch_size=32)
    return table(f"image (MobileNetV2 224, {len(paths)} 640x480 JPEGs)", rates, "naive PyTorch loop")


def bench_rss(args: argparse.Namespace, work: Path, checkpoint: Path) -> dict:
    _, texts = cold_dev(args.data_root)
    peaks = {}
    for rows in (100_000, 1_000_000):
        source = work / f"texts-{rows}.jsonl"
        with open(source, "w", encoding="utf-8") as handle:
            for index in range(rows):
                handle.write(json.dumps({"id": index, "text": texts[index % len(texts)]}, ensure_ascii=False) + "\n")
        code = ("import resource, sys; from modelkit.cli import main; code = main(sys.argv[1:]); "
                "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code, "predict", str(checkpoint), "--input", str(source),
                               "--output", str(work / f"rss-{rows}")], capture_output=True, text=True, check=True)
        peak_mb = int(done.stdout.split("peak")[-1]) / 1024
        peaks[rows] = {"peak_rss_mb": peak_mb, "seconds": time.perf_counter() - started}
        log(f"{rows:>9,} texts: peak RSS {peak_mb:,.0f} MB, {peaks[rows]['seconds']:.0f} s")
        source.unlink()
    ratio = peaks[1_000_000]["peak_rss_mb"] / peaks[100_000]["peak_rss_mb"]
    log(f"peak RSS 1M / 100k: {ratio:.3f}")
    return {"peaks": peaks, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--sections", default="ngram,minilm,image,rss")
    parser.add_argument("--ngram-checkpoint", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--max-batch-tokens", type=int, default=8192)
    parser.add_argument("--output", type=Path, default=Path("runs/benchmark_inference.json"))
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    results: dict = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "ngram" in sections:
            results["ngram"] = bench_ngram(args, work)
            args.ngram_checkpoint = args.ngram_checkpoint or work / "ngram"
        if "minilm" in sections:
            results["minilm"] = bench_minilm(args, work)
        if "image" in sections:
            results["image"] = bench_image(args, work)
        if "rss" in sections:
            if args.ngram_checkpoint is None:
                parser.error("the rss section needs --ngram-checkpoint or the ngram section")
            results["rss"] = bench_rss(args, work, args.ngram_checkpoint)
    results["max_rss_mb_of_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    log(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
