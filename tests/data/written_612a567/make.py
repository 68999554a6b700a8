"""Written once with the code of 612a567 (before the output seam): tiny checkpoints and their outputs on
the golden inputs. Kept to show they load and score the same with later code; not run by the tests.

    git worktree add /tmp/wt612 612a567
    PYTHONPATH=/tmp/wt612/src .venv/bin/python tests/data/written_612a567/make.py . tests/data/written_612a567 /tmp/work
"""
import json, shutil, sys
from pathlib import Path
import modelkit
import modelkit.text, modelkit.image, modelkit.video  # the installed entry points name newer modules
from modelkit.data.synthetic import write_synthetic_splits, write_synthetic_image_splits

repo, out, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
golden = repo / "tests" / "data" / "golden"
print("modelkit from", modelkit.__file__)
splits = write_synthetic_splits(work / "text-data", seed=0)
text = modelkit.train({"output_dir": str(work / "text-model"),
    "data": {"train": str(splits["train"]), "dev": str(splits["dev"])},
    "model": {"name": "ngram", "embed_dim": 8}, "processor": {"features": {"num_buckets": 4096}},
    "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.02}})
isplits = write_synthetic_image_splits(work / "image-data", seed=0, rows_per_category=4, clean_rows=8, size=16,
                                       categories=["gore", "violence"])
image = modelkit.train({"data": {"train": str(isplits["train"]), "dev": str(isplits["dev"]), "inputs": {"image": "image"}},
    "categories": ["gore", "violence"], "model": {"name": "image", "arch": "small_cnn"},
    "processor": {"resize": 16, "crop": 16}, "train": {"epochs": 1, "batch_size": 8}, "output_dir": str(work / "image-model")})
for name, written in (("text", text), ("image", image)):
    shutil.copytree(written, out / name / "checkpoint", ignore=shutil.ignore_patterns(
        "last", "*.jsonl", "*.html", "run_config.yaml", "README.md"))
from modelkit.video import video_classifier
cases = {
    "text": (modelkit.load(out / "text" / "checkpoint"), json.loads((golden / "text" / "inputs.json").read_text())),
    "image": (modelkit.load(out / "image" / "checkpoint"),
              [str(golden / "image" / p) for p in json.loads((golden / "image" / "inputs.json").read_text())]),
    "video": (video_classifier(out / "image" / "checkpoint", sampler={"fps": 2, "size": 16}),
              [str(golden / "video" / p) for p in json.loads((golden / "video" / "inputs.json").read_text())]),
}
for name, (clf, inputs) in cases.items():
    (out / name).mkdir(parents=True, exist_ok=True)
    outputs = [p.to_dict() for p in clf.predict(inputs)]
    (out / name / "outputs.json").write_text(json.dumps(outputs, ensure_ascii=False, indent=1), encoding="utf-8")
    print(name, json.dumps(outputs[0], ensure_ascii=False)[:200])
