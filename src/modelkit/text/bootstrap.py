"""``modelkit bootstrap``: a first model for a category that has no labelled data yet.

1. **Weak labels.** Each rule of the config (keywords and/or regular expressions) votes on
   every row of an unlabelled corpus; a row with at least ``min_votes`` votes is a weak
   positive, the rest weak negatives. Rule coverage and pairwise agreement are reported.
2. **Seeds.** A handful of example texts (positive, optionally negative) join the training set,
   repeated ``seed_weight`` times so that a few rows still count against thousands.
3. **Train** the recipe's model on that set (a dev split is carved off for early stopping).
   With ``self_training: N``, N more fits follow, each adding the rows the previous fit flags
   to the positives: rules find only part of a category, and this lets the model carry what
   it learned from them to the rest.
4. **Ask.** The ``query_size`` corpus rows the model is least sure about (scores nearest the
   threshold) go to ``to_label.jsonl`` for a person to label (active learning).
5. **Retrain** with ``--labels FILE`` (rows ``{"id": ..., "label": 0 | 1}``): human labels
   override the weak ones and are repeated ``label_weight`` times. Repeat 4-5 as needed.

Every round writes its training set, checkpoint and questions under ``output_dir/round-N``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import write_json
from ..classifier import Classifier
from ..config import ConfigError, from_dict, read_mapping, to_dict
from ..data.records import DataError, column, load_table
from ..processing import check_input
from ..taxonomy import Taxonomy
from ..training.recipe import TrainConfig
from ..training.api import train
from .normalize import NormalizerConfig, TextNormalizer


@dataclass
class RuleConfig:
    name: str
    keywords: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.keywords and not self.patterns:
            raise ValueError(f"rule {self.name!r} has neither keywords nor patterns")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"rule {self.name!r}: bad pattern {pattern!r} ({err})") from None


@dataclass
class BootstrapConfig:
    category: str
    corpus: str
    rules: list[RuleConfig]
    seeds: list[str] = field(default_factory=list)  # example texts of the category
    seed_ids: list[int | str] = field(default_factory=list)  # corpus rows known to be of the category
    negative_seeds: list[str] = field(default_factory=list)
    output_dir: str = "runs/bootstrap"
    input_field: str = "text"
    id_field: str = "id"
    taxonomy: str = "default"
    min_votes: int = 1
    query_size: int = 100
    # Also train on weak positives with the rule matches cut out, so that the model learns the
    # context around the keywords instead of only the keywords (which the rules already know).
    mask_rules: bool = True
    seed_weight: int = 5
    label_weight: int = 5
    # Extra fits per round, each training on the last one's flagged rows as positives.
    self_training: int = 0
    model: dict[str, Any] = field(default_factory=lambda: {"name": "ngram"})
    processor: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("rules: at least one rule is needed")
        for name in ("min_votes", "seed_weight", "label_weight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.self_training < 0:
            raise ValueError(f"self_training must be >= 0, got {self.self_training}")
        if self.query_size < 0:
            raise ValueError(f"query_size must be >= 0, got {self.query_size}")


def load_bootstrap_config(
    source: str | Path | dict[str, Any], data_root: str | Path | None = None, overrides: list[str] | None = None
) -> BootstrapConfig:
    raw, where, _ = read_mapping(source, overrides)
    config = from_dict(BootstrapConfig, raw, where=f"{where}: ")
    if data_root is not None and not Path(config.corpus).is_absolute():
        config.corpus = str(Path(data_root) / config.corpus)
    return config


def _rule_regexes(rules: list[RuleConfig]) -> list[re.Pattern]:
    return [
        re.compile("|".join([*(re.escape(k.casefold()) for k in rule.keywords), *rule.patterns]), re.IGNORECASE)
        for rule in rules
    ]


def _normalise(texts: list[str]) -> list[str]:
    normalise = TextNormalizer(NormalizerConfig(traditional_to_simplified=True, fold_homoglyphs=True,
                                                strip_separators=True))
    return [normalise(t) for t in texts]


def rule_votes(texts: list[str], rules: list[RuleConfig]) -> np.ndarray:
    """[rows, rules] boolean matrix: does rule j fire on row i (on normalised text)."""
    cleaned = _normalise(texts)
    return np.array([[bool(r.search(t)) for r in _rule_regexes(rules)] for t in cleaned], dtype=bool).reshape(
        len(texts), len(rules))


def mask_rule_matches(text: str, rules: list[RuleConfig]) -> str:
    """``text`` (normalised) with every keyword and pattern match of the rules cut out."""
    (cleaned,) = _normalise([text])
    for regex in _rule_regexes(rules):
        cleaned = regex.sub(" ", cleaned)
    return cleaned


def _read_labels(path: str | Path) -> dict[str, int]:
    labels: dict[str, int] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or "id" not in row or row.get("label") not in (0, 1, True, False):
            raise DataError(f"{path}, line {number}: expected {{\"id\": ..., \"label\": 0 or 1}}, got {line[:80]!r}")
        labels[str(row["id"])] = int(row["label"])
    return labels


def _fit(cfg: BootstrapConfig, ids: list[str], texts: list[str], labels: np.ndarray, weak: np.ndarray,
         human: dict[str, int], seed_rows: set[str], round_dir: Path) -> Path:
    """Write the round's training set (with its repeats and masked copies) and train on it."""
    rows = []
    for row_id, text, label in zip(ids, texts, labels):
        copies = cfg.label_weight if row_id in human else cfg.seed_weight if row_id in seed_rows else 1
        rows += [{"text": text, "labels": [cfg.category] if label else []}] * copies
    if cfg.mask_rules:
        for row_id, text, weak_label in zip(ids, texts, weak):
            if weak_label and row_id not in human:
                masked = mask_rule_matches(text, cfg.rules)
                if masked.strip():
                    rows.append({"text": masked, "labels": [cfg.category]})
    for text, label in [*((t, 1) for t in cfg.seeds), *((t, 0) for t in cfg.negative_seeds)]:
        rows += [{"text": text, "labels": [cfg.category] if label else []}] * cfg.seed_weight
    train_file = round_dir / "train.jsonl"
    train_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return train({
        "output_dir": str(round_dir / "model"),
        "taxonomy": cfg.taxonomy,
        "categories": [cfg.category],
        "data": {"train": str(train_file), "dev_fraction": 0.15, "label_field": "labels", "id_field": None},
        "model": cfg.model,
        "processor": cfg.processor,
        "train": to_dict(cfg.train),
    })


def bootstrap(
    config: str | Path | dict[str, Any] | BootstrapConfig,
    labels: str | Path | list[str | Path] | None = None,
    data_root: str | Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Run one round (weak labels + seeds [+ human labels] -> model -> questions); return its summary."""
    cfg = config if isinstance(config, BootstrapConfig) else load_bootstrap_config(config, data_root, overrides)
    taxonomy = Taxonomy.load(cfg.taxonomy)
    if cfg.category not in taxonomy:
        raise ConfigError(f"category {cfg.category!r} is not in taxonomy {cfg.taxonomy!r} ({', '.join(taxonomy.ids)})")
    table = load_table(cfg.corpus)
    # A row with no usable text is never a weak positive, and never asked about.
    texts = [t if check_input("text", t) is None else "" for t in column(table, cfg.input_field, cfg.corpus, "input_field")]
    ids = [str(i) for i in (table[cfg.id_field] if cfg.id_field in table.column_names else range(len(texts)))]

    votes = rule_votes(texts, cfg.rules)
    weak = votes.sum(axis=1) >= cfg.min_votes
    label_files = [labels] if isinstance(labels, (str, Path)) else list(labels or [])
    human: dict[str, int] = {}
    for path in label_files:
        human.update(_read_labels(path))
    unknown = [i for i in human if i not in set(ids)]
    if unknown:
        raise DataError(f"labels: ids not in the corpus, e.g. {unknown[0]!r}")

    missing = [i for i in map(str, cfg.seed_ids) if i not in set(ids)]
    if missing:
        raise DataError(f"seed_ids: {missing[0]!r} is not an id of {cfg.corpus}")
    seed_rows = set(map(str, cfg.seed_ids))
    round_dir = Path(cfg.output_dir) / f"round-{len(label_files)}"
    round_dir.mkdir(parents=True, exist_ok=True)
    fixed = {**{i: 1 for i in seed_rows}, **human}  # what a person said; weak labels never override it
    labels_now = np.array([fixed.get(i, int(w)) for i, w in zip(ids, weak)])
    for fit in range(cfg.self_training + 1):
        checkpoint = _fit(cfg, ids, texts, labels_now, weak, human, seed_rows, round_dir)
        classifier = Classifier.load(checkpoint)
        scores = classifier.predict_proba(texts, batch_size=512)[:, 0]
        threshold = classifier.thresholds[cfg.category]
        if fit < cfg.self_training:
            # Self-training: rows this fit flags join the positives, so the next fit also learns
            # the contexts that no rule names (the rules alone find under half of a category).
            labels_now = np.array([fixed.get(i, int(w or s >= threshold)) for i, w, s in zip(ids, weak, scores)])
    asked = set(human) | seed_rows
    order = [i for i in np.argsort(np.abs(scores - threshold), kind="stable") if ids[i] not in asked]
    questions = round_dir / "to_label.jsonl"
    with open(questions, "w", encoding="utf-8") as handle:
        for i in order[: cfg.query_size]:
            handle.write(json.dumps({"id": ids[i], "text": texts[i], "score": float(scores[i]),
                                     "rule_votes": int(votes[i].sum()), "label": None}, ensure_ascii=False) + "\n")

    coverage = votes.mean(axis=0)
    agreement = {
        f"{a.name}&{b.name}": float((votes[:, i] & votes[:, j]).sum() / max((votes[:, i] | votes[:, j]).sum(), 1))
        for i, a in enumerate(cfg.rules) for j, b in enumerate(cfg.rules) if i < j
    }
    summary = {
        "category": cfg.category,
        "corpus_rows": len(texts),
        "weak_positives": int(weak.sum()),
        "rule_coverage": {r.name: float(c) for r, c in zip(cfg.rules, coverage)},
        "rule_agreement_jaccard": agreement,
        "seeds": len(cfg.seeds) + len(seed_rows),
        "negative_seeds": len(cfg.negative_seeds),
        "human_labels": len(human),
        "self_training_positives": sum(1 for i, w, y in zip(ids, weak, labels_now) if y and not w and i not in fixed),
        "checkpoint": str(checkpoint),
        "flagged": int((scores >= threshold).sum()),
        "questions": str(questions),
    }
    write_json(round_dir / "summary.json", summary)
    return summary
