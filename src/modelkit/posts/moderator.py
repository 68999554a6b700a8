"""The moderator: posts -> member predictions -> fusion -> policy -> :class:`Decision`.

Built from YAML (``configs/post/*.yaml``) or from checkpoints::

    members:            # one checkpoint per modality or text field; any may be absent
      text: runs/text/model          # every text field without a member of its own
      text.title: runs/title/model   # (optional) the title only
      image: runs/image/model
      ocr_text: runs/ocr/model       # (optional) the text in the pictures
      video: runs/video/model
    fusion: max         # max | noisy_or | a learned-fusion checkpoint (modelkit.posts.fusion)
    categories: [pornography, violence]   # (optional) default: every category a member scores
    policy:             # (optional) per category; unset: the calibrated threshold and the taxonomy's action
      review: {violence: 0.3}
      remove: {violence: 0.8}

Members are ordinary :class:`~modelkit.Classifier` objects driven through
:meth:`~modelkit.Classifier.outputs`; the moderator never imports a modality. Each member scores
all the parts it serves in a chunk of posts at once, so a post costs what its parts cost.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np

from ..classifier import Classifier, load
from ..config import ConfigError, from_dict, read_yaml
from ..explain import explain
from ..recipes import find_recipe
from ..outputs import Outputs
from ..taxonomy import Category, Taxonomy
from .fusion import FusionRule, PartScoresProcessor, fuse
from .policy import PostAction, PostPolicy
from .post import Part, Post, is_field_name

# Which parts a member reads: text members read text fields, the others one kind of part each.
MEMBER_KINDS = {"text": "text", "image": "image", "ocr_text": "image", "video": "video"}
# Evidence for a category: the parts whose score is at least this share of their member's
# threshold (and always the top one), at most this many.
EVIDENCE_SHARE = 0.5
MAX_EVIDENCE = 3


def member_kind(name: str) -> str | None:
    """The kind of part (and the modality of the checkpoint) a member name stands for."""
    if name.startswith("text."):
        return "text" if is_field_name(name[len("text."):]) else None
    return MEMBER_KINDS.get(name)


@dataclass
class PolicyBlock:
    review: dict[str, Any] | None = None
    remove: dict[str, Any] | None = None
    # A post with a part that could not be read (or that no member reads): "review" sends it to a
    # person even when what was read passes; "list" only lists the part in the decision's unread.
    unread: Literal["review", "list"] = "review"


@dataclass
class ModeratorConfig:
    members: dict[str, str]
    fusion: str = "max"
    categories: list[str] | None = None
    policy: PolicyBlock = field(default_factory=PolicyBlock)
    # Evidence for every flagged category: the parts, spans, heat maps, OCR lines, segments (off:
    # scores and actions only, at the cost of scoring).
    evidence: bool = True

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("members: name at least one checkpoint (text, image, ocr_text, video or text.<field>)")
        for name in self.members:
            if member_kind(name) is None:
                raise ValueError(f"members.{name}: not a member name; use text, text.<field>, image, ocr_text or video")


@dataclass(slots=True)
class Decision:
    """What happens to a post: ``action`` (pass | review | remove), the ``categories`` that call
    for it (most severe first), the fused ``scores``, the ``evidence`` a reviewer checks (one item
    per part and category: ``part``, ``category``, ``score`` and where: ``start``/``end`` in a
    text field, ``index`` (and ``box``) of a picture, ``t0``/``t1`` of the video), and the parts
    that could not be read (``unread``: ``{"part", "error"}``). A post that could not be
    moderated at all has ``error`` set instead."""

    post_id: str | None
    action: PostAction | None = None
    categories: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    unread: list[dict[str, str]] = field(default_factory=list)
    account_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The decision as a JSON row (what ``modelkit moderate`` writes)."""
        if self.error is not None:
            return {"id": self.post_id, "error": self.error}
        row: dict[str, Any] = {"id": self.post_id}
        if self.account_id is not None:
            row["account_id"] = self.account_id
        row.update(action=self.action, categories=self.categories, scores=self.scores, evidence=self.evidence,
                   unread=self.unread)
        return row


@dataclass
class DecisionBatch:
    """Decisions of a chunk of rows, in order (the batch engine's unit: see ``Outputs``)."""

    decisions: list[Decision]

    def __len__(self) -> int:
        return len(self.decisions)

    @property
    def errors(self) -> list[str | None]:
        return [decision.error for decision in self.decisions]

    def placed(self, rows: int, where: Sequence[int], problems: Sequence[str | None]) -> DecisionBatch:
        placed = [Decision(None, error=problems[row]) for row in range(rows)]
        for position, row in enumerate(where):
            placed[row] = self.decisions[position]
        return DecisionBatch(placed)

    def records(self, ids: Sequence[Any]) -> Iterator[dict[str, Any]]:
        for row_id, decision in zip(ids, self.decisions):
            yield {**decision.to_dict(), "id": row_id}


@dataclass
class _MemberRun:
    """One member's scores of the parts it read in a chunk of posts: row ``r`` is part
    ``parts[r]`` of post ``posts[r]``; ``scores`` over the post's categories (NaN: not scored, or
    the part could not be read), ``common`` the same on the common scale (:func:`common_scale`)."""

    name: str
    posts: np.ndarray
    parts: list[Part]
    outputs: Outputs
    scores: np.ndarray
    common: np.ndarray
    read: np.ndarray


def common_scale(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Scores mapped piecewise linearly so that each member's threshold lands at 0.5 (0 and 1
    stay put): members tuned to different thresholds then mean the same by the same number, and
    ``max`` flags a post exactly when one part reaches its own member's threshold."""
    t = np.clip(thresholds, 1e-6, 1 - 1e-6)
    return np.where(scores < t, 0.5 * scores / t, 0.5 + 0.5 * (scores - t) / (1 - t))


class Moderator:
    """Decides posts: see the module docstring. Build with :func:`load_moderator` or
    :meth:`from_checkpoints`."""

    def __init__(self, members: Mapping[str, Classifier], fusion: FusionRule | Classifier = "max",
                 categories: Sequence[str] | None = None, review: Mapping[str, Any] | None = None,
                 remove: Mapping[str, Any] | None = None, evidence: bool = True,
                 unread: Literal["review", "list"] = "review") -> None:
        self.members = dict(members)
        for name, clf in self.members.items():
            kind = member_kind(name)
            if kind is None:
                raise ConfigError(f"members.{name}: not a member name; use text, text.<field> (letters, digits, _), "
                                  "image, ocr_text or video")
            if clf.processor.modality != kind:
                raise ConfigError(f"members.{name}: {clf.source_dir or 'the checkpoint'} reads {clf.processor.modality} "
                                  f"inputs; this member scores {kind} parts")
        self.fusion_rule: FusionRule = "learned" if isinstance(fusion, Classifier) else fusion
        if self.fusion_rule not in ("max", "noisy_or"):
            if self.fusion_rule != "learned" or not isinstance(fusion, Classifier):
                raise ConfigError(f"fusion: {fusion!r} is not max, noisy_or or a learned-fusion checkpoint (give the "
                                  "head itself: its folder in YAML, a loaded Classifier in Python)")
        if unread not in ("review", "list"):
            raise ConfigError(f"policy.unread: must be review or list, got {unread!r}")
        self.unread_action = unread
        self.fusion = fusion if isinstance(fusion, Classifier) else None
        self.taxonomy = self._post_taxonomy(categories)
        self.categories = self.taxonomy.ids
        self.slots = self._check_fusion() if self.fusion is not None else list(self.members)
        self.policy = PostPolicy.from_config(self.taxonomy, self._default_thresholds(), review, remove)
        self.evidence = evidence
        # Per member, the column of each post category in its scores (-1: it does not score it).
        self._columns = {name: np.array([clf.categories.index(c) if c in clf.categories else -1
                                         for c in self.categories]) for name, clf in self.members.items()}
        self._member_column = {name: {c: i for i, c in enumerate(clf.categories)} for name, clf in self.members.items()}
        self._serving: dict[tuple[str, str | None], list[str]] = {}

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_checkpoints(cls, text: str | Path | None = None, image: str | Path | None = None,
                         video: str | Path | None = None, ocr_text: str | Path | None = None,
                         fusion: Literal["max", "noisy_or"] = "max", **load_options: Any) -> Moderator:
        """The quick start: one checkpoint per modality, ``max`` fusion, the default policy."""
        given = {"text": text, "image": image, "video": video, "ocr_text": ocr_text}
        members = {name: _load_member(f"--{name.replace('_', '-')}", path, None, load_options)
                   for name, path in given.items() if path}
        if not members:
            raise ConfigError("give at least one checkpoint (text, image, video or ocr_text)")
        return cls(members, fusion)

    def _post_taxonomy(self, wanted: Sequence[str] | None) -> Taxonomy:
        """The categories posts are decided on: the learned head's, or those the members score
        (all, or ``wanted``), with the members' taxonomy entries (severity, action)."""
        known: dict[str, Category] = {}
        for clf in self.members.values():
            for category in clf.taxonomy:
                known.setdefault(category.id, category)
        if self.fusion is not None:
            known = {c.id: known.get(c.id, c) for c in self.fusion.taxonomy}
        ids = list(known) if wanted is None else list(wanted)
        missing = [c for c in ids if c not in known]
        if missing:
            scored = "; ".join(f"{name} scores {', '.join(clf.categories)}" for name, clf in self.members.items())
            raise ConfigError(f"categories: {', '.join(missing)} scored by no member ({scored})")
        return Taxonomy(tuple(known[c] for c in ids), name="post")

    def _check_fusion(self) -> list[str]:
        """A learned head runs only on the members it was trained on."""
        assert self.fusion is not None
        processor = self.fusion.processor
        if not isinstance(processor, PartScoresProcessor):
            raise ConfigError(f"fusion: {self.fusion.source_dir} is not a learned-fusion checkpoint (its processor is "
                              f"{processor.name!r}, not part_scores)")
        slots = processor.config.slots
        for slot in slots:
            if slot not in self.members:
                raise ConfigError(f"fusion: the head was trained with member {slot!r}, which this moderator lacks")
            trained = processor.config.members.get(slot)
            if trained is not None and trained != self.members[slot].fingerprint():
                raise ConfigError(f"fusion: member {slot!r} is not the checkpoint the head was trained on "
                                  f"(fingerprint {self.members[slot].fingerprint()[:12]} != {trained[:12]}); "
                                  "train the head again on this member's scores")
        extra = sorted(set(self.members) - set(slots))
        if extra:
            raise ConfigError(f"fusion: the head reads {', '.join(slots)}; members {', '.join(extra)} would be ignored")
        return list(slots)

    def _default_thresholds(self) -> dict[str, float]:
        if self.fusion is not None:
            return {c: self.fusion.thresholds[c] for c in self.categories}
        # Fixed rules fuse on the common scale, where every member's threshold is 0.5.
        return dict.fromkeys(self.categories, 0.5)

    def fingerprint(self) -> str:
        """What the decisions depend on: members, fusion, policy, evidence setting."""
        identity = {"members": {name: clf.fingerprint() for name, clf in sorted(self.members.items())},
                    "fusion": self.fusion.fingerprint() if self.fusion is not None else self.fusion_rule,
                    "categories": self.categories, "policy": self.policy.to_dict(), "evidence": self.evidence}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    @property
    def reads_files(self) -> bool:
        return any(member_kind(name) != "text" for name in self.members)

    # -- scoring ----------------------------------------------------------------------------
    def member_for(self, part: Part) -> list[str]:
        """The members that score ``part`` (a picture may have an image and an OCR member)."""
        key = (part.kind, part.field)
        found = self._serving.get(key)
        if found is None:
            found = self._serving[key] = self._members_of(part)
        return found

    def _members_of(self, part: Part) -> list[str]:
        if part.kind == "text":
            own = f"text.{part.field}"
            return [own] if own in self.members else (["text"] if "text" in self.members else [])
        return [name for name in self.members if member_kind(name) == part.kind and not name.startswith("text")]

    def _score_parts(self, posts: Sequence[Post], batch_size: int, num_workers: int
                     ) -> tuple[list[_MemberRun], list[list[dict[str, str]]]]:
        """Every member scores all the parts it reads at once; parts that cannot be read are
        listed per post (a part two members read is listed once)."""
        wanted: dict[str, tuple[list[int], list[Part]]] = {name: ([], []) for name in self.members}
        unread: list[list[dict[str, str]]] = [[] for _ in posts]
        for p, post in enumerate(posts):
            for part in post.parts():
                if part.problem is not None:
                    unread[p].append({"part": part.name, "error": part.problem})
                    continue
                serving = self.member_for(part)
                if not serving:  # never dropped silently: a part nothing reads is a part not read
                    unread[p].append({"part": part.name, "error": f"no member of this moderator reads {part.kind} "
                                                                  f"parts{' of field ' + part.field if part.field else ''}"})
                for name in serving:
                    wanted[name][0].append(p)
                    wanted[name][1].append(part)
        runs = []
        for name, (owners, parts) in wanted.items():
            if not parts:
                continue
            result = self.members[name].outputs([part.value for part in parts], batch_size=batch_size,
                                                num_workers=num_workers, on_error="record")
            columns = self._columns[name]
            picked = np.maximum(columns, 0)
            read = np.array([error is None for error in result.errors], dtype=bool)
            scores = np.where((columns >= 0) & read[:, None], result.scores[:, picked], np.nan).astype(np.float64)
            common = common_scale(scores, self.members[name].threshold_vector.astype(np.float64)[picked])
            for row in np.flatnonzero(~read).tolist():
                p, part = owners[row], parts[row]
                if not any(u["part"] == part.name for u in unread[p]):
                    unread[p].append({"part": part.name, "error": result.errors[row]})
            runs.append(_MemberRun(name, np.array(owners, dtype=np.int64), parts, result, scores, common, read))
        return runs, unread

    def part_scores(self, posts: Sequence[Post], batch_size: int = 256, num_workers: int = 0
                    ) -> list[list[list[float | None]]]:
        """Each post's ``part_scores`` (rows: slots, columns: categories; see
        :mod:`modelkit.posts.fusion`): what a learned head reads and is trained on."""
        runs, _ = self._score_parts(posts, batch_size, num_workers)
        table = self._slot_scores(len(posts), runs)
        return [[[None if math.isnan(s) else float(s) for s in row] for row in post] for post in table.tolist()]

    def _slot_scores(self, count: int, runs: list[_MemberRun]) -> np.ndarray:
        """``[posts, slots, categories]``: each slot's highest score over the post's parts, NaN
        where the post has none it could read."""
        table = np.full((count, len(self.slots), len(self.categories)), np.nan)
        for run in runs:
            np.fmax.at(table[:, self.slots.index(run.name)], run.posts, run.scores)  # a view: in place
        return table

    def _fused(self, count: int, runs: list[_MemberRun], batch_size: int) -> np.ndarray:
        if self.fusion is None:
            owners = np.concatenate([run.posts for run in runs]) if runs else np.zeros(0, dtype=np.int64)
            common = np.concatenate([run.common for run in runs]) if runs else np.zeros((0, len(self.categories)))
            return fuse(self.fusion_rule, common, owners, count)
        table = self._slot_scores(count, runs)
        features = [[[None if s != s else s for s in row] for row in post] for post in table.tolist()]
        fused = self.fusion.outputs(features, batch_size=max(batch_size, 256)).scores.astype(np.float64)
        fused = fused[:, [self.fusion.categories.index(c) for c in self.categories]]
        # A category no part was read for has no score (not the head's prior for it).
        fused[np.isnan(table).all(axis=1)] = np.nan
        return fused

    def decide(self, posts: Sequence[Post], batch_size: int = 256, num_workers: int = 0) -> list[Decision]:
        """One :class:`Decision` per post, in order."""
        runs, unread = self._score_parts(posts, batch_size, num_workers)
        fused = self._fused(len(posts), runs, batch_size)
        decided = self.policy.decide(fused)
        unscored = np.isnan(fused).all(axis=1).tolist()
        rounded = np.where(np.isnan(fused), None, np.round(fused, 6)).tolist()  # NaN: None in JSON
        categories_of = self.categories
        decisions = []
        escalate = self.unread_action == "review"
        for post, (action, categories), scores, nothing_read, missed in zip(posts, decided, rounded, unscored, unread):
            if nothing_read:  # a person looks, never a silent pass
                action, categories = "review", []
            elif missed and escalate and action == "pass":
                action = "review"
            decisions.append(Decision(post.id, action, categories, dict(zip(categories_of, scores)), [], missed,
                                      post.account_id))
        if self.evidence:
            self._add_evidence(decisions, runs)
        return decisions

    # -- evidence --------------------------------------------------------------------------
    def _add_evidence(self, decisions: list[Decision], runs: list[_MemberRun]) -> None:
        flagged = np.array([p for p, decision in enumerate(decisions) if decision.categories], dtype=np.int64)
        by_post: dict[int, list[tuple[_MemberRun, int]]] = {}
        for run in runs:  # only the parts of flagged posts: most posts pass
            for row in np.flatnonzero(np.isin(run.posts, flagged) & run.read).tolist():
                by_post.setdefault(int(run.posts[row]), []).append((run, row))
        requests: dict[str, list[tuple[dict[str, Any], Part, str]]] = {}
        for p in flagged.tolist():
            decision = decisions[p]
            for category in decision.categories:
                j = self.categories.index(category)
                # Ranked on the common scale: a part's score against its own member's threshold;
                # parts whose member does not score the category are no evidence for it.
                ranked = sorted((item for item in by_post.get(p, []) if not np.isnan(item[0].common[item[1], j])),
                                key=lambda item: -item[0].common[item[1], j])
                chosen = [item for item in ranked if item[0].common[item[1], j] >= 0.5 * EVIDENCE_SHARE][:MAX_EVIDENCE]
                for run, row in chosen or ranked[:1]:
                    part = run.parts[row]
                    entry = {"part": part.name, "category": category, "score": round(float(run.scores[row, j]), 6),
                             "member": run.name}
                    if part.index is not None:
                        entry["index"] = part.index
                    self._locate(entry, run, row, category)
                    decision.evidence.append(entry)
                    if member_kind(run.name) in ("text", "image") and run.name != "ocr_text":
                        requests.setdefault(run.name, []).append((entry, part, category))
        for name, wanted in requests.items():
            found = explain(self.members[name], [part.value for _, part, _ in wanted],
                            [[category] for _, _, category in wanted])
            for (entry, _, _), items in zip(wanted, found):
                if items:
                    entry.update((k, v) for k, v in items[0].items() if k != "category")

    def _locate(self, entry: dict[str, Any], run: _MemberRun, row: int, category: str) -> None:
        """What a member's own outputs say about where: OCR lines, video segments."""
        outputs = run.outputs
        evidence = outputs.evidence[row] or {}
        if evidence.get("ocr_lines") is not None:
            entry["ocr_lines"] = evidence["ocr_lines"]
        segments = outputs.fields["segments"][row] if "segments" in outputs.fields else None
        if segments is None:
            return
        mine = [s for s in segments if s.get("category") == category]
        parts = outputs.parts[row]
        column = self._member_column[run.name].get(category)
        if parts is not None and len(parts[0]) and column is not None:
            times, frame_scores = parts
            peak = int(np.argmax(frame_scores[:, column]))
            entry["peak_t"] = round(float(times[peak]), 3)
            # As far as frames were read: the last frame's time, or a segment's end past it.
            entry["duration_s"] = round(max([float(times[-1]), *(s["end_s"] for s in segments)]), 3)
        if mine:
            best = max(mine, key=lambda s: s.get("peak_score", 0.0))
            entry.update(t0=best["start_s"], t1=best["end_s"])
            entry["peak_t"] = best.get("peak_s", entry.get("peak_t"))
        entry["segments"] = mine

    def fusion_rows(self, posts: Sequence[Post], labels: Sequence[Sequence[str]], batch_size: int = 256,
                    num_workers: int = 0) -> list[dict[str, Any]]:
        """Training rows of a learned-fusion head: ``{"id", "part_scores", "labels"}`` per post,
        ``labels`` its post-level categories (those this moderator decides on)."""
        unknown = sorted({c for row in labels for c in row} - set(self.categories))
        if unknown:
            raise ConfigError(f"labels: {', '.join(unknown)} are not categories of this moderator "
                              f"({', '.join(self.categories)})")
        scores = self.part_scores(posts, batch_size, num_workers)
        return [{"id": post.id, "part_scores": table, "labels": list(row)}
                for post, table, row in zip(posts, scores, labels)]

    def fusion_recipe(self, train: str | Path, dev: str | Path, output_dir: str | Path, **train_options: Any
                      ) -> dict[str, Any]:
        """A recipe that trains a learned-fusion head on this moderator's members from rows
        ``{"id", "part_scores", "labels"}`` (:func:`write_fusion_data`)."""
        return {
            "output_dir": str(output_dir),
            "data": {"train": str(train), "dev": str(dev), "inputs": {"part_scores": "part_scores"},
                     "label_field": "labels"},
            "categories": list(self.categories),
            "taxonomy": self.taxonomy.to_dict(),
            "model": {"name": "late_fusion"},
            "processor": {"slots": list(self.members),
                          "members": {name: clf.fingerprint() for name, clf in self.members.items()}},
            "train": {"epochs": 40, "batch_size": 32, "learning_rate": 0.05, "tune_thresholds": True,
                      "early_stopping_patience": 8, **train_options},
        }

    def __repr__(self) -> str:
        members = ", ".join(f"{name}={clf.model.registry_name}" for name, clf in self.members.items())
        return f"Moderator({members}; fusion={self.fusion_rule}; categories={self.categories})"


def _load_member(setting: str, path: str | Path, base: Path | None, load_options: Mapping[str, Any]) -> Classifier:
    directory = Path(path)
    if base is not None and not directory.is_absolute() and not directory.exists():
        directory = base / directory
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{setting}: no checkpoint at {path} (a folder with config.json)")
    return load(directory, **load_options)


def load_moderator(config: str | Path | Mapping[str, Any], **load_options: Any) -> Moderator:
    """A :class:`Moderator` from a YAML file (or its mapping, or the name of one that ships with
    modelkit: ``post/demo``): checkpoints are loaded and checked (categories, a learned head's
    members) before anything is scored. Relative paths are looked up from the working directory,
    then beside the YAML file."""
    base = None
    where = "moderator"
    if not isinstance(config, Mapping):
        if not Path(config).exists() and find_recipe(str(config)) is not None:
            config = find_recipe(str(config))  # a shipped moderator: post/demo
        base = Path(config).resolve().parent
        where = f"{config}: "
        config = read_yaml(config)
    parsed = from_dict(ModeratorConfig, config, where=where)
    try:
        members = {name: _load_member(f"members.{name}", path, base, load_options)
                   for name, path in parsed.members.items()}
        fusion: FusionRule | Classifier
        if parsed.fusion in ("max", "noisy_or"):
            fusion = parsed.fusion  # type: ignore[assignment]
        else:
            fusion = _load_member("fusion", parsed.fusion, base, load_options)
        return Moderator(members, fusion, parsed.categories, parsed.policy.review, parsed.policy.remove,
                         parsed.evidence, parsed.policy.unread)
    except ConfigError as err:
        raise ConfigError(f"{where if where.endswith(': ') else ''}{err}") from None
