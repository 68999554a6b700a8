#!/usr/bin/env python
"""Video benchmark on the CPU: modelkit's frame sampler against a naive reader, its peak memory, and
end-to-end videos per minute.

Test videos are generated once and cached under --work: H.264 (libx264, preset veryfast -- chosen
for encoding time on small machines -- crf 23, libx264's default GOP: keyint 250 with scene-cut
keyframes, or --gop N; B-frames on), 1280x720 at 30 fps, --minutes long plus a short one with the same
settings; the content scrolls a textured background, moves a box and cuts every 20 s to a new
texture, alternately dark and bright. Rows, each one pass over the long video in this process
(wall time, and CPU time of all threads, steadier on a shared machine):

    naive reader          every frame decoded with PyAV's defaults and converted to an RGB array
    decode only           every frame decoded (frame + slice threads), no conversion: the floor
                          for any strategy that must look at every frame
    fps=1 / every_n=30 / keyframes / scene
                          sample_frames with size 256 and max_frames None (about one frame a
                          second, except keyframes and scene, which take what the video has)
    fps=1, max_frames=64  the default configuration

Peak memory: sample_frames (fps=1, max_frames 64 and None; frames dropped as they come; and, as a
control, fps=1 with every frame kept in a list) on the short and on the long video, each in a
fresh subprocess: its ru_maxrss. Importing modelkit (torch)
peaks at several hundred MB, which would hide the sampler, so the child resets its peak after the
imports (/proc/self/clear_refs) and reports the baseline it sampled from; "growth" is peak minus
baseline, the memory sampling itself took.

End to end: ``video_classifier`` over an (untrained) image checkpoint predicts --videos copies of
the short video (fps=1, max_frames 64, batch 1, 2 decode workers): a MobileNetV2 frame model
(ONNX Runtime on the CPU) and OCR of every sampled 720p frame scored by an n-gram text model.

    python scripts/benchmark_video.py [--minutes 10] [--gop N] [--videos 3] [--work runs/benchmark_video] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, RATE = 1280, 720, 30
PRESET = "veryfast"
CUT_SECONDS = 20
SAMPLING_ROWS = {  # label -> SamplerConfig fields
    "fps=1": {"strategy": "fps", "fps": 1.0, "max_frames": None},
    "every_n=30": {"strategy": "every_n", "every_n": 30, "max_frames": None},
    "keyframes": {"strategy": "keyframes", "max_frames": None},
    "scene": {"strategy": "scene", "max_frames": None},
    "fps=1, max_frames=64": {"strategy": "fps", "fps": 1.0, "max_frames": 64},
}
# label -> (SamplerConfig fields, whether the frames are kept). The last row is a control: keeping
# every frame must show growth with length, or the measurement could not see any.
MEMORY_ROWS = {
    "fps=1, max_frames=64": (SAMPLING_ROWS["fps=1, max_frames=64"], False),
    "fps=1": (SAMPLING_ROWS["fps=1"], False),
    "fps=1, frames kept (control)": (SAMPLING_ROWS["fps=1"], True),
}


# ------------------------------------------------------------------------------------------
# Test videos
# ------------------------------------------------------------------------------------------
def _texture(seed: int) -> np.ndarray:
    """A background twice the frame's width: smooth colour blobs under fine grain (photo-like, so
    the encoder spends bits about as on camera footage); odd seeds dark, even ones bright, so that
    each cut is a scene change."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    blobs = rng.integers(0, 256, (HEIGHT // 16, 2 * WIDTH // 16, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(blobs).resize((2 * WIDTH, HEIGHT), Image.BILINEAR), dtype=np.int32)
    pixels = smooth * 3 // 8 + rng.integers(0, 40, (HEIGHT, 2 * WIDTH, 1), dtype=np.int32)
    return (pixels if seed % 2 else 255 - pixels).astype(np.uint8)


def _pictures(frames: int) -> Iterator[np.ndarray]:
    texture, scene = None, -1
    for index in range(frames):
        if index // (CUT_SECONDS * RATE) != scene:
            scene = index // (CUT_SECONDS * RATE)
            texture = _texture(scene)
        offset = (4 * index) % WIDTH
        pixels = texture[:, offset : offset + WIDTH].copy()
        left = (8 * index) % (WIDTH - 200)
        pixels[HEIGHT // 2 - 100 : HEIGHT // 2 + 100, left : left + 200] = (255, 255, 0)
        yield pixels


def make_video(work: Path, minutes: float, gop: int | None) -> Path:
    """The cached test video of ``minutes`` (written on first use); ``gop``: keyframe interval in
    frames, None for libx264's default."""
    gop_name = f"_g{gop}" if gop else ""
    path = work / f"moving_{WIDTH}x{HEIGHT}_{RATE}fps_{minutes:g}min_x264-{PRESET}{gop_name}.mp4"
    if path.is_file():
        return path
    work.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    frames = round(minutes * 60 * RATE)
    print(f"encoding {path.name}: {frames} frames (libx264 preset {PRESET}, "
          f"{f'GOP {gop}' if gop else 'default GOP'})...", flush=True)
    start = time.perf_counter()
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"preset": PRESET, "crf": "23"})
        if gop:
            stream.codec_context.gop_size = gop
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for pixels in _pictures(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    partial.rename(path)
    print(f"  {time.perf_counter() - start:.0f} s, {path.stat().st_size / 1e6:.1f} MB", flush=True)
    return path


def describe(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keyframes = sum(entry.is_keyframe for entry in stream.index_entries)
        return {"file": path.name, "frames": stream.frames, "seconds": float(stream.duration * stream.time_base),
                "keyframes": keyframes, "megabytes": round(path.stat().st_size / 1e6, 1),
                "mbit_per_s": round(path.stat().st_size * 8 / 1e6 / float(stream.duration * stream.time_base), 2)}


# ------------------------------------------------------------------------------------------
# Sampling speed
# ------------------------------------------------------------------------------------------
def naive_reader(path: Path) -> int:
    frames = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")
            frames += 1
    return frames


def decode_only(path: Path) -> int:
    frames = 0
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.thread_type = "AUTO"
        for _ in container.decode(video=0):
            frames += 1
    return frames


def sampler(fields: dict) -> Callable[[Path], int]:
    from modelkit.video.sampler import SamplerConfig, sample_frames

    config = SamplerConfig(size=256, **fields)
    return lambda path: sum(1 for _ in sample_frames(path, config))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, run: Callable[[Path], int], path: Path, video_frames: int) -> dict:
    start, cpu = time.perf_counter(), _cpu_seconds()
    returned = run(path)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return {"row": label, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "video_frames_per_s": round(video_frames / wall, 1), "returned": returned}


def sampling_rows(path: Path, video_frames: int) -> list[dict]:
    rows = [timed("naive reader", naive_reader, path, video_frames),
            timed("decode only", decode_only, path, video_frames)]
    rows += [timed(label, sampler(fields), path, video_frames) for label, fields in SAMPLING_ROWS.items()]
    for row in rows:
        row["speedup_vs_naive"] = round(rows[0]["wall_s"] / row["wall_s"], 2)
        row["cpu_speedup_vs_naive"] = round(rows[0]["cpu_s"] / row["cpu_s"], 2)
    return rows


# ------------------------------------------------------------------------------------------
# Peak memory (one subprocess per measurement)
# ------------------------------------------------------------------------------------------
def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(path: str, fields: str, keep: str) -> None:
    """Runs in the subprocess: sample (dropping or keeping the frames), print the peak RSS as JSON."""
    from modelkit.video.sampler import SamplerConfig, sample_frames

    imports_peak = _max_rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS (Linux >= 4.0)
    baseline = _max_rss_mb()
    frames = sample_frames(path, SamplerConfig(size=256, **json.loads(fields)))
    returned = len(list(frames)) if keep == "keep" else sum(1 for _ in frames)
    print(json.dumps({"imports_peak_mb": round(imports_peak, 1), "baseline_mb": round(baseline, 1),
                      "peak_mb": round(_max_rss_mb(), 1), "returned": returned}))


def peak_memory(path: Path, fields: dict, keep: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(path), json.dumps(fields), "keep" if keep else "drop"]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_rows(short: Path, long: Path) -> list[dict]:
    rows = []
    for label, (fields, keep) in MEMORY_ROWS.items():
        small, large = peak_memory(short, fields, keep), peak_memory(long, fields, keep)
        growth = [run["peak_mb"] - run["baseline_mb"] for run in (small, large)]
        rows.append({"row": label, "short": small, "long": large,
                     "peak_ratio": round(large["peak_mb"] / small["peak_mb"], 3),
                     "growth_mb": [round(g, 1) for g in growth],
                     "growth_ratio": round(growth[1] / growth[0], 3) if growth[0] > 0 else None})
    return rows


# ------------------------------------------------------------------------------------------
# End to end: Classifier.predict on videos (sampling, frame decoding, frame model, pooling, segments)
# ------------------------------------------------------------------------------------------
def _frame_checkpoints(folder: Path) -> dict[str, tuple[Path, dict]]:
    """Image checkpoints to score frames with (untrained: the speed is the architecture's), and the
    sampler each runs with: label -> (checkpoint, sampler fields)."""
    import modelkit
    from modelkit.image import ocr_classifier
    from modelkit.policy import Policy

    taxonomy = modelkit.Taxonomy.load("default").enabled()
    image = modelkit.create_processor("image", resize=256, crop=224)
    cnn = modelkit.Classifier(modelkit.create_model("image", taxonomy, processor=image, arch="mobilenet_v2"),
                              image, Policy(taxonomy))
    text = modelkit.create_processor("text_ngram")
    ngram = modelkit.Classifier(modelkit.create_model("ngram", taxonomy, processor=text), text, Policy(taxonomy))
    ocr = ocr_classifier(ngram.save(folder / "ngram"))
    return {
        "MobileNetV2 224 px (ONNX Runtime)": (cnn.save(folder / "mobilenet_v2"), {"fps": 1.0, "size": 256}),
        "OCR (RapidOCR) + ngram, 720p frames": (ocr.save(folder / "ocr"), {"fps": 1.0, "size": None}),
    }


def end_to_end_rows(video: Path, work: Path, copies: int) -> list[dict]:
    import os
    import tempfile

    from modelkit.video import video_classifier

    os.environ["MODELKIT_OCR_CACHE"] = "off"  # the copies are the same video: no cache hits
    paths = []
    for n in range(copies):
        path = work / f"copy{n}_{video.name}"
        if not path.exists():
            os.link(video, path)
        paths.append(str(path))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, (checkpoint, sampler_fields) in _frame_checkpoints(Path(folder)).items():
            clf = video_classifier(checkpoint, sampler={**sampler_fields, "max_frames": 64})
            clf.predict(paths[:1])  # warm up: ONNX export, OCR model load
            start, cpu = time.perf_counter(), _cpu_seconds()
            predictions = clf.predict(paths, batch_size=1, num_workers=2)
            wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
            frames = sum(len(p.parts[0]) for p in predictions)
            rows.append({"row": label, "videos": len(paths), "frames": frames, "wall_s": round(wall, 2),
                         "videos_per_min": round(60 * len(paths) / wall, 2),
                         "frames_per_s": round(frames / wall, 1), "main_process_cpu_s": round(cpu, 2)})
    return rows


# ------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------
def print_end_to_end(rows: list[dict], video: dict) -> None:
    print(f"\nEnd to end: Classifier.predict on copies of {video['file']} ({video['seconds']:.0f} s each), "
          "fps=1, max_frames 64, 2 decode workers")
    print(f"{'frame model':<40}{'videos':>8}{'frames':>8}{'wall s':>8}{'videos/min':>12}{'frames/s':>10}")
    for row in rows:
        print(f"{row['row']:<40}{row['videos']:>8}{row['frames']:>8}{row['wall_s']:>8.2f}"
              f"{row['videos_per_min']:>12.2f}{row['frames_per_s']:>10.1f}")


def print_sampling(rows: list[dict], video: dict) -> None:
    print(f"\nSampling: {video['file']} ({video['frames']} frames, {video['seconds']:.0f} s, "
          f"{video['keyframes']} keyframes, {video['mbit_per_s']} Mbit/s), one pass per row")
    print(f"{'row':<24}{'wall s':>8}{'video fr/s':>12}{'returned':>10}{'vs naive':>10}{'CPU s':>8}{'CPU vs naive':>14}")
    for row in rows:
        print(f"{row['row']:<24}{row['wall_s']:>8.2f}{row['video_frames_per_s']:>12.1f}{row['returned']:>10}"
              f"{row['speedup_vs_naive']:>9.2f}x{row['cpu_s']:>8.2f}{row['cpu_speedup_vs_naive']:>13.2f}x")


def print_memory(rows: list[dict], short: dict, long: dict) -> None:
    print(f"\nPeak RSS (MB), fresh subprocess each: {short['file']} vs {long['file']}")
    print(f"{'row':<30}{'baseline':>10}{'short':>8}{'long':>8}{'long/short':>12}"
          f"{'growth short':>14}{'growth long':>13}{'ratio':>8}")
    for row in rows:
        ratio = "n/a" if row["growth_ratio"] is None else f"{row['growth_ratio']:.2f}"
        print(f"{row['row']:<30}{row['long']['baseline_mb']:>10.0f}{row['short']['peak_mb']:>8.0f}"
              f"{row['long']['peak_mb']:>8.0f}{row['peak_ratio']:>12.3f}{row['growth_mb'][0]:>14.1f}"
              f"{row['growth_mb'][1]:>13.1f}{ratio:>8}")
    print("(peak RSS of the sampling, after resetting the peak once the imports were done; growth = peak - baseline)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long video (default 10)")
    parser.add_argument("--short-minutes", type=float, default=None,
                        help="length of the short video (default: 1, or minutes / 10 when that is shorter)")
    parser.add_argument("--gop", type=int, default=None,
                        help="keyframe interval in frames (default: libx264's own, 250 with scene cuts)")
    parser.add_argument("--work", type=Path, default=Path("runs/benchmark_video"), help="cache of test videos")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: WORK/results.json)")
    parser.add_argument("--videos", type=int, default=3, help="copies of the short video scored end to end")
    parser.add_argument("--child", nargs=3, metavar=("VIDEO", "FIELDS", "KEEP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    short_minutes = args.short_minutes or min(1.0, args.minutes / 10)
    long_video = make_video(args.work, args.minutes, args.gop)
    short_video = make_video(args.work, short_minutes, args.gop)
    long_info, short_info = describe(long_video), describe(short_video)
    results: dict = {"machine": {"python": platform.python_version(), "pyav": av.__version__,
                                 "ffmpeg": av.ffmpeg_version_info, "cpus": _cpu_count()},
                     "encoding": {"codec": "libx264", "preset": PRESET, "crf": 23,
                                  "gop": args.gop or "libx264 default (keyint 250, scene cuts)"},
                     "videos": {"long": long_info, "short": short_info}}

    results["sampling"] = sampling_rows(long_video, long_info["frames"])
    print_sampling(results["sampling"], long_info)
    results["memory"] = memory_rows(short_video, long_video)
    print_memory(results["memory"], short_info, long_info)

    results["end_to_end"] = end_to_end_rows(short_video, args.work, args.videos)
    print_end_to_end(results["end_to_end"], short_info)

    out = args.out or args.work / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
