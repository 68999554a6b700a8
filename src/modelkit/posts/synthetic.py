"""Synthetic posts with a known answer: which category, which part, which place.

Parts come from the modalities' planters (:func:`modelkit.data.synthetic.plant`), so this module
knows no modality. A post is one of four kinds:

- ``clean``: no signal anywhere;
- ``single``: a category's full signal in exactly one part: a span of the body, one of the
  pictures, or a time range of the video (``planted`` says which and where);
- ``split``: a borderline hint of the same category in the body *and* in one picture, each below
  a member's threshold alone (labelled with the category: together they are a violation);
- ``half``: one borderline hint alone (clean: what a fusion must not flag).

Rows: ``{"id", "account_id", "text": {"title", "body"}, "images", "video"?, "labels", "kind",
"planted"?}``, paths relative to the manifest's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.synthetic import plant, write_jsonl

DEFAULT_KINDS = {"clean": 0.3, "single": 0.5, "split": 0.1, "half": 0.1}


def make_synthetic_posts(
    directory: str | Path,
    count: int = 100,
    categories: Sequence[str] = ("pornography", "violence", "superstition"),
    *,
    kinds: Mapping[str, float] = DEFAULT_KINDS,
    images: tuple[int, int] = (1, 4),
    video_fraction: float = 0.3,
    accounts: int = 20,
    image_size: int = 48,
    video_options: Mapping[str, Any] | None = None,
    seed: int = 0,
    prefix: str = "post",
) -> list[dict]:
    """Write ``count`` posts' pictures and videos under ``directory/media/`` and return their rows
    (see the module docstring). ``kinds``: the share of each kind; ``images``: the range of
    pictures per post; ``video_fraction``: the share of posts with a video."""
    unknown = sorted(set(kinds) - set(DEFAULT_KINDS))
    if unknown:
        raise ValueError(f"kinds: unknown {', '.join(unknown)}; use {', '.join(DEFAULT_KINDS)}")
    directory = Path(directory)
    media = directory / "media"
    media.mkdir(parents=True, exist_ok=True)
    names = list(kinds)
    shares = np.array([kinds[k] for k in names], dtype=float)
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(count):
        post_rng = np.random.default_rng([seed, n])  # a post depends on its number only
        kind = names[int(rng.choice(len(names), p=shares / shares.sum()))]
        category = str(categories[int(post_rng.integers(len(categories)))])
        pictures = int(post_rng.integers(images[0], images[1] + 1))
        has_video = post_rng.random() < video_fraction
        targets = ["text.body"] + [f"images[{i}]" for i in range(pictures)] + (["video"] if has_video else [])
        strength: dict[str, str] = {}  # part -> "full" | "borderline"
        if kind == "single":
            strength[targets[int(post_rng.integers(len(targets)))]] = "full"
        elif kind == "split" and pictures:
            strength = {"text.body": "borderline", f"images[{int(post_rng.integers(pictures))}]": "borderline"}
        elif kind == "half":
            choices = ["text.body"] + [f"images[{i}]" for i in range(pictures)]
            strength[choices[int(post_rng.integers(len(choices)))]] = "borderline"
        row: dict[str, Any] = {"id": f"{prefix}-{n}", "account_id": f"acct-{int(post_rng.integers(accounts))}"}
        planted = None

        def part(name: str, modality: str, path: Path | None = None, **options: Any) -> Any:
            nonlocal planted
            level = strength.get(name)
            made = plant(modality, post_rng, category if level else None, level == "borderline", path, **options)
            if level == "full":
                planted = {"part": name, "category": category, **made["location"]}
            return made["value"]

        title = part("text.title", "text")
        row["text"] = {"title": title, "body": part("text.body", "text")}
        row["images"] = []
        for i in range(pictures):
            part(f"images[{i}]", "image", media / f"{prefix}-{n}-{i}.png", size=image_size)
            row["images"].append(f"media/{prefix}-{n}-{i}.png")
        if has_video:
            part("video", "video", media / f"{prefix}-{n}.mp4", **(video_options or {}))
            row["video"] = f"media/{prefix}-{n}.mp4"
        row["labels"] = [category] if kind in ("single", "split") and strength else []
        row["kind"] = kind if strength or kind == "clean" else "clean"
        if planted is not None:
            row["planted"] = planted
        rows.append(row)
    return rows


def write_synthetic_posts(directory: str | Path, splits: Mapping[str, int], seed: int = 0, **options: Any
                          ) -> dict[str, Path]:
    """``<split>.jsonl`` of :func:`make_synthetic_posts` rows for each split (``{"train": 200, ...}``),
    sharing ``directory/media/``; a split's posts are named after it."""
    directory = Path(directory)
    return {split: write_jsonl(directory / f"{split}.jsonl",
                               make_synthetic_posts(directory, count, seed=seed + k, prefix=split, **options))
            for k, (split, count) in enumerate(splits.items())}
